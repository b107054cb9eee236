"""Benchmark of the firebird-jp2 NAS type against a bare loop measured in the same run.

Builds a reference-schema Firebird database (embedded engine) with >= 20,000 image rows
pointing at real lossless 16-bit JPEG 2000 files, then measures, warm cache:

1. the bare loop: one fdb SELECT of the same joined rows, and for each row glymur's
   header read (shape, bit depth, signedness, wavelet) of the same file;
2. nasindex's full index of that NAS (``run_sync(kind=full)`` into a fresh SQLite index:
   check, snapshot listing + stat, diff, header reads in worker processes, upserts),
   and the whole ``nasindex index`` command (start-up included);
3. a no-change incremental sync: with a reconciliation every run (the default) and
   between reconciliations (cursor window only).

Prints rows/s of each, the ratio nasindex / bare (target >= 0.8) and the incremental
times (target <= 2 s). Run: ``uv run python bench/bench_firebird.py [--images N]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fdb
import glymur
import tomli_w

from nasindex.config import Settings, load_settings
from nasindex.demo import demo_patients
from nasindex.index.db import migrate, require_current
from nasindex.index.models import RunKind
from nasindex.registry import open_nas
from nasindex.sync import RunSummary, run_sync
from nasindex_firebird_jp2.connection import client_library
from nasindex_firebird_jp2.demo import apply_ddl, create_database, reference_ddl, write_patients
from nasindex_firebird_jp2.mapping import build_query, load_mapping

CLI = str(Path(sys.executable).with_name("nasindex"))


def build(work: Path, images: int, size: int) -> tuple[Path, Path, int]:
    """A reference database and its share, with at least ``images`` image rows."""
    root, db = work / "share", work / "PACS.FDB"
    if db.exists():  # --keep from an earlier run: reuse it
        con = fdb.connect(database=str(db), user="SYSDBA", password="",
                          fb_library_name=client_library(None))
        cur = con.cursor()
        cur.execute("SELECT COUNT(*) FROM IMAGE")
        made = cur.fetchone()[0]
        cur.close()
        con.close()
        return root, db, made
    pool, patients, count = demo_patients(images // 20 + 10, slices=24), [], 0
    for p in pool:  # the smallest prefix of patients with at least `images` images
        if count >= images:
            break
        patients.append(p)
        count += sum(s.slices for st in p.studies for s in st.series)
    con = create_database(str(db), default_charset="ISO8859_1")
    apply_ddl(con, reference_ddl())
    made = write_patients(con, root, patients, size=size)
    con.close()
    then = time.time() - 3600  # out of the settle window, as files on a real share are
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(dirpath, name), (then, then))
    return root, db, made


def bare_loop(root: Path, db: Path) -> int:
    """The floor: select the same rows with fdb, read the same JP2 headers with glymur."""
    query = build_query(load_mapping("reference"))
    con = fdb.connect(database=str(db), user="SYSDBA", password="", charset="UTF8",
                      fb_library_name=client_library(None))
    cur = con.cursor()
    cur.execute(query.sql)
    rows = cur.fetchall()
    folder_at = query.positions["path:series.STORAGE_DIR"]
    name_at = query.positions["path:image.FILE_NAME"]
    n = 0
    for row in rows:
        path = root / row[folder_at].replace("\\", "/") / row[name_at]
        cs = glymur.Jp2k(str(path)).codestream
        siz, cod = cs.segment[1], cs.segment[2]
        _facts = (siz.xsiz, siz.ysiz, siz.bitdepth, siz.signed, cod.xform)
        n += 1
    cur.close()
    con.close()
    return n


def write_config(work: Path, root: Path, db: Path, reconcile_minutes: float,
                 workers: int, index_name: str) -> Path:
    """A config with its own index file: a cached engine must never see a deleted one."""
    config = work / f"{index_name}.toml"
    index = work / f"{index_name}.db"
    doc = {"index": {"url": f"sqlite:///{index}"}, "nas": {"pacs": {
        "type": "firebird-jp2", "root": str(root), "database": str(db),
        "reconcile_minutes": reconcile_minutes, "workers": workers}}}
    config.write_text(tomli_w.dumps(doc), encoding="utf-8")
    return config


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--size", type=int, default=64, help="pixels per side of each image")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--keep", type=Path, help="build here and keep it (default: temp)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="nasindex-bench-fb-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run(work, args)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def index_pacs(settings: Settings, kind: RunKind) -> RunSummary:
    """An engine run of the NAS ``pacs``, resolved as the CLI resolves it."""
    nas = settings.get_nas("pacs")
    return run_sync(open_nas(nas), nas, require_current(settings.index.url), kind)


def run(work: Path, args) -> None:
    t, (root, db, n) = timed(build, work, args.images, args.size)
    print(f"built {n} image rows + lossless 16-bit JP2 files ({args.size}x{args.size}) "
          f"in {t:.1f}s; {os.cpu_count()} CPUs, workers={args.workers}, "
          f"load average {os.getloadavg()[0]:.1f} (a shared machine: compare ratios)")
    bare_loop(root, db)  # warm the page cache and the engine once
    bare, ours, cli = [], [], []
    for i in range(args.repeat):
        settings = load_settings(write_config(work, root, db, 0, args.workers, f"engine{i}"))
        migrate(settings.index.url)
        pair = {}
        # Alternate which goes first: the machine is shared and its load drifts.
        for which in (("bare", "ours") if i % 2 == 0 else ("ours", "bare")):
            if which == "bare":
                t, count = timed(bare_loop, root, db)
                pair["bare"] = count / t
            else:
                t, summary = timed(index_pacs, settings, RunKind.FULL)
                assert summary.indexed == n and summary.failed == 0, summary.as_dict()
                pair["ours"] = n / t
        bare.append(pair["bare"])
        ours.append(pair["ours"])
        config = write_config(work, root, db, 0, args.workers, f"cli{i}")
        migrate(load_settings(config).index.url)
        t, _ = timed(subprocess.run, [CLI, "--config", str(config), "index", "pacs"],
                     check=True, stdout=subprocess.DEVNULL)
        cli.append(n / t)
    # No change since the last full index: reconcile every run, then cursor window only.
    incremental = {}
    for label, minutes in (("reconciling (default)", 0), ("cursor window only", 60)):
        settings = load_settings(write_config(work, root, db, minutes, args.workers,
                                              "engine0"))
        index_pacs(settings, RunKind.INCREMENTAL)  # stores a cursor for this mode
        times = []
        for _ in range(args.repeat):
            t, summary = timed(index_pacs, settings, RunKind.INCREMENTAL)
            assert summary.new == summary.changed == summary.indexed == 0
            times.append(t)
        incremental[label] = times
    ratio = statistics.median(o / b for o, b in zip(ours, bare, strict=True))
    print(f"bare loop (fdb select + glymur header), 1 process: "
          f"{_range(bare)} rows/s")
    print(f"nasindex full index (engine), {args.workers} workers:   {_range(ours)} rows/s")
    print(f"nasindex index command (start-up incl.):     {_range(cli)} rows/s")
    print(f"ratio nasindex / bare loop (median of {args.repeat} adjacent pairs): {ratio:.2f}  "
          "(target >= 0.8)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    for label, times in incremental.items():
        print(f"no-change incremental sync, {label}: "
              f"{min(times):.2f}-{max(times):.2f} s over {n} rows  (target <= 2 s)")


def _range(values: list[float]) -> str:
    return f"{min(values):,.0f}-{max(values):,.0f} (median {statistics.median(values):,.0f})"


if __name__ == "__main__":
    main()
