"""Item-level faults on real trees: each becomes an error row naming the path (escaped),
the run goes on; what cannot be listed is not tombstoned; a share that goes away
mid-read fails the run as a whole and is read again by the next one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select

from nasindex.config import Settings
from nasindex.demo import demo_patients
from nasindex.errors import NasUnavailable
from nasindex.health import error_list, nas_status
from nasindex.index.db import get_engine, migrate
from nasindex.index.models import IndexRun, ItemError
from nasindex.paths import real_path
from nasindex.registry import open_nas
from nasindex.search import SearchQuery, images, search
from nasindex.sync import SyncRun
from support import age, dump, run_nas, write_config, write_tree

BAD_NAME = b"IM\xff\xfe.dcm"  # not UTF-8: os.scandir hands it over as surrogates


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.dcm"))


def _tree(tmp_path: Path, patients: int = 2, slices: int = 3, **nas) -> Settings:
    root = tmp_path / "nas"
    write_tree(root, demo_patients(patients, slices=slices), size=16)
    age(root)
    s = write_config(tmp_path / "nasindex.toml", {"ct": {"type": "dicom-folder",
                                                         "root": str(root), **nas}})
    migrate(s.index.url)
    return s


def _sync_run(s: Settings, kind: str = "full") -> SyncRun:
    nas = s.nas["ct"]
    return SyncRun(open_nas(nas), nas, get_engine(s.index.url), kind)


def _errors(s: Settings) -> dict[str, str]:
    with get_engine(s.index.url).connect() as conn:
        return dict(conn.execute(select(ItemError.item_key, ItemError.reason)).all())


def test_non_utf8_name_is_indexed_escaped_and_opens_the_real_file(tmp_path: Path) -> None:
    s = _tree(tmp_path)
    root = s.nas["ct"].root
    run_nas(s, "ct", "full")
    files = _files(root)
    folder = os.fsencode(files[0].parent)
    good = folder + b"/" + BAD_NAME
    shutil.copyfile(files[0], good)  # an image named with bytes that are not UTF-8
    broken = folder + b"/\xe9broken\n.dcm"  # Latin-1 and a newline, and broken inside
    with open(broken, "wb") as f:
        f.write(files[1].read_bytes()[:300])
    files[-1].unlink()  # a deletion elsewhere in the same run
    age(root)

    summary = run_nas(s, "ct", "incremental")

    assert (summary.status, summary.new, summary.failed, summary.missing) == (
        "succeeded", 1, 1, 1)
    rel = os.fsdecode(folder).removeprefix(str(root) + "/")
    escaped, broken_key = f"{rel}/IM\\xff\\xfe.dcm", f"{rel}/\\xe9broken\\x0a.dcm"
    rows = {r["path"]: r for r in images(get_engine(s.index.url), "ct",
                                         files[0].relative_to(root).parts[0], scope=None)}
    assert f"{root}/{escaped}" in rows  # stored, keyed and shown escaped, on one line
    assert os.fsencode(real_path(root, escaped)) == good  # and it opens the real file
    assert open_nas(s.nas["ct"]).open_image(escaped).shape == (16, 16)
    assert broken_key in _errors(s) and summary.first_errors[0][0] == broken_key
    # The CLI prints the escaped paths and the counts, and does not crash.
    out = subprocess.run([sys.executable, "-m", "nasindex.cli", "--config", str(s.path),
                          "retry", "ct"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert broken_key in out.stdout and "Traceback" not in out.stderr


def test_symlink_loops_become_error_rows_and_the_run_goes_on(tmp_path: Path) -> None:
    s = _tree(tmp_path, follow_symlinks=True)
    root = s.nas["ct"].root
    patient = sorted(root.iterdir())[0]
    images_count = len(_files(root))
    (patient / "loop").symlink_to(patient, target_is_directory=True)  # a folder in itself
    (root / "self.dcm").symlink_to(root / "self.dcm")  # a link to itself
    summary = run_nas(s, "ct", "full")
    assert summary.status == "succeeded" and summary.new == images_count
    errors = _errors(s)
    assert "symbolic link loop" in errors[f"{patient.name}/loop/"]
    assert "symbolic links" in errors["self.dcm"]
    last_run = nas_status(get_engine(s.index.url), scope=None)[0]["last_run"]
    assert "could not be listed" in last_run["message"]


def test_file_gone_between_folder_listing_and_stat_is_simply_not_listed(tmp_path) -> None:
    s = _tree(tmp_path, patients=1)
    nas = open_nas(s.nas["ct"])
    items = iter(nas.scan().items)
    first = next(items)  # its folder is listed now; its files are stat-ed one by one
    folder = real_path(nas.root, first.rel_path).parent
    later = sorted(folder.iterdir())[1]
    later.unlink()
    rest = [fp.key for fp in items]
    assert later.relative_to(nas.root).as_posix() not in rest and rest


def test_file_deleted_between_listing_and_reading_is_an_error_row(tmp_path: Path) -> None:
    s = _tree(tmp_path)
    with _sync_run(s) as run:
        plan = run.plan()
        victim = plan.to_read[3]
        real_path(s.nas["ct"].root, victim.rel_path).unlink()
        for batch in run.batches():
            run.ingest(batch)
        run.reconcile()
    summary = run.summary
    assert (summary.status, summary.failed) == ("succeeded", 1)
    assert summary.new == len(plan.to_read) - 1
    assert _errors(s) == {victim.key: "vanished between listing and reading"}
    again = run_nas(s, "ct", "incremental")  # gone now: its error row goes too
    assert again.failed == 0 and _errors(s) == {}


def test_share_renamed_mid_read_fails_the_run_and_the_next_run_reads_the_rest(
        tmp_path: Path) -> None:
    s = _tree(tmp_path, patients=3, slices=4, batch_size=12)
    root = s.nas["ct"].root
    engine = get_engine(s.index.url)
    with pytest.raises(NasUnavailable) as info, _sync_run(s) as run:
        run.plan()
        batches = run.batches()
        run.ingest(batches[0])
        root.rename(tmp_path / "renamed")
        run.ingest(batches[1][:5])  # a few failures, not yet most of a batch: written...
        assert len(_errors(s)) == 5
        for batch in batches[1:]:
            run.ingest(batch)
    message = str(info.value)
    assert "'ct'" in message and "mount" in message and "mid-run" in message
    record = nas_status(engine, scope=None)[0]["last_run"]
    assert record["status"] == "failed" and record["message"] == message
    committed = len(dump(engine)["instances"])
    assert record["new"] == committed == 12  # counts say what was committed
    assert _errors(s) == {}  # ...and forgotten: nothing waits for a retry delay

    (tmp_path / "renamed").rename(root)
    again = run_nas(s, "ct", "incremental")
    assert (again.new, again.failed) == (len(_files(root)) - committed, 0)


def test_unlistable_folder_tombstones_nothing_and_is_reported(tmp_path: Path) -> None:
    s = _tree(tmp_path, patients=3)
    root = s.nas["ct"].root
    engine = get_engine(s.index.url)
    run_nas(s, "ct", "full")
    hidden = sorted(root.iterdir())[1]
    hidden_count = len(_files(hidden))
    hidden.chmod(0)  # no read permission for anyone without CAP_DAC_OVERRIDE
    deleted = _files(sorted(root.iterdir())[0])[0]
    deleted.unlink()
    write_tree(root / "new", demo_patients(4, slices=2)[3:], size=16)
    age(root / "new")
    try:
        # Tests run as root: drop the capabilities that ignore file permissions.
        out = subprocess.run(
            ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search",
             sys.executable, "-m", "nasindex.cli", "--config", str(s.path), "sync", "ct",
             "--json"], capture_output=True, text=True, timeout=120)
    finally:
        hidden.chmod(0o755)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)[0]
    folder = f"{hidden.name}/"
    assert summary["status"] == "succeeded" and summary["missing"] == 1
    assert summary["new"] == len(_files(root / "new")) and summary["failed"] == 1
    assert summary["first_errors"][0] == [folder, _errors(s)[folder]]
    assert "Permission denied" in _errors(s)[folder]
    missing = [row for row in dump(engine)["instances"] if row[4]]
    assert [row[0] for row in missing] == [deleted.relative_to(root).as_posix()]
    with engine.connect() as conn:
        message = conn.scalar(select(IndexRun.message).order_by(IndexRun.id.desc()))
    assert folder in message and "Nothing under them was marked missing" in message
    assert hidden_count > 0

    again = run_nas(s, "ct", "incremental")  # listable again: the error row goes
    assert again.missing == 0 and folder not in _errors(s)


def test_a_large_file_that_is_not_dicom_is_never_read_whole(tmp_path: Path) -> None:
    s = _tree(tmp_path, patients=1)
    big = s.nas["ct"].root / "scan.dcm"
    with open(big, "wb") as f:  # 2 GB, sparse: a video or an archive named .dcm
        f.write(b"\x89PNG not dicom")
        f.truncate(2 * 2**30)
    age(s.nas["ct"].root)
    done = subprocess.run([sys.executable, "-c", PEAK_OF_THE_COMMAND, "--config", str(s.path),
                           "index", "ct", "--json"], capture_output=True, text=True, check=True)
    summary = json.loads(done.stdout)[0]
    assert summary["skipped"] == 1 and summary["new"] == summary["seen"] - 1
    peak_kib = int(done.stderr.split("VmHWM:")[1].split()[0])
    assert peak_kib < 300 * 1024, f"{peak_kib} KiB"  # was 2.2 GB


# The command's own peak memory, read by itself as it exits: /proc's VmHWM belongs to the
# program's memory alone, while rusage's maxrss carries over the peak of the process it
# was forked from (a pytest of 500 MB).
PEAK_OF_THE_COMMAND = """
import atexit, runpy, sys
atexit.register(lambda: sys.stderr.write(open("/proc/self/status").read()))
sys.argv[0] = "nasindex"
runpy.run_module("nasindex.cli", run_name="__main__")
"""


def test_values_are_kept_at_dicom_length_limits_with_a_note(tmp_path: Path) -> None:
    s = _tree(tmp_path, patients=1)
    root = s.nas["ct"].root
    engine = get_engine(s.index.url)
    source = _files(root)[0]
    huge = pydicom.dcmread(source)
    huge.PatientID, huge.SOPInstanceUID = "HUGE1", "1.2.3.4.5"
    huge.StudyInstanceUID = huge.SeriesInstanceUID = "1.2.3.4"
    huge.PatientName = "X" * 10_000_000 + "^JANE=" + "Y" * 100 + "=Z=W"  # 10 MB, 4 groups
    huge.StudyDescription = "CT " * 100
    huge.save_as(root / "huge.dcm")
    bad_uid = pydicom.dcmread(source)
    bad_uid.SOPInstanceUID = "1." * 40  # 80 characters: not a UID a record may be cut to
    bad_uid.save_as(root / "bad_uid.dcm")
    age(root)

    summary = run_nas(s, "ct", "full")

    assert summary.status == "succeeded" and summary.failed == 1
    patient = search(engine, SearchQuery(patient_id="HUGE1"), scope=None).patients[0]
    assert patient.patient_name == "X" * 64 + "=" + "Y" * 64 + "=Z"  # 64 a group, 3 groups
    assert patient.studies[0].description == ("CT " * 100)[:64]
    errors = {e["path"]: e for e in error_list(engine, scope=None)}
    note = errors["huge.dcm"]
    assert note["note"] and "PatientName (10000110 characters" in note["reason"]
    assert "StudyDescription (299 characters; 64 at most)" in note["reason"]
    assert "X" * 65 not in note["reason"] and not errors["bad_uid.dcm"]["note"]
    assert "SOPInstanceUID is 80 characters" in errors["bad_uid.dcm"]["reason"]
    assert nas_status(engine, scope=None)[0]["errors"] == 1  # the note is not an error
    again = run_nas(s, "ct", "retry")  # a note is never retried; the error is
    assert again.failed == 1 and again.indexed == 0
    assert {e["path"] for e in error_list(engine, scope=None)} == {"huge.dcm", "bad_uid.dcm"}


def test_acr_nema_dates_and_times_are_stored_as_dicom_writes_them(tmp_path: Path) -> None:
    s = _tree(tmp_path, patients=1)
    root = s.nas["ct"].root
    engine = get_engine(s.index.url)
    old = pydicom.dcmread(_files(root)[0])
    old.PatientID, old.SOPInstanceUID = "OLD1", "1.2.3.4.6"
    old.StudyInstanceUID = old.SeriesInstanceUID = "1.2.3.5"
    # Written by an old modality: ACR-NEMA's separators, which pydicom keeps as text.
    old.PatientBirthDate, old.StudyDate, old.StudyTime = "1961.02.03", "2024-05-06", "10:15:00"
    old.save_as(root / "old.dcm")
    age(root)

    summary = run_nas(s, "ct", "full")

    assert summary.status == "succeeded" and summary.failed == 0
    found = search(engine, SearchQuery(birth_date="1961-02-03"), scope=None).patients
    assert [p.patient_id for p in found] == ["OLD1"]
    assert found[0].birth_date == "19610203"
    assert [st.date for st in found[0].studies] == ["20240506"]
    assert not error_list(engine, scope=None)  # nothing was cut: no note
