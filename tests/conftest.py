from support import ct_root, engine, settings  # noqa: F401  (fixtures)
