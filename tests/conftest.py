from postgres import postgres_server, postgres_url  # noqa: F401  (throwaway PostgreSQL)
from search_support import people_index, search_engine, search_url  # noqa: F401  (both databases)

from support import cli_demo, ct_root, engine, settings  # noqa: F401  (fixtures)
