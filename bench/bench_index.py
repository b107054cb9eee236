"""Benchmark of indexing and syncing, against baselines measured in the same run.

Prints three sections (see bench/README.md):

1. CLI start-up: wall time of ``--help``, ``status``, ``search`` and ``images`` on a
   small index, against the 0.25 s target and beside a bare ``python -c pass``.
2. Full index of a generated CT tree (512x512 16-bit slices): files/s of the whole
   ``nasindex index`` command vs. a bare loop of ``pydicom.dcmread(stop_before_pixels=True)``
   over the same files in the same number of processes, warm cache. Target ratio >= 0.8.
3. No-change incremental sync of a tree of tiny files (hard links to one small DICOM
   file): wall time of the whole ``nasindex sync`` command, the engine's own time, and
   the ratio to a bare ``os.scandir`` walk + stat of the same tree; peak RSS of the
   command. Target: <= 2 s at 100,000 files; well under a minute at 1,000,000.

The machine is shared and noisy: every figure is measured ``--repeat`` times and shown
as a range, and targets are judged on ratios against baselines taken in the same run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CLI = str(Path(sys.executable).with_name("nasindex"))
# Commands run as on an installed system: Python may cache bytecode (some sandboxes set
# PYTHONDONTWRITEBYTECODE, which makes every process compile every module: +1 s a run).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
FILES_PER_FOLDER = 200  # a CT series folder holds a few hundred slices
AGE_SECONDS = 3600  # generated files are dated back, out of the settle window
LINKS_PER_SOURCE = 50_000


# -- helpers ---------------------------------------------------------------------------
@dataclass
class Timed:
    seconds: float
    maxrss_mb: float
    stdout: str
    anon_mb: float = 0.0  # peak anonymous RSS (sampled): RSS minus mapped files
    cpu: float = 0.0  # user + system seconds of the command and all its descendants


def run_tree(cmd: list[str]) -> Timed:
    """Run a command; wall time, and CPU time of its whole process tree (the bench is a
    child subreaper, so orphaned fork servers and workers are reaped here): CPU time is
    what other people's load on a shared machine disturbs least."""
    _become_subreaper()
    before = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=CHILD_ENV)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # descendants still exiting
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                time.sleep(0.01)
        except ChildProcessError:
            break
    return Timed(seconds, 0.0, proc.stdout, cpu=_children_cpu() - before)


def _become_subreaper() -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_cli(*args: str) -> Timed:
    """Run the nasindex CLI as a user would; wall time and the child's own peak RSS."""
    start = time.perf_counter()
    proc = subprocess.Popen([CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=CHILD_ENV)
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"nasindex {' '.join(args)} failed ({proc.returncode}):\n{err}")
    return Timed(seconds, 0.0, out)


def run_cli_rss(*args: str) -> Timed:
    """Like :func:`run_cli`, plus the peak RSS of that one child: os.wait4, because
    RUSAGE_CHILDREN is a maximum over every child this process ever had."""
    start = time.perf_counter()
    proc = subprocess.Popen([CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=CHILD_ENV)
    anon = 0
    while True:  # ru_maxrss counts the memory-mapped index file too: sample RssAnon
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        anon = max(anon, _rss_anon_kb(proc.pid))
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    out = proc.stdout.read() if proc.stdout else b""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"nasindex {' '.join(args)} failed ({proc.returncode})")
    return Timed(seconds, usage.ru_maxrss / 1024, out.decode(), anon / 1024)


def _rss_anon_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def span(values: list[float], fmt: str = "{:.2f}") -> str:
    lo, hi = min(values), max(values)
    return fmt.format(lo) if len(values) == 1 else f"{fmt.format(lo)}-{fmt.format(hi)}"


def write_config(path: Path, db: Path, nas_id: str, root: Path, workers: int) -> None:
    path.write_text(
        f'[index]\nurl = "sqlite:///{db}"\n\n'
        f'[nas.{nas_id}]\ntype = "dicom-folder"\nroot = "{root}"\n'
        f"settle_seconds = 0\nworkers = {workers}\n", encoding="utf-8")


def fresh_index(config: Path, db: Path) -> None:
    for p in db.parent.glob(db.name + "*"):
        p.unlink()
    run_cli("--config", str(config), "init")


def walk_files(root: Path) -> Iterator[str]:
    """Every regular file under root: the bare os.scandir walk + stat baseline."""
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    e.stat(follow_symlinks=False)
                    yield e.path


def warm(root: Path) -> None:
    """Read every byte once so both contenders start from the page cache."""
    for path in walk_files(root):
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass


# -- 1. start-up -----------------------------------------------------------------------
def warm_bytecode() -> None:
    """Untimed: let Python write its bytecode caches for everything a run imports."""
    subprocess.run([sys.executable, "-c", "import nasindex.cli, nasindex.sync, "
                    "nasindex_dicom_folder.reader"], env=CHILD_ENV, check=True)


STARTUP_TARGET = 0.25  # seconds (issue 10): the commands a clinician types often
STARTUP_COMMANDS = [["--help"], ["status"], ["search", "muller"],
                    ["images", "--nas", "ct", "--patient-id", "PAT00001"]]


def bench_startup(work: Path, repeat: int) -> None:
    """Commands that do next to nothing on a small index: what every command pays before
    its work, beside a bare ``python -c pass`` (the interpreter's own start)."""
    demo = work / "startup"
    demo.mkdir(exist_ok=True)
    config = str(demo / "nasindex.toml")
    if not (demo / "demo-data").exists():
        for args in (["demo", "--patients", "3", "--slices", "2", "--force"], ["init"],
                     ["index", "--all"]):
            run_cli("--config", config, *args)
    rounds = max(repeat, 5)
    bare = [_timed([sys.executable, "-c", "pass"]) for _ in range(rounds)]
    print(f"CLI start-up, {rounds} runs each (target <= {STARTUP_TARGET} s; "
          f"load average {os.getloadavg()[0]:.2f}):")
    print(f"  python -c pass (baseline): {span(bare, '{:.3f}')} s")
    for args in STARTUP_COMMANDS:
        times = [run_cli("--config", config, *args).seconds for _ in range(rounds)]
        verdict = "met" if min(times) <= STARTUP_TARGET else "MISSED"
        print(f"  nasindex {' '.join(args)}: {span(times, '{:.3f}')} s, best "
              f"{min(times) / min(bare):.1f}x the baseline: {verdict}")


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=CHILD_ENV)
    return time.perf_counter() - start


# -- 2. full index -----------------------------------------------------------------------
def ct_plan(files: int):
    """Demo patients cut so that their slices add up to exactly ``files``."""
    from nasindex.demo import demo_patients

    patients, total = [], 0
    for p in demo_patients(max(files // 20, 10), slices=48):
        for study in p.studies:
            kept = []
            for s in study.series:
                if total >= files:
                    break
                s.slices = min(max(s.slices, 2), files - total)
                total += s.slices
                kept.append(s)
            study.series = kept
        p.studies = [s for s in p.studies if s.series]
        if p.studies:
            patients.append(p)
        if total >= files:
            return patients
    raise SystemExit(f"--files {files}: not enough demo patients; raise the count")


def _write_patient(args) -> int:
    from nasindex_dicom_folder.demo import write_tree

    root, patient = args
    return write_tree(Path(root), [patient])


def _fresh_tree(root: Path, files: int, what: str) -> Path | None:
    """The completion marker of a tree to (re)build, or None when a complete tree of
    ``files`` kept by --keep can be reused. The marker lies outside the tree, so it is
    never a file to index, and is written only once the tree is whole."""
    marker = root.with_name(root.name + ".complete")
    if marker.exists() and marker.read_text() == str(files):
        print(f"  reusing {files} {what} in {root}")
        return None
    shutil.rmtree(root, ignore_errors=True)
    marker.unlink(missing_ok=True)
    root.mkdir(parents=True)
    return marker


def make_ct_tree(root: Path, files: int, workers: int) -> None:
    marker = _fresh_tree(root, files, "CT files")
    if marker is None:
        return
    start = time.perf_counter()
    with multiprocessing.Pool(workers) as pool:
        written = sum(pool.imap_unordered(_write_patient,
                                          [(str(root), p) for p in ct_plan(files)]))
    then = time.time() - AGE_SECONDS
    for path in walk_files(root):
        os.utime(path, (then, then))
    marker.write_text(str(files))
    print(f"  wrote {written} CT files in {time.perf_counter() - start:.0f} s")


def _read_headers(paths: list[str]) -> int:
    import pydicom

    for path in paths:
        pydicom.dcmread(path, stop_before_pixels=True)
    return len(paths)


BARE_LOOP = "--bare-loop"  # internal: run the baseline in its own process, as nasindex runs


def bare_header_loop(root: Path, workers: int) -> float:
    """files/s of a bare pydicom header loop in ``workers`` processes, start-up included."""
    start = time.perf_counter()
    paths = list(walk_files(root))
    chunks = [paths[i:i + 50] for i in range(0, len(paths), 50)]
    with multiprocessing.get_context("forkserver").Pool(workers) as pool:
        done = sum(pool.imap_unordered(_read_headers, chunks))
    return done / (time.perf_counter() - start)


def bench_full_index(work: Path, files: int, workers: int, repeat: int) -> None:
    root, db, config = work / "ct", work / "ct.db", work / "ct.toml"
    print(f"\nFull index: {files} CT files (512x512 16-bit), {workers} processes, warm cache")
    make_ct_tree(root, files, workers)
    write_config(config, db, "ct", root, workers)
    warm(root)
    bare, ours, bare_cpu, our_cpu = [], [], [], []
    for _ in range(repeat):
        b = run_tree([sys.executable, __file__, BARE_LOOP, str(root), str(workers)])
        bare.append(files / b.seconds)
        bare_cpu.append(b.cpu / files * 1e6)
        fresh_index(config, db)
        t = run_tree([CLI, "--config", str(config), "index", "ct", "--json"])
        summary = json.loads(t.stdout)[0]
        if summary["indexed"] != files:
            raise SystemExit(f"nasindex indexed {summary['indexed']} of {files} files")
        ours.append(files / t.seconds)
        our_cpu.append(t.cpu / files * 1e6)
        print(f"  run {len(ours)}: bare {bare[-1]:.0f} files/s, nasindex index {ours[-1]:.0f} "
              f"files/s (engine alone {summary['files_per_second']:.0f}), "
              f"ratio {ours[-1] / bare[-1]:.2f}; CPU per file: bare {bare_cpu[-1]:.0f} us, "
              f"nasindex {our_cpu[-1]:.0f} us")
    ratios = [o / b for o, b in zip(ours, bare, strict=True)]
    print(f"  bare pydicom header loop: {span(bare, '{:.0f}')} files/s")
    print(f"  nasindex index (whole command): {span(ours, '{:.0f}')} files/s")
    print(f"  ratio nasindex / bare: {span(ratios)} per run; {max(ours) / max(bare):.2f} best "
          "against best (the least disturbed run of each; target >= 0.80)")
    print(f"  CPU per file, all processes, start-up included: bare {span(bare_cpu, '{:.0f}')} "
          f"us, nasindex {span(our_cpu, '{:.0f}')} us; ratio bare / nasindex "
          f"{min(bare_cpu) / min(our_cpu):.2f} (least disturbed of each)")


# -- 3. no-change sync ---------------------------------------------------------------------
def make_tiny_tree(root: Path, files: int) -> None:
    """``files`` hard links to small DICOM files, FILES_PER_FOLDER to a folder: the sync
    only stats them, so their content does not matter and they cost no disk."""
    marker = _fresh_tree(root, files, "tiny files")
    if marker is None:
        return
    root.with_suffix(".db.seeded").unlink(missing_ok=True)
    start = time.perf_counter()
    sources = root.with_name(root.name + ".sources")
    sources.mkdir(exist_ok=True)
    _write_tiny_dicom(sources / "0.dcm")
    for i in range(0, files, FILES_PER_FOLDER):
        folder = root / f"P{i // 10_000:04d}" / f"S{i // FILES_PER_FOLDER % 50:03d}"
        folder.mkdir(parents=True)
        for j in range(i, min(i + FILES_PER_FOLDER, files)):
            os.link(_link_source(sources, j), folder / f"IM_{j:07d}.dcm")
    marker.write_text(str(files))
    print(f"  linked {files} files in {time.perf_counter() - start:.0f} s")


def _link_source(sources: Path, n: int) -> Path:
    """One source file per LINKS_PER_SOURCE links (ext4 allows 65,000 links a file)."""
    path = sources / f"{n // LINKS_PER_SOURCE}.dcm"
    if not path.exists():
        shutil.copy2(sources / "0.dcm", path)
    return path


def _write_tiny_dicom(path: Path) -> None:
    import numpy as np

    from nasindex.demo import demo_patients
    from nasindex_dicom_folder.demo import write_ct_file

    p = demo_patients(1)[0]
    write_ct_file(path, p, p.studies[0], p.studies[0].series[0], 1,
                  np.zeros((8, 8), dtype=np.int16))
    then = time.time() - AGE_SECONDS
    os.utime(path, (then, then))


def seed_index(config: Path, nas_id: str) -> None:
    """Fill the index with one record per file through the engine's own batch writer,
    without parsing: a no-change sync compares fingerprints only (and parsing a
    million identical files would only measure the full index again)."""
    from nasindex import store
    from nasindex.config import load_settings
    from nasindex.contract import InstanceRecord
    from nasindex.index.db import require_current
    from nasindex.registry import open_nas

    settings = load_settings(config)
    nas_settings = settings.get_nas(nas_id)
    engine = require_current(settings.index.url)
    nas_pk = store.ensure_nas(engine, nas_settings)
    batch: list[InstanceRecord] = []
    start = time.perf_counter()
    for n, fp in enumerate(open_nas(nas_settings).scan().items):
        folder = fp.rel_path.rsplit("/", 1)[0]
        patient = folder.split("/", 1)[0]
        batch.append(InstanceRecord(
            key=fp.key, rel_path=fp.rel_path, size=fp.size, mtime_ns=fp.mtime_ns,
            sop_instance_uid=f"1.2.826.0.1.3680043.10.1.{n}", study_uid=f"1.2.3.{patient}",
            series_uid=f"1.2.3.{folder.replace('/', '.')}", patient_id=patient,
            patient_name="DOE^JANE", modality="CT", content_hash="0" * 32))
        if len(batch) == 10_000:
            store.write_batch(engine, nas_pk, batch)
            batch.clear()
    store.write_batch(engine, nas_pk, batch)
    print(f"  seeded the index in {time.perf_counter() - start:.0f} s")


def bench_no_change_sync(work: Path, files: int, workers: int, repeat: int) -> None:
    root, db, config = work / f"tiny{files}", work / f"tiny{files}.db", work / "tiny.toml"
    print(f"\nNo-change sync: {files} indexed files (hard links to one small DICOM file)")
    make_tiny_tree(root, files)
    write_config(config, db, "tiny", root, workers)
    seeded = db.with_name(db.name + ".seeded")  # kept with --keep: seeding 1M takes ~1 min
    if seeded.exists() and db.exists():
        print(f"  reusing the seeded index {db}")
    else:
        seeded.unlink(missing_ok=True)
        fresh_index(config, db)
        seed_index(config, "tiny")
        seeded.touch()
    walks, cli, engine, rss, anon = [], [], [], [], []
    for _ in range(repeat):
        start = time.perf_counter()
        listed = sum(1 for _ in walk_files(root))
        walks.append(time.perf_counter() - start)
        t = run_cli_rss("--config", str(config), "sync", "tiny", "--json")
        summary = json.loads(t.stdout)[0]
        if summary["seen"] != listed or summary["new"] or summary["changed"]:
            raise SystemExit(f"not a no-change sync: {summary}")
        cli.append(t.seconds)
        engine.append(summary["seconds"])
        rss.append(t.maxrss_mb)
        anon.append(t.anon_mb)
        print(f"  run {len(cli)}: bare walk {walks[-1]:.2f} s, nasindex sync {cli[-1]:.2f} s "
              f"(engine {engine[-1]:.2f} s), peak RSS {rss[-1]:.0f} MB "
              f"(anonymous {anon[-1]:.0f} MB)")
    print(f"  bare scandir walk + stat: {span(walks)} s")
    print(f"  nasindex sync (whole command): {span(cli)} s, engine alone {span(engine)} s")
    print(f"  ratio sync / walk: {span([c / w for c, w in zip(cli, walks, strict=True)])} "
          f"(whole command), {span([e / w for e, w in zip(engine, walks, strict=True)])} "
          f"(engine); best against best {min(cli) / min(walks):.2f} and "
          f"{min(engine) / min(walks):.2f}")
    print(f"  peak RSS of the sync command: {span(rss, '{:.0f}')} MB, of which anonymous "
          f"{span(anon, '{:.0f}')} MB (the rest: index pages SQLite memory-maps)")


# -- main ------------------------------------------------------------------------------------
def main() -> None:
    if sys.argv[1:2] == [BARE_LOOP]:
        print(bare_header_loop(Path(sys.argv[2]), int(sys.argv[3])))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=10_000, help="CT files to index (10000)")
    ap.add_argument("--sync-files", type=int, action="append",
                    help="indexed files of a no-change sync; repeat for several sizes, "
                         "e.g. --sync-files 100000 --sync-files 1000000 (100000)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="processes for both contenders (CPU count)")
    ap.add_argument("--repeat", type=int, default=3, help="measurements of each (3)")
    ap.add_argument("--skip", action="append", default=[],
                    choices=["startup", "index", "sync"], help="leave a section out")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/nasindex-bench"))
    ap.add_argument("--keep", action="store_true",
                    help="keep the generated trees (reused by the next run)")
    args = ap.parse_args()
    sizes = args.sync_files or [100_000]
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"nasindex bench_index: {os.cpu_count()} CPUs, workers {args.workers}, "
          f"repeat {args.repeat}, data in {args.workdir}")
    try:
        warm_bytecode()
        if "startup" not in args.skip:
            bench_startup(args.workdir, args.repeat)
        if "index" not in args.skip:
            bench_full_index(args.workdir, args.files, args.workers, args.repeat)
        if "sync" not in args.skip:
            for size in sizes:
                bench_no_change_sync(args.workdir, size, args.workers, args.repeat)
    finally:
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
