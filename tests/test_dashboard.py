"""The dashboard's pages through Streamlit's AppTest, on an index built by the real engine
from real DICOM trees: search -> patient -> preview; health with a stale NAS and an
error; clear messages (no tracebacks) when the config or the index is not usable."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from dashboard_support import loopback_server
from streamlit.testing.v1 import AppTest

from nasindex import preview
from nasindex.demo import demo_patients
from nasindex.freshness import Watcher
from nasindex.index.db import get_engine, migrate
from nasindex.registry import open_nas
from support import age, run_nas, write_config, write_tree

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "main.py")
sys.path.insert(0, str(ROOT / "dashboard"))

SLICES = 14  # more than one page of thumbnails
FLOW_RUN = "0d8c2f4e-1111-4a2b-9c3d-5e6f7a8b9c0d"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """Two DICOM NAS devices sharing some patients, one broken file, one stale NAS."""
    base = tmp_path_factory.mktemp("dash")
    people = demo_patients(6, SLICES)
    write_tree(base / "ct", people, size=64)
    write_tree(base / "ct2", people[::2], size=64)
    broken = base / "ct" / "PAT00001" / "broken.dcm"
    broken.write_bytes(next((base / "ct" / "PAT00001").rglob("*.dcm")).read_bytes()[:2000])
    for root in (base / "ct", base / "ct2"):
        age(root)
    config = base / "nasindex.toml"
    settings = write_config(config, {
        "ct": {"type": "dicom-folder", "root": str(base / "ct"), "display_root": "\\\\nas1\\ct"},
        # no watch, a 60 ms interval: stale (older than twice that) a moment after its sync
        "ct2": {"type": "dicom-folder", "root": str(base / "ct2"), "sync_minutes": 0.001,
                "freshness_seconds": 0},
    })
    with config.open("a", encoding="utf-8") as f:  # runs link to the Prefect UI
        f.write('\n[prefect]\nui_url = "http://prefect.example:4200/"\n')
    migrate(settings.index.url)
    run_nas(settings, "ct", "full", flow_run_id=FLOW_RUN)
    run_nas(settings, "ct2", "full")
    ct = settings.nas["ct"]  # ct is watched: a poll finds a study copied in since
    watcher = Watcher(open_nas(ct), ct, get_engine(settings.index.url), flow_run_id=FLOW_RUN)
    watcher.start()
    write_tree(base / "ct" / "late", demo_patients(7, 2)[6:], size=16)
    assert watcher.cycle().run.new > 0
    return config


@pytest.fixture
def app(demo, monkeypatch) -> AppTest:
    loopback_server()
    monkeypatch.setenv("NASINDEX_CONFIG", str(demo))
    preview.clear_caches()
    return AppTest.from_file(APP, default_timeout=30)


def _texts(at: AppTest, kind: str) -> list[str]:
    return [str(e.value) for e in at.get(kind)]


def _search(at: AppTest, text: str) -> AppTest:
    at.run()
    at.text_input[0].input(text)
    return at.form_submit_button[0].click().run()


def test_search_opens_patient_with_folders_and_previews(app):
    at = _search(app, "jose mueller")  # MÜLLER^José: 'mueller' is one edit from 'muller'
    assert not at.exception
    table = at.dataframe[0].value
    assert set(table["Patient ID"]) == {"PAT00001"} and set(table["NAS"]) == {"ct", "ct2"}
    assert (table["Match"] == "similar").all()
    assert any("similar" in t for t in _texts(at, "info"))
    assert table["Same person because"].iloc[0].startswith("Same Patient ID")
    at.form_submit_button[1].click().run()  # "Open" (keyboard path: select, Enter)
    assert not at.exception
    assert at.query_params["nas"] == "ct" and at.query_params["id"] == "PAT00001"
    assert at.title[0].value.startswith("MÜLLER")
    assert any("Found on 2 NAS devices" in t for t in _texts(at, "info"))
    codes = _texts(at, "code")
    assert any(c.startswith("\\\\nas1\\ct\\PAT00001\\") for c in codes)  # study/series folders
    assert any(c.endswith("IM_00001.dcm") for c in codes)  # the slice on view
    images = at.get("image")
    assert len(images) == preview.THUMBS_PER_PAGE + 1  # a page of thumbnails + the view
    # scroll: slider to the last slice shows its thumbnail page and path
    count = int(at.slider[0].max)
    assert count > preview.THUMBS_PER_PAGE
    at.slider[0].set_value(count).run()
    assert not at.exception
    assert any(c.endswith(f"IM_{count:05d}.dcm") for c in _texts(at, "code"))
    assert len(at.get("image")) == count - preview.THUMBS_PER_PAGE + 1
    at.button(key="prev_slice").click().run()  # one slice back
    assert any(c.endswith(f"IM_{count - 1:05d}.dcm") for c in _texts(at, "code"))
    # window presets: the lung window shows the same slice differently
    at.radio(key="preset").set_value("lung").run()
    assert not at.exception
    # the other NAS's record of the same person
    at.radio(key="record").set_value(1).run()
    assert not at.exception and any("ct2" in c or "PAT00001" in c for c in _texts(at, "code"))


def test_search_empty_and_no_match_states(app):
    at = app.run()
    assert not at.exception
    assert any("Type a name" in c for c in _texts(at, "caption"))
    at = _search(app, "zz")
    assert any("No patient matches" in w and "Try" in w for w in _texts(at, "warning"))


def test_window_presets_map_hounsfield_units():
    hu = np.array([[-1000.0, -600.0, 40.0, 400.0, 1300.0]])
    soft = preview.window(hu, "soft tissue")
    assert soft[0, 0] == 0 and soft[0, 2] == 127 and soft[0, 3] == 255
    lung = preview.window(hu, "lung")
    assert lung[0, 1] == 127
    bone = preview.window(hu, "bone")
    assert bone[0, 3] == 127 and bone[0, 4] == 255


def test_previews_read_only_below_indexed_roots(demo, tmp_path):
    from nasindex.config import load_settings

    settings = load_settings(demo)
    engine = get_engine(settings.index.url)
    preview.clear_caches()
    with pytest.raises(preview.PreviewError, match="outside the root"):
        preview.pixels(settings, engine, "ct", "../ct2/PAT00001")
    moved = write_config(tmp_path / "moved.toml", {
        "ct": {"type": "dicom-folder", "root": str(tmp_path)}}, settings.index.url)
    with pytest.raises(preview.PreviewError, match="differs from the one in the index"):
        preview.pixels(moved, engine, "ct", "PAT00001/x.dcm")


def test_health_shows_stale_nas_errors_and_runs(app):
    time.sleep(0.2)  # > twice the 60 ms interval of ct2
    at = app.run()
    at.switch_page("views/health.py").run()
    assert not at.exception
    overview = at.dataframe[0].value.set_index("NAS")
    assert overview.loc["ct2", "Current"] == "STALE" and overview.loc["ct", "Current"] == "ok"
    assert overview.loc["ct", "Watch"].startswith("polls every")  # its heartbeat
    assert overview.loc["ct2", "Watch"] == "none (sync every 0.001 min)"
    lag = overview.loc["ct", "Newest study searchable after"]  # the study the poll found
    assert lag.endswith(" s") and 0 <= int(lag[:-2]) < 600
    assert overview.loc["ct", "Reachable"] == "yes" and overview.loc["ct", "Errors"] == 1
    assert any("Not current" in w and "ct2" in w for w in _texts(at, "warning"))
    assert any("Files/s: of the latest successful run that read at least" in c
               for c in _texts(at, "caption"))
    errors = at.dataframe[-1].value
    assert list(errors["path"]) == ["PAT00001/broken.dcm"]
    assert "truncated" in errors["reason"].iloc[0]
    runs = at.dataframe[1].value.set_index("nas")
    assert set(runs.index) == {"ct", "ct2"} and (runs["status"] == "succeeded").all()
    full = runs[runs["kind"] == "full"]
    assert full.loc["ct", "prefect"] == f"http://prefect.example:4200/runs/flow-run/{FLOW_RUN}"
    assert list(runs[runs["kind"] == "poll"].index) == ["ct"]  # the poll that changed
    assert any(FLOW_RUN in m for m in _texts(at, "markdown"))  # the ct expander's link


@pytest.mark.parametrize("problem", ["no config", "not migrated", "empty"])
def test_clear_messages_instead_of_tracebacks(problem, tmp_path, monkeypatch):
    config = tmp_path / "nasindex.toml"
    if problem != "no config":
        write_config(config, {"ct": {"type": "dicom-folder", "root": str(tmp_path)}})
    if problem == "empty":
        from nasindex.config import load_settings

        migrate(load_settings(config).index.url)
    elif problem == "not migrated":
        (tmp_path / "index.db").write_bytes(b"")
    monkeypatch.setenv("NASINDEX_CONFIG", str(config))
    for page in ("views/search.py", "views/patient.py", "views/health.py"):
        at = AppTest.from_file(APP, default_timeout=30).run()
        at.switch_page(page).run()
        assert not at.exception, page
        shown = " ".join(_texts(at, "error") + _texts(at, "warning") + _texts(at, "info"))
        expected = {"no config": "No config file", "not migrated": "nasindex init",
                    "empty": "nasindex index"}[problem]
        if problem == "empty" and page != "views/search.py":
            continue  # the patient and health pages have their own empty states
        assert expected in shown, (page, shown)
