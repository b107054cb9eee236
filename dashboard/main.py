"""nasindex dashboard, the pages: find a patient on any NAS, see the studies, paths and
images; see whether every NAS is indexed and current; for admins, the audit trail.

Served by ``streamlit run dashboard/app.py`` (see app.py). Every run passes the login gate
first (``dash_context.open_context``): nothing is drawn for a visitor who is not logged
in, and the pages offered follow the user's roles.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the pages import their helpers from this folder
    sys.path.insert(0, str(HERE))

from dash_context import open_context  # noqa: E402

from nasindex.access.principal import ADMIN  # noqa: E402

st.set_page_config(page_title="nasindex", page_icon=":material/radiology:", layout="wide")

ctx = open_context()
PAGES = [
    st.Page(HERE / "views" / "search.py", title="Search", icon=":material/search:",
            url_path="search", default=True),
    st.Page(HERE / "views" / "patient.py", title="Patient", icon=":material/person:",
            url_path="patient"),
    st.Page(HERE / "views" / "health.py", title="Health", icon=":material/monitor_heart:",
            url_path="health"),
]
if ctx.user.has(ADMIN):
    PAGES.append(st.Page(HERE / "views" / "audit.py", title="Audit",
                         icon=":material/policy:", url_path="audit"))

st.navigation(PAGES).run()
