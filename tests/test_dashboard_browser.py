"""The dashboard for real: `streamlit run` on a free port, headless Chromium types a search
and the result appears; opening it shows the patient's images. No mocks: a DICOM tree
indexed by the real engine. Fails (never skips) if Chromium or Streamlit cannot start."""

from __future__ import annotations

import json

from browser import Chromium, count_images, streamlit_app, text_present
from nasindex.demo import demo_patients
from nasindex.index.db import migrate
from support import age, run_nas, write_config, write_tree

SEARCH_BOX = 'input[aria-label="Name, Patient ID or accession number"]'


def test_a_search_in_the_browser_shows_its_result(tmp_path):
    people = demo_patients(4, 4)
    write_tree(tmp_path / "ct", people, size=64)
    age(tmp_path / "ct")
    config = tmp_path / "nasindex.toml"
    settings = write_config(config, {"ct": {"type": "dicom-folder",
                                            "root": str(tmp_path / "ct"),
                                            "display_root": "\\\\nas1\\ct"}})
    migrate(settings.index.url)
    run_nas(settings, "ct", "full")
    with streamlit_app(config) as base, Chromium() as browser:
        browser.goto(base + "/")
        browser.wait_for(text_present("Find a patient"), 60, "the search page")
        browser.type_into(SEARCH_BOX, "maria garcia")  # GARCÍA^María, typed plainly
        browser.press("Enter")
        browser.wait_for(text_present("showing 1–1"), 30, "the result count")
        # the table is drawn on a canvas; its accessible copy holds the cell text
        cells = browser.wait_for("Array.from(document.querySelectorAll("
                                 "'[data-testid=\"stDataFrame\"] td'))"
                                 ".map(c => c.textContent).join('|')", 10, "table cells")
        assert "PAT00002" in cells and "GARCÍA, María" in cells, cells
        # keyboard path to the patient: the "Open" button of the picker form
        browser.eval("Array.from(document.querySelectorAll('button'))"
                     ".find(b => b.innerText.trim().endsWith('Open')).click()")
        browser.wait_for(text_present("Patient ID"), 30, "the patient page")
        browser.wait_for(count_images(5), 30, "the slice and its thumbnails")
        body = browser.eval("document.body.innerText")
        assert "PAT00002" in body and "\\\\nas1\\ct\\PAT00002\\" in body, json.dumps(body[:500])
