"""A clinician's hands on the dashboard's search page in a real browser: type in the box,
pick filters, press Enter, read the result table, page, open a patient. Used by
tests/test_dashboard_browser.py, and by bench/bench_search.py through
:func:`time_searches` (the browser's time from Enter to the table drawn).

The result table is an ``st.dataframe``: a grid drawn on a canvas, which is what the
clinician sees, plus an accessible ``<table>`` copy that the grid (glide-data-grid) only
writes 200 ms after its last change. The rows are read from the copy; the time is read
from the canvas: the page logs every text a canvas draws, with the time, and a search
counts as shown once every Patient ID of its rows was drawn after the key or click."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from urllib.parse import urlencode

from browser import Chromium, Page, streamlit_app
from browser import click_button as click_js

BOX = "Name, Patient ID or accession number"
MORE_FILTERS = "More filters"
# The run is over and drawn: Streamlit's "running" widget is gone, no element is stale.
SETTLED = ("!document.querySelector('[data-testid=\"stStatusWidget\"]') && "
           "!document.querySelector('[data-stale=\"true\"]')")
ROWS = """(() => {
  const grid = document.querySelector('[data-testid="stDataFrame"] table');
  if (!grid) return [];
  const head = Array.from(grid.querySelectorAll('th')).map(h => h.textContent);
  return Array.from(grid.querySelectorAll('tr')).slice(1).map(r =>
    Object.fromEntries(Array.from(r.querySelectorAll('td')).map((c, i) =>
      [head[i], c.textContent])));
})()"""


# Installed in every document of the tab before its own scripts (see open_search).
DRAW_LOG = """if (!window.nasindexDrawn) {
  window.nasindexDrawn = [];
  const fillText = CanvasRenderingContext2D.prototype.fillText;
  CanvasRenderingContext2D.prototype.fillText = function (text, ...rest) {
    window.nasindexDrawn.push([performance.now(), String(text)]);
    return fillText.call(this, text, ...rest);
  };
}"""
# Forget what was drawn; note the time of the next key or click (the user's action).
ARM = "window.nasindexRowsBefore = JSON.stringify(" + ROWS + ");" + """
window.nasindexDrawn.length = 0;
window.nasindexActedAt = null;
for (const kind of ['keydown', 'click']) window.addEventListener(kind, () => {
  window.nasindexActedAt ??= performance.now(); }, {capture: true, once: true});"""
# Milliseconds from the action to the moment every Patient ID shown was drawn (or null).
DRAWN_AFTER = "(() => { const left = new Set(" + ROWS + """.map(row => row['Patient ID']));
  for (const [at, text] of window.nasindexDrawn) {
    if (at >= window.nasindexActedAt && left.delete(text) && !left.size)
      return at - window.nasindexActedAt;
  }
  return null;
})()"""


def field(label: str) -> str:
    """JavaScript for the input labelled ``label``."""
    selector = json.dumps('input[aria-label="' + label + '"]')
    return f"document.querySelector({selector})"


def open_search(page: Page, url: str) -> None:
    page.call("Page.addScriptToEvaluateOnNewDocument", source=DRAW_LOG)
    page.goto(url)
    page.wait_for(f"!!{field(BOX)}", 60, "the search box")


def type_text(page: Page, label: str, text: str) -> None:
    """Replace what a text box holds, as a user selecting it all and typing."""
    page.wait_for(f"!!{field(label)}", 10, label)
    page.eval(f"{field(label)}.focus(); {field(label)}.select()")
    if text:
        page.call("Input.insertText", text=text)
    else:
        page.press("Backspace")


def pick(page: Page, label: str, options: list[str]) -> None:
    """Make a multiselect hold exactly ``options``: remove its tags, type each, Enter."""
    page.eval(f"{field(label)}.focus()")
    tags = f"{field(label)}.closest('[data-testid=\"stMultiSelect\"]')" \
           ".querySelectorAll('[data-tag]').length"
    while page.eval(tags):
        page.press("Backspace")
    focused = "(document.querySelector('[role=option][data-focused=true]') || {}).textContent"
    for option in options:
        page.call("Input.insertText", text=option)
        page.wait_for(f"Array.from(document.querySelectorAll('[role=option]'))"
                      f".some(o => o.textContent === {json.dumps(option)})", 10, option)
        for _ in range(20):  # down the list (past "Select all matches") to the option
            if page.eval(focused) == option:
                break
            page.press("ArrowDown")
        page.press("Enter")
    page.press("Escape")  # close the list of options


def set_date(page: Page, label: str, day: date) -> None:
    """Type a date into a date field's year, month and day segments."""
    page.eval(f"document.querySelector('[aria-label=\"year, {label}\"]').focus()")
    for key in day.strftime("%Y%m%d"):
        page.press(key)


def open_more_filters(page: Page) -> None:
    details = ("Array.from(document.querySelectorAll('details')).find(d => "
               f"d.querySelector('summary').innerText.includes({json.dumps(MORE_FILTERS)}))")
    if not page.eval(f"{details}.open"):
        page.eval(f"{details}.querySelector('summary').click()")
        page.wait_for(f"{details}.open", 10, "the more filters")


def submit(page: Page, expected_url: dict[str, list[str]], timeout: float = 60) -> float:
    """Press Enter in the box; the seconds from the key until the new result table was
    drawn, once the URL holds ``expected_url`` (the caller picks a search that finds
    someone, and whose table differs from the one before)."""
    page.eval(f"{field(BOX)}.focus()")
    return until_new_table(page, lambda: page.press("Enter"), expected_url, timeout)


def until_new_table(page: Page, action, expected_url: dict[str, list[str]],
                    timeout: float = 60) -> float:
    """Do ``action`` (press Enter, click Next...); wait until the URL holds
    ``expected_url``, the run is over and a result table that differs from the one
    before is shown; the seconds from the action until that table was drawn."""
    if not page.eval("!!window.nasindexDrawn"):
        raise RuntimeError("the tab was not opened with open_search (no drawing log)")
    page.eval(ARM)
    action()
    wanted = json.dumps(urlencode(expected_url, doseq=True))
    drawn = page.wait_for(
        f"new URLSearchParams(location.search).toString() === "
        f"new URLSearchParams({wanted}).toString() && {SETTLED} && {ROWS}.length > 0 && "
        f"JSON.stringify({ROWS}) !== window.nasindexRowsBefore && {DRAWN_AFTER}",
        timeout, f"the results of {expected_url}")
    return drawn / 1000


def rows(page: Page) -> list[dict[str, str]]:
    """The result table, a dict per row (column -> cell text)."""
    return page.eval(ROWS)


def click_button(page: Page, label: str) -> None:
    if not page.eval(click_js(label)):
        raise RuntimeError(f"no {label!r} button on the page")


def time_searches(config: Path, texts: list[str], rounds: int = 3) -> list[float]:
    """Seconds from Enter to the table drawn, for each of ``texts`` typed in turn into
    a running dashboard, ``rounds`` times over (the first search of a session, which
    loads the page's code, is not counted)."""
    with streamlit_app(config) as base, Chromium() as browser:
        open_search(browser, base + "/")
        type_text(browser, BOX, texts[-1])
        submit(browser, {"q": [texts[-1]]})
        times = []
        for _ in range(rounds):
            for text in texts:
                type_text(browser, BOX, text)
                times.append(submit(browser, {"q": [text]}))
        return times


