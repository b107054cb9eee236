"""Helpers the index benchmarks share: running commands with their CPU time and peak
memory, generated trees (realistic CT slices, millions of hard links), a seeded index."""

from __future__ import annotations

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
    """Like :func:`run_cli`, plus the peak RSS of that one child."""
    return run_rss([CLI, *args])


def run_rss(cmd: list[str]) -> Timed:
    """Run a command; wall time and its peak RSS: os.wait4, because RUSAGE_CHILDREN is a
    maximum over every child this process ever had, and sampled RssAnon, because
    ru_maxrss counts the memory-mapped index file too."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=CHILD_ENV)
    anon = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        anon = max(anon, _rss_anon_kb(proc.pid))
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    out = proc.stdout.read() if proc.stdout else b""
    err = proc.stderr.read() if proc.stderr else b""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.decode()}")
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


def write_config(path: Path, db: Path, nas_id: str, root: Path, workers: int,
                 **keys: float) -> None:
    """A config of one dicom-folder NAS; settle_seconds = 0 unless given (generated files
    are dated back anyway)."""
    extra = "".join(f"{k} = {v}\n" for k, v in {"settle_seconds": 0, **keys}.items())
    path.write_text(
        f'[index]\nurl = "sqlite:///{db}"\n\n'
        f'[nas.{nas_id}]\ntype = "dicom-folder"\nroot = "{root}"\n'
        f"workers = {workers}\n{extra}", encoding="utf-8")


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


def walk_dirs(root: Path) -> list[str]:
    """Every folder under root, root included."""
    found, stack = [], [str(root)]
    while stack:
        folder = stack.pop()
        found.append(folder)
        with os.scandir(folder) as entries:
            stack += [e.path for e in entries if e.is_dir(follow_symlinks=False)]
    return found


def warm(root: Path) -> None:
    """Read every byte once so both contenders start from the page cache."""
    for path in walk_files(root):
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass


def warm_bytecode() -> None:
    """Untimed: let Python write its bytecode caches for everything a run imports."""
    subprocess.run([sys.executable, "-c", "import nasindex.cli, nasindex.sync, "
                    "nasindex_dicom_folder.reader"], env=CHILD_ENV, check=True)


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
