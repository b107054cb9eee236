"""nasindex dashboard: find a patient on any NAS, see the studies, paths and images;
see whether every NAS is indexed and current.

Start with ``streamlit run dashboard/app.py`` (the config is found as by the CLI:
$NASINDEX_CONFIG or ./nasindex.toml).
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the pages import their helpers from this folder
    sys.path.insert(0, str(HERE))

st.set_page_config(page_title="nasindex", page_icon=":material/radiology:", layout="wide")

PAGES = [
    st.Page(HERE / "views" / "search.py", title="Search", icon=":material/search:",
            url_path="search", default=True),
    st.Page(HERE / "views" / "patient.py", title="Patient", icon=":material/person:",
            url_path="patient"),
    st.Page(HERE / "views" / "health.py", title="Health", icon=":material/monitor_heart:",
            url_path="health"),
]

st.navigation(PAGES).run()
