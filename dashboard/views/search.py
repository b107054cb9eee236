"""Search page: one box (name, Patient ID or accession) plus filters; results open a
patient. Keyboard: type, Enter searches; Tab to "Open patient", arrows pick, Enter opens."""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st
from dash_context import context, fmt_date, fmt_name, show_error

from nasindex.access.principal import Principal
from nasindex.errors import NasIndexError
from nasindex.search import SearchQuery, SearchResult

PAGE_SIZE = 25
PATIENT_PAGE = "views/patient.py"


@st.cache_data(ttl=60, show_spinner=False)
def _facets(url: str, scope: frozenset[str] | None, _user: Principal) -> dict:
    # keyed by the index URL and the NAS scope: what one scope offers is not another's
    return ctx.access.facets(_user)


def _form(options: dict) -> SearchQuery | None:
    last: SearchQuery = st.session_state.get("query") or SearchQuery()
    with st.form("search", border=False, enter_to_submit=True):
        text = st.text_input("Name, Patient ID or accession number", value=last.text or "",
                             placeholder="e.g.  jane doe   ·   mül*   ·   PAT00012",
                             help="Name parts in any order; accents and case do not "
                                  "matter; * and ? are wildcards; three letters match "
                                  "inside a name. One word with a digit is an ID.")
        c1, c2, c3, c4 = st.columns([2, 1, 1, 2])
        modalities = c1.multiselect("Modality (any of)", options["modalities"],
                                    default=[m for m in last.modalities
                                             if m in options["modalities"]])
        date_from = c2.date_input("Study from", value=_as_date(last.date_from),
                                  min_value=date(1900, 1, 1), format="YYYY-MM-DD")
        date_to = c3.date_input("Study to", value=_as_date(last.date_to),
                                min_value=date(1900, 1, 1), format="YYYY-MM-DD")
        nas = c4.multiselect("NAS", options["nas"],
                             default=[n for n in last.nas if n in options["nas"]])
        with st.expander("More filters"):
            d1, d2, d3 = st.columns(3)
            patient_id = d1.text_input("Patient ID (exact or start)", value=last.patient_id or "")
            accession = d2.text_input("Accession number", value=last.accession or "")
            birth = d3.text_input("Birth date", value=last.birth_date or "",
                                  placeholder="YYYY-MM-DD")
        submitted = st.form_submit_button("Search", type="primary", icon=":material/search:")
    if not submitted:
        return None
    return SearchQuery(text=text.strip() or None, patient_id=patient_id.strip() or None,
                       accession=accession.strip() or None, modalities=modalities,
                       date_from=date_from.isoformat() if date_from else None,
                       date_to=date_to.isoformat() if date_to else None,
                       birth_date=birth.strip() or None, nas=nas, limit=PAGE_SIZE)


def _as_date(value: str | None) -> date | None:
    if not value:
        return None
    digits = value.replace("-", "")
    return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))


def _table(result: SearchResult) -> pd.DataFrame:
    rows = []
    for p in result.patients:
        latest = p.studies[0] if p.studies else None
        rows.append({
            "#": p.person + 1, "Name": fmt_name(p.patient_name), "Patient ID": p.patient_id,
            "NAS": p.nas, "Born": fmt_date(p.birth_date), "Sex": p.sex or "",
            "Studies": len(p.studies),
            "Latest study": fmt_date(latest.date) if latest else "",
            "Modalities": ", ".join(sorted({m for s in p.studies for m in s.modalities})),
            "Match": p.match, "Same person because": p.linked_because or "",
        })
    return pd.DataFrame(rows)


def _open(nas: str, patient_id: str) -> None:
    st.switch_page(PATIENT_PAGE, query_params={"nas": nas, "id": patient_id})


def _results(result: SearchResult, q: SearchQuery) -> None:
    for note in result.notes:
        (st.info if result.total else st.warning)(note, icon=":material/lightbulb:")
    if not result.total:
        return
    first, last = q.offset + 1, q.offset + len(result.persons)
    st.markdown(f"**{result.total}** patient(s) — showing {first}–{last}. "
                "Rows with the same **#** are one person on several NAS devices.")
    event = st.dataframe(_table(result), hide_index=True, on_select="rerun",
                         selection_mode="single-row", key="results", width="stretch")
    if event.selection.rows:
        hit = result.patients[event.selection.rows[0]]
        _open(hit.nas, hit.patient_id)
    labels = [f"{fmt_name(p.patient_name)} · {p.patient_id} · {p.nas}" for p in result.patients]
    with st.form("open", border=False, enter_to_submit=True):
        c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
        pick = c1.selectbox("Open patient", range(len(labels)), format_func=labels.__getitem__)
        if c2.form_submit_button("Open", icon=":material/open_in_new:"):
            hit = result.patients[pick]
            _open(hit.nas, hit.patient_id)
    _pager(result, q)


def _pager(result: SearchResult, q: SearchQuery) -> None:
    c1, c2, _ = st.columns([1, 1, 6])
    if c1.button("Previous", disabled=q.offset == 0, icon=":material/chevron_left:"):
        st.session_state.query = SearchQuery(**{**q.__dict__, "offset": q.offset - PAGE_SIZE})
        st.rerun()
    if c2.button("Next", disabled=q.offset + PAGE_SIZE >= result.total,
                 icon=":material/chevron_right:"):
        st.session_state.query = SearchQuery(**{**q.__dict__, "offset": q.offset + PAGE_SIZE})
        st.rerun()


ctx = context()
st.title("Find a patient")
options = _facets(ctx.settings.index.url, ctx.user.scope, ctx.user)
if not options["patients"]:
    st.info("The index is empty: no NAS has been indexed yet. Run `nasindex index --all` "
            "(or wait for the first scheduled sync); the Health page shows its progress.",
            icon=":material/inventory_2:")
    st.stop()
submitted = _form(options)
if submitted is not None:
    st.session_state.query = submitted
query: SearchQuery | None = st.session_state.get("query")
if query is None or query.is_empty():
    st.caption(f"{options['patients']:,} patient records on {len(options['nas'])} NAS "
               "device(s). Type a name (any order, e.g. *jane doe*), part of one (three "
               "letters or more, or with * and ?), a Patient ID or an accession number; "
               "or filter by modality, dates and NAS.")
else:
    try:
        result = ctx.access.search(ctx.user, query)
    except ValueError as exc:  # a malformed date in a filter
        show_error(exc, "Check the filters")
    except NasIndexError as exc:  # refused, or the audit trail cannot be written
        show_error(exc, "The search was not run")
    else:
        _results(result, query)
