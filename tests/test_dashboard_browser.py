"""The dashboard for real, as a clinician uses it: ``streamlit run`` on a free port,
headless Chromium over the DevTools protocol, one session doing a day's sequence: ten
searches in a row (box and filters), each showing its own result; Next and Previous; a
patient opened and the browser's Back to the same results; the search URL opened in a
fresh tab; patients whose names and descriptions are Markdown/HTML shown literally, with
no request leaving for the URLs they hold. No mocks: DICOM trees indexed by the real
engine. Fails (never skips) if Chromium or Streamlit cannot start."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path
from urllib.parse import urlencode

import dashboard_driver as hands
import pytest
from dashboard_support import HOSTILE_DESCRIPTION, HOSTILE_NAME, PATIENTS

from browser import Chromium, count_images, streamlit_app, text_present
from nasindex.config import load_settings
from nasindex.index.db import get_engine
from nasindex.search import SearchQuery, search

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dashboard"))
from dash_context import fmt_name  # noqa: E402
from dash_search_state import PAGE_SIZE, SearchState, to_url  # noqa: E402
from dash_text import WORD_JOINER  # noqa: E402

# Each step changes some fields of the form (the others keep what the step before set)
# and presses Enter in the box.
STEPS = [
    {"text": "garcia"},
    {"text": "doe"},
    {"text": "PAT00012"},
    {"text": "", "nas": ["ct"]},  # two pages: Next and Previous after it
    {"text": "smith", "nas": []},
    {"text": "fatima", "nas": ["ct2"]},
    {"text": "", "nas": [], "patient_id": "PAT0001"},
    {"text": "maria", "patient_id": ""},  # a patient opened from it, then Back
    {"text": "m*", "date_from": date(2025, 1, 1)},
    {"text": "m*", "date_from": date(2026, 1, 1)},  # opened in a fresh tab after
]
OPEN_AFTER, PAGE_AFTER = 7, 3


def _queries() -> list[SearchQuery]:
    query, out = SearchQuery(), []
    for step in STEPS:
        changes = {k: (v.isoformat() if isinstance(v, date) else v or None)
                   for k, v in step.items() if k not in ("nas",)}
        query = replace(query, **changes, nas=step.get("nas", query.nas))
        out.append(query)
    return out


def _apply(page, step: dict) -> None:
    for field, value in step.items():
        if field == "text":
            hands.type_text(page, hands.BOX, value)
        elif field == "nas":
            hands.pick(page, "NAS", value)
        elif field == "patient_id":
            hands.open_more_filters(page)
            hands.type_text(page, "Patient ID (exact or start)", value)
        elif field == "date_from":
            hands.set_date(page, "Study from", value)


@pytest.fixture(scope="module")
def oracle(clinic):
    """What search() itself answers: (NAS, Patient ID) rows of a query's page."""
    engine = get_engine(load_settings(clinic).index.url)

    def rows(query: SearchQuery, page: int = 1) -> list[tuple[str, str]]:
        window = replace(query, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        return [(p.nas, p.patient_id) for p in search(engine, window, scope=None).patients]
    return rows


def _shown(page) -> list[tuple[str, str]]:
    return [(r["NAS"], r["Patient ID"]) for r in hands.rows(page)]


def test_a_clinicians_session_in_the_browser(clinic, oracle) -> None:
    queries = _queries()
    expected = [oracle(q) for q in queries]
    assert all(expected) and all(a != b for a, b in zip(expected, expected[1:], strict=False))
    with streamlit_app(clinic) as base, Chromium() as browser:
        hands.open_search(browser, base + "/")
        for i, (step, query) in enumerate(zip(STEPS, queries, strict=True)):
            _apply(browser, step)
            url = to_url(SearchState(query))
            hands.submit(browser, url)
            assert _shown(browser) == expected[i], step
            assert browser.eval(f"{hands.field(hands.BOX)}.value") == (query.text or "")
            if i == PAGE_AFTER:
                _next_and_previous(browser, query, oracle)
            if i == OPEN_AFTER:
                _open_and_back(browser, url, expected[i])
        _bookmark_in_a_fresh_tab(browser, browser.eval("location.href"), expected[-1])
        _hostile_text_is_shown_literally(browser, base)


def _next_and_previous(browser, query: SearchQuery, oracle) -> None:
    second = to_url(SearchState(query, page=2))
    hands.until_new_table(browser, lambda: hands.click_button(browser, "Next"), second)
    assert _shown(browser) == oracle(query, page=2)
    assert len({pid for _, pid in _shown(browser)}) == PATIENTS - PAGE_SIZE
    hands.until_new_table(browser, lambda: hands.click_button(browser, "Previous"),
                          to_url(SearchState(query)))
    assert _shown(browser) == oracle(query)


def _open_and_back(browser, url: dict, rows: list[tuple[str, str]]) -> None:
    nas, patient_id = rows[0]  # the picker holds the first row: "Open" opens it
    hands.click_button(browser, "Open")
    browser.wait_for(text_present("Back to the results"), 30, "the patient page")
    browser.wait_for(count_images(3), 30, "the slice and its thumbnails")
    body = browser.eval("document.body.innerText")
    assert patient_id in body and "/patient" in browser.eval("location.pathname")
    if nas == "ct":
        assert f"\\\\nas1\\ct\\{patient_id}\\" in body, json.dumps(body[:500])
    browser.eval("history.back()")
    browser.wait_for(f"new URLSearchParams(location.search).toString() === new "
                     f"URLSearchParams({json.dumps(urlencode(url, doseq=True))})"
                     f".toString() && {hands.SETTLED} && {hands.ROWS}.length > 0", 30,
                     "the results again")
    assert _shown(browser) == rows
    assert browser.eval(f"{hands.field(hands.BOX)}.value") == url["q"][0]


def _bookmark_in_a_fresh_tab(browser, href: str, rows: list[tuple[str, str]]) -> None:
    tab = browser.new_tab(href)
    try:
        tab.wait_for(f"{hands.SETTLED} && {hands.ROWS}.length > 0", 60, "the bookmarked search")
        assert _shown(tab) == rows
        assert tab.eval(f"{hands.field(hands.BOX)}.value") == STEPS[-1]["text"]
    finally:
        tab.close_tab()


def _hostile_text_is_shown_literally(browser, base: str) -> None:
    browser.requests.clear()
    browser.goto(f"{base}/patient?nas=ct&id=PAT{PATIENTS:05d}")
    browser.wait_for(f"{hands.SETTLED} && " + text_present("Studies"), 60, "the patient")
    # what a reader sees: the invisible word joiners md() puts where a bare link would
    # start are not text they read; HTML folds runs of spaces
    title = browser.eval("document.querySelector('h1').innerText").replace(WORD_JOINER, "")
    assert title.split() == fmt_name(HOSTILE_NAME).split(), title
    assert HOSTILE_DESCRIPTION in browser.eval("document.body.innerText").replace(
        WORD_JOINER, "")
    # no image, link or formula was made of the text (the literal title shows that no
    # emoji or style was either), and nothing was fetched from the URLs it holds
    assert not browser.eval("!!document.querySelector('img[src*=\"invalid\"], "
                            "a[href*=\"invalid\"], .katex')")
    assert browser.requests and not [u for u in browser.requests if ".invalid" in u]
