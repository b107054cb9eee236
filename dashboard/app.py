"""nasindex dashboard, the server: ``streamlit run dashboard/app.py``.

Streamlit finds the ``st.App`` below (it must be written as ``app = st.App(...)``) and
serves the pages of ``main.py``. Before it listens, :func:`startup.app_options` checks
the deployment rules: without an ``[auth]``
table it refuses any address but loopback (one line on stderr, exit code 2); with one it
hands Streamlit the login settings, secrets read from the environment variables the
config names (they are never written to a file). The config is found as by the CLI:
$NASINDEX_CONFIG or ./nasindex.toml. :func:`startup.quick_reruns` sets what Streamlit
needs to keep up with a clinician's searches.
"""

import sys
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the pages import their helpers from this folder
    sys.path.insert(0, str(HERE))

from startup import app_options, quick_reruns  # noqa: E402

quick_reruns()
app = st.App(HERE / "main.py", **app_options())
