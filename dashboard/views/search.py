"""Search page: one box (name, Patient ID or accession) plus filters; results open a
patient. Keyboard: type, Enter searches; Tab to "Open patient", arrows pick, Enter opens.

The URL is the search (dash_search_state): submitting the form or paging writes it, and
every run shows what it holds, so each search in a row is the one shown, and Back,
reload, bookmarks and shared links show the same results. The form's widgets are
filled from the URL whenever it changed under them (Back, a link, paging) or the page
was left (Streamlit then drops their state).

The form and the results are one fragment: Enter, Next and Previous rerun only it, not
the navigation, banner, title and filter choices around it (a search redraws less;
a reload, Back or another page reruns everything).
"""

from __future__ import annotations

import gate
import pandas as pd
import streamlit as st
from dash_context import Context, context, fmt_date, fmt_name, show_error
from dash_search_state import (
    EARLIEST,
    PAGE_SIZE,
    SHOWN_KEY,
    SearchState,
    as_date,
    from_url,
    iso_date,
    query_string,
    to_url,
)
from dash_text import md

from nasindex.access.principal import Principal
from nasindex.errors import NasIndexError
from nasindex.search import SearchQuery, SearchResult

PATIENT_PAGE = "views/patient.py"
# widget keys: the form's fields
TEXT, MODALITIES, FROM, TO, NAS, PATIENT_ID, ACCESSION, BORN = (
    f"search_{k}" for k in ("text", "modalities", "from", "to", "nas", "patient_id",
                            "accession", "born"))


@st.cache_data(ttl=60, show_spinner=False)
def _facets(url: str, scope: frozenset[str] | None, _user: Principal) -> dict:
    # keyed by the index URL and the NAS scope: what one scope offers is not another's
    return ctx.access.facets(_user)


def _url_state() -> SearchState:
    params = {k: st.query_params.get_all(k) for k in st.query_params}
    if "id" in params:
        # Opening a patient (switch_page with its nas and id) leaves a history entry of
        # this page with the patient's parameters: Back lands on it. Show the search the
        # patient was opened from instead (during Back, Streamlit replaces the entry).
        params = st.session_state.get(SHOWN_KEY) or {}
        st.query_params.from_dict(params)
    return from_url(params)


def _fill_form(state: SearchState) -> None:
    """Put the URL's search into the form when it is not already there."""
    url = to_url(state)
    if st.session_state.get(SHOWN_KEY) == url and TEXT in st.session_state:
        return
    q = state.query
    st.session_state.update({
        TEXT: q.text or "", MODALITIES: q.modalities, NAS: q.nas,
        FROM: as_date(q.date_from), TO: as_date(q.date_to),
        PATIENT_ID: q.patient_id or "", ACCESSION: q.accession or "",
        BORN: iso_date(q.birth_date) if q.birth_date else "", SHOWN_KEY: url})


def _show_url(state: SearchState) -> None:
    """Make ``state`` the URL (a new browser history entry) and the form's content."""
    url = to_url(state)
    st.session_state[SHOWN_KEY] = url
    st.query_params.from_dict(url)


def _submitted() -> None:
    """The form was submitted (Enter or the button): its fields become the URL."""
    s = st.session_state
    text = lambda key: s[key].strip() or None  # noqa: E731
    _show_url(SearchState(SearchQuery(
        text=text(TEXT), patient_id=text(PATIENT_ID), accession=text(ACCESSION),
        modalities=list(s[MODALITIES]), nas=list(s[NAS]), birth_date=text(BORN),
        date_from=s[FROM].isoformat() if s[FROM] else None,
        date_to=s[TO].isoformat() if s[TO] else None)))


def _form(options: dict, q: SearchQuery) -> None:
    # A value in the URL that the index no longer has stays selectable (and selected).
    modalities = sorted({*options["modalities"], *q.modalities})
    nas = sorted({*options["nas"], *q.nas})
    with st.form("search", border=False, enter_to_submit=True):
        st.text_input("Name, Patient ID or accession number", key=TEXT,
                      placeholder="e.g.  jane doe   ·   mül*   ·   PAT00012",
                      help="Name parts in any order; accents and case do not matter; * and "
                           "? are wildcards; three letters match inside a name. One word "
                           "with a digit is an ID.")
        c1, c2, c3, c4 = st.columns([2, 1, 1, 2])
        c1.multiselect("Modality (any of)", modalities, key=MODALITIES)
        c2.date_input("Study from", key=FROM, min_value=EARLIEST, format="YYYY-MM-DD")
        c3.date_input("Study to", key=TO, min_value=EARLIEST, format="YYYY-MM-DD")
        c4.multiselect("NAS", nas, key=NAS)
        with st.expander("More filters"):
            d1, d2, d3 = st.columns(3)
            d1.text_input("Patient ID (exact or start)", key=PATIENT_ID)
            d2.text_input("Accession number", key=ACCESSION)
            d3.text_input("Birth date", key=BORN, placeholder="YYYY-MM-DD")
        st.form_submit_button("Search", type="primary", icon=":material/search:",
                              on_click=_submitted)


def _table(result: SearchResult) -> pd.DataFrame:
    rows = []
    for p in result.patients:  # dataframe cells show text as it is: no escaping
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


def _results(result: SearchResult, state: SearchState) -> None:
    for note in result.notes:
        (st.info if result.total else st.warning)(md(note), icon=":material/lightbulb:")
    if not result.total:
        return
    if not result.patients:
        st.warning(f"Page {state.page} is past the last result ({result.total:,} "
                   "patients).", icon=":material/last_page:")
        _pager(result, state)
        return
    first = (state.page - 1) * PAGE_SIZE + 1
    total = f"{result.total:,}{'' if result.total_exact else '+'}"
    st.markdown(f"**{total}** patient(s) — showing {first}–"
                f"{first + len(result.persons) - 1}. Rows with the same **#** are one "
                "person on several NAS devices.")
    # A new search or page is a new table: no selection carried over from the last one.
    event = st.dataframe(_table(result), hide_index=True, on_select="rerun",
                         selection_mode="single-row", width="stretch", height="content",
                         key=f"results:{query_string(state)}")  # a whole page, no scroll
    if event.selection.rows:
        hit = result.patients[event.selection.rows[0]]
        _open(hit.nas, hit.patient_id)
    labels = [f"{fmt_name(p.patient_name)} · {p.patient_id} · {p.nas}"  # plain text
              for p in result.patients]
    with st.form("open", border=False, enter_to_submit=True):
        c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
        pick = c1.selectbox("Open patient", range(len(labels)), format_func=labels.__getitem__)
        if c2.form_submit_button("Open", icon=":material/open_in_new:"):
            hit = result.patients[pick]
            _open(hit.nas, hit.patient_id)
    _pager(result, state)


def _pager(result: SearchResult, state: SearchState) -> None:
    pages = max((result.total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    c1, c2, c3 = st.columns([1, 1, 6], vertical_alignment="center")
    c1.button("Previous", disabled=state.page <= 1, icon=":material/chevron_left:",
              on_click=_show_url, args=(state.at_page(min(state.page - 1, pages)),))
    c2.button("Next", disabled=state.page >= pages, icon=":material/chevron_right:",
              on_click=_show_url, args=(state.at_page(state.page + 1),))
    c3.caption(f"Page {state.page} of {pages}")


@st.fragment
def _search(ctx: Context, options: dict) -> None:
    gate.still_logged_in(ctx.settings)  # this fragment's own reruns skip main.py's gate
    state = _url_state()
    _fill_form(state)
    _form(options, state.query)
    if state.problems:
        for problem in state.problems:
            st.warning(md(problem), icon=":material/link_off:")
    elif state.query.is_empty():
        st.caption(f"{options['patients']:,} patient records on {len(options['nas'])} NAS "
                   "device(s). Type a name (any order, e.g. *jane doe*), part of one (three "
                   "letters or more, or with * and ?), a Patient ID or an accession number; "
                   "or filter by modality, dates and NAS.")
    else:
        try:
            result = ctx.access.search(ctx.user, state.searched())
        except ValueError as exc:  # a query the search refuses (a malformed date, too long)
            show_error(exc, "Check the search")
        except NasIndexError as exc:  # refused, or the audit trail cannot be written
            show_error(exc, "The search was not run")
        else:
            _results(result, state)


ctx = context()
st.title("Find a patient")
options = _facets(ctx.settings.index.url, ctx.user.scope, ctx.user)
if not options["patients"]:
    st.info("The index is empty: no NAS has been indexed yet. Run `nasindex index --all` "
            "(or wait for the first scheduled sync); the Health page shows its progress.",
            icon=":material/inventory_2:")
    st.stop()
_search(ctx, options)
