"""The search page as a clinician uses it, through Streamlit's AppTest: many searches in a
row with any mix of box and filters, each the one shown; paging; the search in the URL,
so that a bookmark or a reload shows it again. (tests/test_dashboard_browser.py does the
same in Chromium, with Back and a fresh tab.)"""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from dashboard_support import PATIENTS, loopback_server
from streamlit.testing.v1 import AppTest

from nasindex.config import load_settings
from nasindex.demo import demo_patients
from nasindex.index.db import get_engine
from nasindex.search import SearchQuery, search

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "main.py")
sys.path.insert(0, str(ROOT / "dashboard"))
from dash_search_state import PAGE_SIZE, SearchState, from_url, to_url  # noqa: E402

PEOPLE = demo_patients(PATIENTS, slices=2)
# Ten searches in a row, each a different mix of the box and the filters; a field not
# named is empty (so each search also clears what the one before had set).
SEARCHES = [
    {"text": "garcia"},
    {"text": "doe"},
    {"text": PEOPLE[11].patient_id},
    {"nas": ["ct2"]},
    {"text": "smith", "modalities": ["CT"]},
    {"text": "m*", "date_from": date(2025, 1, 1)},
    {"patient_id": "PAT0001"},
    {"text": "fatima", "date_to": date(2025, 6, 30), "nas": ["ct"]},
    {"accession": PEOPLE[5].studies[0].accession},
    {"birth_date": f"{PEOPLE[7].birth_date[:4]}-{PEOPLE[7].birth_date[4:6]}-"
                   f"{PEOPLE[7].birth_date[6:]}"},
]
WIDGETS = {"text": "search_text", "modalities": "search_modalities", "nas": "search_nas",
           "date_from": "search_from", "date_to": "search_to",
           "patient_id": "search_patient_id", "accession": "search_accession",
           "birth_date": "search_born"}


@pytest.fixture
def app(clinic, monkeypatch) -> AppTest:
    loopback_server()
    monkeypatch.setenv("NASINDEX_CONFIG", str(clinic))
    return AppTest.from_file(APP, default_timeout=30)


def _expected(clinic: Path, fields: dict, page: int = 1) -> list[tuple[str, str]]:
    """What search() itself answers for the same query and page: (NAS, Patient ID)s."""
    query = SearchQuery(**{k: v.isoformat() if isinstance(v, date) else v
                           for k, v in fields.items()})
    window = replace(query, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    result = search(get_engine(load_settings(clinic).index.url), window, scope=None)
    return [(p.nas, p.patient_id) for p in result.patients]


def _shown(at: AppTest) -> list[tuple[str, str]]:
    if not at.dataframe:
        return []
    table = at.dataframe[0].value
    return list(zip(table["NAS"], table["Patient ID"], strict=True))


def _submit(at: AppTest, fields: dict) -> AppTest:
    """Fill every field of the form (empty unless given) and press Enter."""
    for name, key in WIDGETS.items():
        value = fields.get(name)
        widget = at.text_input(key=key) if name in ("text", "patient_id", "accession",
                                                     "birth_date") else None
        if widget is not None:
            widget.input(value or "")
        elif name in ("modalities", "nas"):
            at.multiselect(key=key).set_value(value or [])
        else:
            at.date_input(key=key).set_value(value)
    return at.form_submit_button[0].click().run()  # the search form's button (Enter)


def test_every_search_in_a_row_is_the_one_shown(app, clinic) -> None:
    expected = [_expected(clinic, fields) for fields in SEARCHES]
    assert all(expected), "every search of the sequence must find someone"
    assert all(a != b for a, b in zip(expected, expected[1:], strict=False)), \
        "each search's answer differs from the one before (else a lost search goes unseen)"
    at = app.run()
    for fields, wanted in zip(SEARCHES, expected, strict=True):
        at = _submit(at, fields)
        assert not at.exception, fields
        assert _shown(at) == wanted, fields
        # the box and the URL hold this search, not the one before
        assert at.text_input(key="search_text").value == fields.get("text", "")
        assert _url(at).query.text == fields.get("text")


def _url(at: AppTest) -> SearchState:
    """The state the URL of the app now holds (AppTest keeps single values as str)."""
    return from_url({k: [v] if isinstance(v, str) else list(v)
                     for k, v in at.query_params.items()})


def test_next_and_previous_page_through_the_results(app, clinic) -> None:
    at = _submit(app.run(), {"nas": ["ct"]})
    first = _shown(at)
    assert first == _expected(clinic, {"nas": ["ct"]})
    assert len({pid for _, pid in first}) == PAGE_SIZE
    at = _button(at, "Next").click().run()
    assert _url(at).page == 2
    assert _shown(at) == _expected(clinic, {"nas": ["ct"]}, page=2)
    assert len({pid for _, pid in _shown(at)}) == PATIENTS - PAGE_SIZE
    assert _button(at, "Next").disabled
    at = _button(at, "Previous").click().run()
    assert _shown(at) == first and _button(at, "Previous").disabled


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_a_bookmarked_search_url_shows_its_results_and_fills_the_form(app, clinic) -> None:
    fields = {"text": "m*", "nas": ["ct"], "date_from": date(2024, 1, 1)}
    for param, values in to_url(SearchState(SearchQuery(
            text="m*", nas=["ct"], date_from="2024-01-01"), page=1)).items():
        app.query_params[param] = values if len(values) > 1 else values[0]
    at = app.run()  # a fresh session: nothing but the URL
    assert not at.exception
    assert _shown(at) == _expected(clinic, fields)
    assert at.text_input(key="search_text").value == "m*"
    assert at.multiselect(key="search_nas").value == ["ct"]
    assert at.date_input(key="search_from").value == date(2024, 1, 1)


def test_refused_searches_say_why_and_the_next_one_runs(app, clinic) -> None:
    """Hostile or mistaken text in the box (issue 9: a NUL, 1,000 words, wildcards
    alone, a wildcard that used to backtrack for minutes): a warning saying what to
    type, never a traceback, SQL or the text typed; the next search of the same session
    shows its results."""
    at = app.run()
    for typed, says in (("doe\x00jane", "control character"),
                        (" ".join(["doe"] * 1000), "characters long"),
                        ("??", "no letter or digit"), ("a*" * 10 + "n", "No patient matches")):
        at = _submit(at, {"text": typed})
        shown = " ".join(w.value for w in at.warning).replace("\\", "")
        assert not at.exception and not at.dataframe and says in shown, shown
        assert "SELECT" not in shown.upper() and "doe doe" not in shown
    at = _submit(at, {"text": "doe"})
    assert _shown(at) == _expected(clinic, {"text": "doe"}) != []


def test_a_broken_link_says_what_is_wrong_and_searches_nothing(app) -> None:
    app.query_params["q"] = "doe"
    app.query_params["from"] = "2024-13-45"
    at = app.run()
    assert not at.exception and not at.dataframe
    assert any("not a date" in w.value for w in at.warning)


def test_the_url_round_trip_keeps_every_field() -> None:
    state = SearchState(SearchQuery(text="jane doe", patient_id="PAT1", accession="A1",
                                    modalities=["CT", "MR"], date_from="20240101",
                                    date_to="2024-12-31", birth_date="19700603",
                                    nas=["ct", "pacs2"]), page=3)
    url = to_url(state)
    assert url["from"] == ["2024-01-01"] and url["modality"] == ["CT", "MR"]
    back = from_url(url)
    assert back.page == 3 and back.query.text == "jane doe" and back.query.nas == state.query.nas
    assert from_url({"page": ["x"]}).page == 1 and to_url(SearchState()) == {}
