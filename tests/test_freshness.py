"""A DICOM-folder NAS under a watch: polls list only what moved and record only changes;
a study copied in file by file, slowly, becomes searchable once complete and never half;
a file rewritten in place is seen by the sweep; a deleted study is tombstoned; an
unmounted NAS fails as it always did (nothing tombstoned)."""

from __future__ import annotations

import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from nasindex.config import Settings
from nasindex.demo import demo_patients
from nasindex.freshness import Poll, Watcher, watch
from nasindex.index.db import get_engine, migrate
from nasindex.index.models import IndexRun, Instance, NasWatch
from nasindex.registry import open_nas
from nasindex.search import SearchQuery, search
from support import (
    age,
    dump,
    run_nas,
    start_cli,
    stop_process,
    write_config,
    write_tree,
)

# Short clocks for tests: a poll every ~1.4 s, two looks 0.3 s apart.
FAST = {"freshness_seconds": 2, "settle_seconds": 0.3}


def _nas(tmp_path: Path, patients: int = 5, **options) -> Settings:
    root = tmp_path / "nas"
    write_tree(root, demo_patients(patients, slices=3), size=16)
    age(root)
    s = write_config(tmp_path / "nasindex.toml", {"ct": {
        "type": "dicom-folder", "root": str(root), **FAST, **options}})
    migrate(s.index.url)
    run_nas(s, "ct", "full")
    return s


def _watcher(s: Settings, **update) -> Watcher:
    nas = s.nas["ct"].model_copy(update=update)
    return Watcher(open_nas(nas), nas, get_engine(s.index.url))


def _runs(s: Settings) -> list[tuple[str, str]]:
    with get_engine(s.index.url).connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(IndexRun.kind, IndexRun.status).order_by(IndexRun.id))]


def _present(s: Settings, patient_id: str) -> int:
    hits = search(get_engine(s.index.url), SearchQuery(patient_id=patient_id),
                  scope=None).patients
    return sum(st.instance_count for h in hits for st in h.studies)


def test_polls_see_what_moved_and_record_only_changes(tmp_path: Path) -> None:
    s = _nas(tmp_path)
    root = s.nas["ct"].root
    w = _watcher(s)
    w.start()
    assert [w.poll().run for _ in range(2)] == [None, None]  # nothing moved: no runs
    assert _runs(s) == [("full", "succeeded")]

    newcomer = demo_patients(6, slices=3)[5]
    write_tree(root / "late", [newcomer], size=16)
    added = w.poll().run
    assert added is not None and added.new == len(list((root / "late").rglob("*.dcm")))
    assert _present(s, newcomer.patient_id) == added.new

    study = sorted((root / "late" / newcomer.patient_id).iterdir())[0]
    gone = len(list(study.rglob("*.dcm")))
    shutil.rmtree(study)
    deleted = w.poll().run
    assert deleted is not None and deleted.missing == gone  # tombstoned, rows kept

    victim = sorted(root.rglob("*.dcm"))[0]  # rewritten in place: no folder mtime moves
    data = bytearray(victim.read_bytes())
    data[-2:] = b"\x05\x06"
    with open(victim, "r+b") as f:
        f.write(data)
    assert w.poll().run is None  # a poll does not see it...
    sweeper = _watcher(s, sweep_minutes=s.nas["ct"].poll_seconds / 60)  # 1 poll a sweep
    sweeper.start()
    swept = sweeper.poll().run
    assert swept is not None and swept.changed == 1  # ...the sweep does

    before = dump(get_engine(s.index.url))
    shutil.rmtree(root)
    root.mkdir()  # an unmounted share: an empty mount point
    failures = [sweeper.poll() for _ in range(2)]
    assert all("mount" in (p.message or "") for p in failures)
    assert dump(get_engine(s.index.url)) == before  # nothing tombstoned
    assert _runs(s)[-1] == ("poll", "failed") and _runs(s)[-2][1] == "succeeded"
    assert [k for k, status in _runs(s)].count("poll") == 4  # one failure recorded, once


def _copy_slowly(files: list[tuple[Path, Path]], done: threading.Event) -> None:
    """Copy each file in four chunks 0.08 s apart, one file after the other."""
    for src, dest in files:
        dest.parent.mkdir(parents=True, exist_ok=True)
        data = src.read_bytes()
        step = len(data) // 4 + 1
        with open(dest, "wb") as f:
            for i in range(0, len(data), step):
                f.write(data[i:i + step])
                f.flush()
                time.sleep(0.08)
    done.set()


def test_a_study_copied_in_slowly_is_searchable_once_complete_and_never_half(
        tmp_path: Path) -> None:
    s = _nas(tmp_path)
    root = s.nas["ct"].root
    engine = get_engine(s.index.url)
    staging = tmp_path / "modality"
    patient = demo_patients(6, slices=4)[5]
    patient.studies = patient.studies[:1]
    write_tree(staging, [patient], size=64)
    files = [(p, root / p.relative_to(staging)) for p in sorted(staging.rglob("*.dcm"))]
    sizes = {dest.relative_to(root).as_posix(): src.stat().st_size for src, dest in files}
    polls: list[Poll] = []
    stop, copied = threading.Event(), threading.Event()
    watcher = Watcher(open_nas(s.nas["ct"]), s.nas["ct"], engine, on_poll=polls.append)
    watching = threading.Thread(target=watch, args=([watcher], stop))
    copying = threading.Thread(target=_copy_slowly, args=(files, copied))
    watching.start()
    copying.start()
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                rows = conn.execute(select(Instance.item_key, Instance.size).where(
                    Instance.item_key.in_(list(sizes)))).all()
            seen.add(len(rows))
            assert all(size == sizes[key] for key, size in rows)  # no half-written file
            if len(rows) == len(files):
                break
            time.sleep(0.05)
    finally:
        stop.set()
        copying.join()
        watching.join()
    assert seen <= {0, len(files)}, f"the study was searchable half: {sorted(seen)}"
    assert len(files) in seen
    assert copied.is_set()
    assert any(p.deferred for p in polls)  # polls ran while it was being written
    lags = [p.run.newest_lag for p in polls if p.run is not None and p.run.new]
    assert lags and max(lags) < s.nas["ct"].freshness_seconds + 2
    with engine.connect() as conn:
        beat = conn.execute(select(NasWatch.polls, NasWatch.message)).one()
        assert beat.polls == len(polls) and "ended" in beat.message
        assert conn.scalar(select(func.count()).select_from(IndexRun).where(
            IndexRun.kind == "poll")) == sum(p.run is not None for p in polls)


def test_nasindex_watch_indexes_a_new_study_and_a_stop_signal_ends_it_said(tmp_path) -> None:
    """The CLI watch: a study copied in is found; SIGTERM between polls or during one
    ends the watch, the heartbeat says why, and the signal then ends the process."""
    s = _nas(tmp_path, patients=2)
    root, engine = s.nas["ct"].root, get_engine(s.index.url)
    proc = start_cli("--config", str(s.path), "watch", "ct", cwd=tmp_path)
    try:
        assert "watching ct" in proc.stdout.readline()
        # Written beside the share, then moved in at once: a poll between the two files
        # of a copy would index them in two polls (right, but not this test's point).
        write_tree(tmp_path / "staging", demo_patients(3, slices=2)[2:], size=16)
        (tmp_path / "staging").rename(root / "late")
        assert "poll indexed new 2" in proc.stdout.readline()  # printed once committed
        assert _present(s, "PAT00003") == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == -signal.SIGTERM
    finally:
        stop_process(proc)
    with engine.connect() as conn:
        assert conn.scalar(select(NasWatch.message)) == "the watch ended: stopped by SIGTERM"


@pytest.mark.parametrize("freshness, interval", [(60, 45.0), (2, 1.3666666666666667)])
def test_the_poll_interval_keeps_the_freshness_promise(tmp_path, freshness, interval):
    s = write_config(tmp_path / "n.toml", {"ct": {"type": "dicom-folder", "root": "x",
                                                  "freshness_seconds": freshness,
                                                  "settle_seconds": 5 if freshness == 60
                                                  else 0.3}})
    assert s.nas["ct"].poll_seconds == pytest.approx(interval)
