"""The sync engine on real generated DICOM trees: change detection, tombstones, revival,
safety rules, the settle window, retries, and convergence after a killed run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from nasindex.demo import demo_patients
from nasindex.errors import NasUnavailable, UnsafeSync
from nasindex.health import nas_status
from nasindex.index.db import get_engine, migrate
from nasindex.index.models import IndexRun, Instance, ItemError
from nasindex.search import SearchQuery, images, search
from support import age, dump, run_nas, write_config, write_tree


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.dcm"))




def test_untouched_files_are_not_reopened(settings, engine, ct_root):
    run_nas(settings, "ct", "full")
    before = {row[0]: row for row in dump(engine)["instances"]}
    files = _files(ct_root)
    modified, deleted, untouched = files[0], files[1], files[2:]
    for path in untouched:  # garble bytes, keep the fingerprint (size, mtime)
        st = path.stat()
        path.write_bytes(b"\xff" * st.st_size)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    data = bytearray(modified.read_bytes())
    data[-2:] = b"\x01\x02"  # new pixel content
    st = modified.stat()
    modified.write_bytes(bytes(data))
    os.utime(modified, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))  # settled, but changed
    deleted.unlink()
    new_patient = demo_patients(4, slices=3)[3]
    write_tree(ct_root / "new", [new_patient], size=32)
    age(ct_root / "new")
    added = len(_files(ct_root / "new"))

    summary = run_nas(settings, "ct", "incremental")
    assert (summary.new, summary.changed, summary.missing, summary.failed) == (added, 1, 1, 0)
    after = {row[0]: row for row in dump(engine)["instances"]}
    rel = lambda p: p.relative_to(ct_root).as_posix()  # noqa: E731
    assert all(after[rel(p)] == before[rel(p)] for p in untouched)  # never reopened
    assert after[rel(modified)][2] != before[rel(modified)][2]  # new content hash
    assert after[rel(deleted)][4] is True  # tombstone, row kept
    hits = search(engine, SearchQuery(patient_id=new_patient.patient_id), scope=None).patients
    assert [h.patient_id for h in hits] == [new_patient.patient_id]
    assert sum(s.instance_count for s in hits[0].studies) == added
    gone = [i for i in images(engine, "ct", before[rel(deleted)][7], scope=None)
            if i["missing_since"]]
    assert [g["path"] for g in gone] == [str(deleted)]


def test_deleted_file_that_returns_is_revived(settings, engine, ct_root):
    run_nas(settings, "ct", "full")
    victim = _files(ct_root)[0]
    saved = victim.read_bytes()
    st = victim.stat()
    victim.unlink()
    assert run_nas(settings, "ct", "incremental").missing == 1
    victim.write_bytes(saved)
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    back = run_nas(settings, "ct", "incremental")
    assert back.revived == 1 and back.new == 0
    assert all(row[4] is False for row in dump(engine)["instances"])


@pytest.mark.parametrize("breakage", ["missing", "empty"])
def test_unmounted_or_empty_root_fails_and_changes_nothing(settings, engine, ct_root,
                                                           breakage):
    run_nas(settings, "ct", "full")
    before = dump(engine)
    shutil.rmtree(ct_root)
    if breakage == "empty":
        ct_root.mkdir()  # what an unmounted mount point looks like
    with pytest.raises(NasUnavailable, match="ct") as info:
        run_nas(settings, "ct", "incremental")
    assert "mount" in str(info.value)
    assert dump(engine) == before
    last = nas_status(engine, scope=None)[0]["last_run"]
    assert last["status"] == "failed" and "mount" in last["message"]


def test_mass_disappearance_fails_and_changes_nothing(settings, engine, ct_root):
    run_nas(settings, "ct", "full")
    before = dump(engine)
    files = _files(ct_root)
    for path in files[: len(files) // 2]:
        path.unlink()
    with pytest.raises(UnsafeSync, match="max_missing_fraction"):
        run_nas(settings, "ct", "incremental")
    assert dump(engine) == before


def test_files_still_being_written_wait_for_the_next_run(tmp_path, ct_root):
    settings = write_config(tmp_path / "settle.toml", {"ct": {
        "type": "dicom-folder", "root": str(ct_root), "settle_seconds": 1}})
    migrate(settings.index.url)
    growing, recent = _files(ct_root)[:2]
    os.utime(recent)  # written just now, but not moving: two looks agree, it is read
    stop = threading.Event()

    def write_slowly() -> None:  # appends while the run lists, waits and reads
        with open(growing, "ab") as f:
            while not stop.wait(0.05):
                f.write(b"\0" * 64)
                f.flush()

    writer = threading.Thread(target=write_slowly)
    writer.start()
    try:
        summary = run_nas(settings, "ct", "full")
    finally:
        stop.set()
        writer.join()
    assert summary.deferred == 1 and summary.indexed == len(_files(ct_root)) - 1
    key = growing.relative_to(ct_root).as_posix()
    assert key not in {row[0] for row in dump(get_engine(settings.index.url))["instances"]}
    later = run_nas(settings, "ct", "incremental")
    assert (later.new, later.deferred) == (1, 0)


def test_failed_file_is_retried_later_and_on_demand(settings, engine, ct_root):
    broken = ct_root / "broken.dcm"
    good = _files(ct_root)[0].read_bytes()
    broken.write_bytes(good[: len(good) // 2])  # truncated copy
    age(ct_root)
    assert run_nas(settings, "ct", "full").failed == 1
    assert run_nas(settings, "ct", "incremental").failed == 0  # not due yet
    retry = run_nas(settings, "ct", "retry")
    assert (retry.failed, retry.indexed) == (1, 0)
    with engine.connect() as conn:
        assert conn.scalar(select(ItemError.attempts)) == 2
    broken.write_bytes(good)  # repaired: a whole, valid file
    os.utime(broken, (time.time() - 600, time.time() - 600))
    fixed = run_nas(settings, "ct", "incremental")
    assert fixed.changed == 0 and fixed.new == 1 and fixed.failed == 0
    assert dump(engine)["errors"] == []


def test_killed_run_converges_when_rerun(tmp_path: Path) -> None:
    root = tmp_path / "big"
    write_tree(root, demo_patients(30, slices=40), size=16)
    age(root)
    nas = {"type": "dicom-folder", "root": str(root), "batch_size": 20}
    killed = write_config(tmp_path / "a" / "nasindex.toml", dict(ct=nas))
    clean = write_config(tmp_path / "b" / "nasindex.toml", dict(ct=nas))
    for s in (killed, clean):
        migrate(s.index.url)
    total = len(_files(root))

    proc = subprocess.Popen([sys.executable, "-m", "nasindex.cli", "--config",
                             str(killed.path), "index", "ct"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engine = get_engine(killed.index.url)
    count = 0
    deadline = time.monotonic() + 60
    while count < 60 and time.monotonic() < deadline and proc.poll() is None:
        with engine.connect() as conn:
            count = conn.scalar(select(func.count()).select_from(Instance))
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with engine.connect() as conn:
        partial = conn.scalar(select(func.count()).select_from(Instance))
    assert 0 < partial < total, "the run was not caught halfway"
    assert partial % 20 == 0  # whole batches only: each commits atomically

    run_nas(killed, "ct", "full")
    run_nas(clean, "ct", "full")
    assert dump(engine) == dump(get_engine(clean.index.url))
    with engine.connect() as conn:
        statuses = list(conn.scalars(select(IndexRun.status).order_by(IndexRun.id)))
    assert statuses == ["interrupted", "succeeded"]


def test_two_runs_of_one_nas_never_overlap(settings, engine):
    from nasindex.runlock import RunInProgress, run_lock

    with run_lock(engine, "ct"), pytest.raises(RunInProgress, match="'ct'"):
        run_nas(settings, "ct", "incremental")
    assert run_nas(settings, "ct", "incremental").status == "succeeded"


def test_a_run_is_built_from_ready_objects_without_io(tmp_path: Path, settings) -> None:
    from nasindex.registry import open_nas
    from nasindex.sync import SyncRun

    nas = settings.get_nas("ct")
    nowhere = get_engine(f"sqlite:///{tmp_path / 'absent' / 'index.db'}")
    run = SyncRun(open_nas(nas), nas, nowhere, "full")  # no schema check, no NAS check
    assert run.summary.nas == "ct" and not (tmp_path / "absent").exists()
    with pytest.raises(ValueError, match="does not match"):
        SyncRun(open_nas(nas), nas.model_copy(update={"id": "other"}), nowhere)
