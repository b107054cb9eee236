"""The Streamlit dashboard (``streamlit run`` its ``app.py``). Installed with nasindex so
that ``make run`` finds it as a package, not by a path into the source tree."""
