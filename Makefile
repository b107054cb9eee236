# The two commands of the quick start: `make run` and `make test`.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
export UV_LINK_MODE := copy

.PHONY: run test setup lint bench

setup:
	@scripts/install-system-deps.sh
	@uv sync --locked --quiet

run: setup
	uv run python -m nasindex.ops.supervisor

test: setup
	uv run ruff check .
	uv run lint-imports --no-cache
	uv run pytest -q

lint: setup
	uv run ruff check .
	uv run lint-imports --no-cache

bench: setup
	uv run python bench/run_all.py
