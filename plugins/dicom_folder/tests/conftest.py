"""The core test helpers' fixtures this plugin's tests use (a generated CT tree, its config)."""

from support import ct_root, settings  # noqa: F401  (fixtures)
