"""Shared fixtures: a throwaway PostgreSQL cluster (see tests/postgres.py)."""

pytest_plugins = ["tests.postgres"]
