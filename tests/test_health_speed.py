"""The health page's files/s is that of the latest run that read a meaningful number of
files (MEANINGFUL_RUN_FILES), not of an incremental run that read one file. (The page
shows nas_health's figure and says what it is: tests/test_dashboard.py.)"""

from __future__ import annotations

import shutil

from nasindex.demo import demo_patients
from nasindex.health import MEANINGFUL_RUN_FILES, nas_health, recent_runs
from nasindex.index.db import get_engine, migrate
from support import age, run_nas, write_config, write_tree


def test_files_per_second_is_that_of_the_last_meaningful_run(tmp_path) -> None:
    root = tmp_path / "ct"
    write_tree(root, demo_patients(12, slices=12), size=8)
    written = len(list(root.rglob("*.dcm")))
    assert written >= MEANINGFUL_RUN_FILES
    age(root)
    settings = write_config(tmp_path / "nasindex.toml", {"ct": {"type": "dicom-folder",
                                                                 "root": str(root)}})
    migrate(settings.index.url)
    engine = get_engine(settings.index.url)
    run_nas(settings, "ct", "full")
    # then a new file arrives and an incremental run reads just that one
    first = next(root.rglob("*.dcm"))
    shutil.copy2(first, first.with_name("IM_NEW.dcm"))  # dated like the others
    small = run_nas(settings, "ct", "incremental")
    assert small.new == 1
    full, latest = (next(r for r in recent_runs(engine, scope=None) if r["kind"] == k)
                    for k in ("full", "incremental"))
    assert latest["files_read"] == 1 and full["files_read"] == written
    [row] = nas_health(engine, settings, scope=None)
    assert row["files_per_second"] == full["files_per_second"] != latest["files_per_second"]
