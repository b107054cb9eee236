"""bench_index sections 4 and 5: what a poll costs at millions of files, and how soon a
new study is searchable under a running watch (see bench_index.py)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import threading
import time
from pathlib import Path

from benchlib import (
    CHILD_ENV,
    CLI,
    fresh_index,
    make_tiny_tree,
    run_cli,
    run_rss,
    seed_index,
    span,
    walk_dirs,
    walk_files,
    write_config,
)

SLICES = 50  # per series; two series a study: 100 slices of 512x512, ~50 MB
COPY_RATE = 50  # files/s, as a modality or a router stores a study


# -- 4. no-change poll -----------------------------------------------------------------------
def bench_poll(work: Path, files: int, repeat: int) -> None:
    """``nasindex watch --once`` on an index that knows every folder, nothing changed."""
    root, db, config = work / f"tiny{files}", work / f"tiny{files}.db", work / "poll.toml"
    print(f"\nNo-change poll: {files} indexed files (hard links, 200 a folder)")
    make_tiny_tree(root, files)
    write_config(config, db, "tiny", root, 1, settle_seconds=5)  # the default settings
    _seeded_with_folders(config, db)
    dirs = walk_dirs(root)
    stat_dirs, stat_files, polls, engine, anon = [], [], [], [], []
    for _ in range(repeat):
        start = time.perf_counter()
        for d in dirs:
            os.stat(d)
        stat_dirs.append(time.perf_counter() - start)
        start = time.perf_counter()
        listed = sum(1 for _ in walk_files(root))
        stat_files.append(time.perf_counter() - start)
        t = run_rss([CLI, "--config", str(config), "watch", "tiny", "--once", "--json"])
        poll = json.loads(t.stdout)[0]
        if poll["run"] is not None or poll["message"]:
            raise SystemExit(f"not a no-change poll: {poll}")
        polls.append(t.seconds)
        engine.append(poll["poll_seconds"])
        anon.append(t.anon_mb)
        print(f"  run {len(polls)}: stat of {len(dirs)} folders {stat_dirs[-1]:.2f} s, stat of "
              f"{listed} files {stat_files[-1]:.2f} s; nasindex watch --once {polls[-1]:.2f} s "
              f"(the poll itself {engine[-1]:.2f} s), peak anonymous RSS {anon[-1]:.0f} MB")
    print(f"  bare stat of every folder: {span(stat_dirs)} s; of every file: {span(stat_files)} s")
    print(f"  no-change poll: {span(engine)} s (whole command with start-up {span(polls)} s); "
          f"best poll / best folder stat {min(engine) / min(stat_dirs):.1f}, best poll / best "
          f"file stat {min(engine) / min(stat_files):.2f} (target: <= 5 s at 5M files)")
    print(f"  peak anonymous RSS of the poll command: {span(anon, '{:.0f}')} MB "
          "(target: <= 500 MB at 5M files)")


def _seeded_with_folders(config: Path, db: Path) -> None:
    """An index of every file (seeded without parsing) that knows every folder: one
    complete listing (``nasindex sync``) notes them, as it would on a real NAS."""
    marker = db.with_name(db.name + ".polled")
    if marker.exists() and db.exists():
        print(f"  reusing the seeded index {db}")
        return
    marker.unlink(missing_ok=True)
    fresh_index(config, db)
    seed_index(config, "tiny")
    start = time.perf_counter()
    run_cli("--config", str(config), "sync", "tiny", "--json")
    print(f"  first complete listing (notes every folder) in {time.perf_counter() - start:.0f} s")
    marker.touch()


# -- 5. lag under a watch ------------------------------------------------------------------------
def bench_lag(work: Path, studies: int, window: float) -> None:
    """Copy ``studies`` studies into a watched NAS at random times within ``window``
    seconds; per study, seconds from its last file written to searchable."""
    root, db, config = work / "lagnas", work / "lag.db", work / "lag.toml"
    print(f"\nLag: {studies} studies (2 series x {SLICES} slices of 512x512) copied in at "
          f"{COPY_RATE} files/s at random times over {window:.0f} s, default settings")
    shutil.rmtree(root, ignore_errors=True)
    staging = _studies(work / "lag-staging", studies)
    _base_nas(root)
    config.write_text(f'[index]\nurl = "sqlite:///{db}"\n\n[nas.lag]\ntype = "dicom-folder"\n'
                      f'root = "{root}"\n', encoding="utf-8")
    fresh_index(config, db)
    run_cli("--config", str(config), "index", "lag", "--json")
    watch = subprocess.Popen([CLI, "--config", str(config), "watch", "lag"], env=CHILD_ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lags = _measure(config, root, staging, window)
    finally:
        watch.send_signal(signal.SIGINT)
        try:
            watch.wait(60)
        except subprocess.TimeoutExpired:
            watch.kill()
            watch.wait()
    lags.sort()
    p99 = lags[min(len(lags) - 1, round(0.99 * (len(lags) - 1)))]
    print(f"  lag from last file written to searchable: p50 {statistics.median(lags):.1f} s, "
          f"p99 {p99:.1f} s, min {lags[0]:.1f} s, max {lags[-1]:.1f} s (target p99 <= 60 s)")


def _studies(staging: Path, count: int) -> list[tuple[str, Path]]:
    """(study UID, folder) of ``count`` generated studies."""
    from pydicom.uid import generate_uid

    from nasindex.demo import DemoSeries, demo_patients
    from nasindex_dicom_folder.demo import write_tree

    found = []
    for i, p in enumerate(demo_patients(count, slices=SLICES)):
        study = p.studies[0]
        study.series = [DemoSeries(generate_uid(), n, name, SLICES)
                        for n, name in ((1, "AXIAL 5mm"), (2, "BONE"))]
        p.patient_id, p.studies = f"LAG{i:03d}", [study]
        folder = staging / p.patient_id
        shutil.rmtree(folder, ignore_errors=True)
        write_tree(staging, [p])
        found.append((study.uid, folder))
    return found


def _base_nas(root: Path) -> None:
    """A small NAS to start from (a watch needs something indexed)."""
    from nasindex.demo import demo_patients
    from nasindex_dicom_folder.demo import write_tree

    write_tree(root, demo_patients(3, slices=4, size=64))
    then = time.time() - 3600
    for path in walk_files(root):
        os.utime(path, (then, then))


def _measure(config: Path, root: Path, staging: list[tuple[str, Path]],
             window: float) -> list[float]:
    from sqlalchemy import func, select

    from nasindex.config import load_settings
    from nasindex.index.db import get_engine
    from nasindex.index.models import Instance, Series, Study

    engine = get_engine(load_settings(config).index.url)
    starts = sorted(random.uniform(0, window) for _ in staging)
    written: dict[str, tuple[int, float]] = {}  # study UID -> (files, last mtime)
    copier = threading.Thread(target=_copy_all, args=(root, staging, starts, written))
    copier.start()
    searchable: dict[str, float] = {}
    deadline = time.monotonic() + window + 300
    count = (select(func.count()).select_from(Instance)
             .join(Series, Series.id == Instance.series_pk).join(Study, Study.id == Series.study_pk)
             .where(Instance.missing_since.is_(None)))
    while len(searchable) < len(staging) and time.monotonic() < deadline:
        for uid, (files, last) in list(written.items()):
            if uid in searchable:
                continue
            with engine.connect() as conn:
                n = conn.scalar(count.where(Study.study_uid == uid))
            if n == files:
                searchable[uid] = time.time() - last
                print(f"  study {len(searchable)}: searchable {searchable[uid]:.1f} s after "
                      "its last file was written")
        time.sleep(0.2)
    copier.join()
    if len(searchable) < len(staging):
        raise SystemExit(f"only {len(searchable)} of {len(staging)} studies became searchable")
    return list(searchable.values())


def _copy_all(root: Path, staging: list[tuple[str, Path]], starts: list[float],
              written: dict[str, tuple[int, float]]) -> None:
    began = time.monotonic()
    for (uid, folder), start in zip(staging, starts, strict=True):
        time.sleep(max(0.0, began + start - time.monotonic()))
        files = sorted(folder.rglob("*.dcm"))
        last = 0.0
        for src in files:
            dest = root / src.relative_to(folder.parent)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            last = os.stat(dest).st_mtime
            time.sleep(1 / COPY_RATE)
        written[uid] = (len(files), last)
