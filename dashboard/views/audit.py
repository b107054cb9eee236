"""Audit page (admins): who searched for whom, opened, previewed or did what, and when;
filter by user, patient ID, NAS, action and dates; export what is shown as CSV. Reading
the trail is itself recorded."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
import streamlit as st
from dash_context import context, show_error

from nasindex.access.audit import ACTIONS as RECORDED
from nasindex.access.audit import COLUMNS
from nasindex.errors import NasIndexError

ACTIONS = ["", *RECORDED]
LIMIT = 5000
SHOWN = ("at", "user", "action", "outcome", "nas", "patient_id", "query", "results", "detail",
         "client", "door", "study_uid", "series_uid")


def _filters() -> dict:
    c1, c2, c3, c4, c5 = st.columns([2, 2, 1, 1, 2])
    user = c1.text_input("User").strip()
    patient_id = c2.text_input("Patient ID").strip()
    nas = c3.text_input("NAS").strip()
    action = c4.selectbox("Action", ACTIONS, format_func=lambda a: a or "any")
    today = datetime.now(UTC).date()
    days = c5.date_input("Dates (UTC)", value=(today - timedelta(days=7), today),
                         format="YYYY-MM-DD")  # a range: one date while it is being picked
    return {"user": user or None, "patient_id": patient_id or None, "nas": nas or None,
            "action": action or None, "since": _midnight(days[0]) if days else None,
            "until": _midnight(days[-1] + timedelta(days=1)) if days else None,
            "limit": LIMIT}


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


ctx = context()
st.title("Audit trail")
st.caption("Every search, patient page, preview, file listing, admin action, login, logout "
           "and refusal, newest first. Records cannot be changed or deleted.")
filters = _filters()
try:
    rows = ctx.access.audit_events(ctx.user, **filters)
except NasIndexError as exc:
    show_error(exc, "The audit trail cannot be shown")
    st.stop()
table = pd.DataFrame(rows, columns=list(COLUMNS))
more = " (the newest; narrow the filters to see older ones)" if len(rows) == LIMIT else ""
st.markdown(f"**{len(rows)}** record(s){more}.")
st.download_button("Export CSV", table.to_csv(index=False).encode("utf-8"),
                   file_name=f"nasindex-audit-{datetime.now(UTC):%Y%m%d-%H%M%S}.csv",
                   mime="text/csv", icon=":material/download:")
# On screen: the time to the second, what happened first, the UIDs last; the CSV has all.
shown = table.assign(at=table["at"].str[:19].str.replace("T", " "))[list(SHOWN)]
st.dataframe(shown.astype(object).where(shown.notna(), ""), hide_index=True,
             width="stretch", column_config={"at": st.column_config.TextColumn("time (UTC)")})
