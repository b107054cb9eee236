from api_support import api_demo, api_login  # noqa: F401  (the HTTP API, served)
from dashboard_support import clinic  # noqa: F401  (fixtures)
from identity import dashboard_port, oidc_provider  # noqa: F401  (a real OIDC provider)
from orthanc import orthanc  # noqa: F401  (a real Orthanc, the reference DICOMweb server)
from postgres import postgres_server, postgres_url  # noqa: F401  (throwaway PostgreSQL)
from search_support import people_index, search_engine, search_url  # noqa: F401  (both databases)
from syslog_server import rsyslog  # noqa: F401  (a real rsyslog)

from support import cli_demo, ct_root, engine, settings  # noqa: F401  (fixtures)
