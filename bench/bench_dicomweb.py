"""Benchmark of DICOMweb over HTTP: nasindex beside Orthanc (DICOMweb plugin), same run.

1. QIDO-RS ``/studies`` on an index of ``--patients`` patients / ``--instances``
   instances (bench_search's generator, bulk inserted): p50/p99 over HTTP (one
   keep-alive client, ``--repeat`` different values per kind) of a Patient ID, a
   PatientName wildcard (``FAMILY^GI*``) and StudyDate (30 days) + ModalitiesInStudy,
   ``limit=100`` (a viewer's study list). Target: p99 <= 15 ms each.
   Orthanc answers the same kinds of query on what it can hold in a bench run: the
   ``--orthanc-studies`` small studies loaded with ``POST /instances`` (~150 files/s,
   so a million instances would take two hours), printed with its size beside it.
2. WADO-RS retrieve of a ``--slices``-slice CT series (512x512, 16-bit, ~0.5 MB a
   slice, real DICOM files indexed by the real engine): MB/s of the whole multipart
   response read by the client, against reading the same files in one process (the
   baseline, same run, files in the page cache for both), and Orthanc's retrieve of the
   same series. Target: nasindex >= 0.80 of the baseline.

Run: ``uv run python bench/bench_dicomweb.py`` (``--quick`` for a small smoke run;
``--workdir DIR --keep`` reuses the generated index and files on the next run).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "bench")]

from bench_search import generate  # noqa: E402
from orthanc import Orthanc  # noqa: E402

from nasindex.index.db import get_engine, migrate  # noqa: E402

SERIES_UID = "1.2.826.0.1.3680043.8.498.7001.2"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--instances", type=int, default=1_000_000)
    ap.add_argument("--slices", type=int, default=700)
    ap.add_argument("--repeat", type=int, default=200, help="queries per kind")
    ap.add_argument("--retrievals", type=int, default=3, help="series retrievals each")
    ap.add_argument("--orthanc-studies", type=int, default=1000)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir())
                    / "nasindex-bench-dicomweb")
    ap.add_argument("--keep", action="store_true", help="keep (and reuse) the work dir")
    ap.add_argument("--quick", action="store_true", help="a small smoke run")
    args = ap.parse_args()
    if args.quick:
        args.patients, args.instances, args.slices = 2000, 20_000, 60
        args.repeat, args.retrievals, args.orthanc_studies = 30, 2, 100
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2-core machine shared: "
          "compare ratios)")
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    try:
        config, sample = prepare(work, args)
        orthanc = Orthanc().start()
        try:
            load_orthanc(orthanc, work, args)
            with serving(config, work) as base:
                qido(base, orthanc, sample, args)
                wado(base, orthanc, work, args)
        finally:
            orthanc.stop()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


# -- data ------------------------------------------------------------------------------

def prepare(work: Path, args) -> tuple[Path, dict]:
    """The index (generated once, reused with --keep) and the CT series (real files)."""
    from nasindex.config import load_settings
    from nasindex.registry import open_nas
    from nasindex.sync import run_sync

    db = work / f"index-{args.patients}-{args.instances}-{args.slices}.db"
    ct = work / f"ct{args.slices}"
    config = work / "nasindex.toml"
    config.write_text(f'[index]\nurl = "sqlite:///{db}"\n'
                      f'[nas.series]\ntype = "dicom-folder"\nroot = "{ct}"\n'
                      'settle_seconds = 0\nworkers = 2\n', encoding="utf-8")
    if not db.exists():
        start = time.perf_counter()
        migrate(f"sqlite:///{db}")
        engine = get_engine(f"sqlite:///{db}")
        generate(engine, args.patients, args.instances)
        write_series(ct, args.slices)
        settings = load_settings(config)
        nas = settings.get_nas("series")
        run_sync(open_nas(nas), nas, engine, "full")
        engine.dispose()
        print(f"index of {args.patients:,} patients / {args.instances:,} instances and a "
              f"{args.slices}-slice series made in {time.perf_counter() - start:.0f} s")
    return config, _sample(db)


def write_series(root: Path, slices: int) -> None:
    from nasindex.demo import DemoPatient, DemoSeries, DemoStudy
    from nasindex_dicom_folder.demo import write_tree

    series = DemoSeries(SERIES_UID, 1, "AXIAL 0.6mm", slices)
    study = DemoStudy("1.2.826.0.1.3680043.8.498.7001.1", "20261101", "101500",
                      "CT CHEST HIGH RES", "CT", "A7001", [series])
    write_tree(root, [DemoPatient("P7001", "LONG^SERIES", "19600101", "F", [study])])


def _sample(db: Path) -> dict:
    import sqlite3

    con = sqlite3.connect(db)
    try:
        ids = [r[0] for r in con.execute("SELECT patient_id FROM patient ORDER BY random() "
                                         "LIMIT 1000")]
        names = [r[0] for r in con.execute("SELECT patient_name FROM patient WHERE "
                                           "patient_name GLOB '[A-Z]*' ORDER BY random() "
                                           "LIMIT 1000")]
        days = [r[0] for r in con.execute("SELECT study_date FROM study ORDER BY random() "
                                          "LIMIT 1000")]
    finally:
        con.close()
    return {"ids": ids, "names": names, "days": days}


def load_orthanc(orthanc: Orthanc, work: Path, args) -> None:
    """The same series, and ``--orthanc-studies`` one-image studies of small slices."""
    import io

    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    start = time.perf_counter()
    files = sorted((work / f"ct{args.slices}").rglob("*.dcm"))
    n = orthanc.load(p.read_bytes() for p in files)
    rng = random.Random(3)

    def small():
        for i in range(args.orthanc_studies):
            ds = Dataset()
            ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", generate_uid()
            ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
            ds.PatientID, ds.PatientName = f"Q{i:07d}", f"{rng.choice(NAMES)}^{rng.choice(GIVEN)}"
            ds.StudyDate = f"20{rng.randrange(16, 26)}{rng.randrange(1, 13):02d}15"
            ds.Modality = rng.choice(("CT", "MR", "CR"))
            ds.Rows = ds.Columns = 8
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.PixelData = np.zeros((8, 8), np.uint16).tobytes()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            yield buf.getvalue()

    n += orthanc.load(small())
    print(f"Orthanc loaded with {n:,} files in {time.perf_counter() - start:.0f} s")


NAMES = ["SMITH", "MULLER", "GARCIA", "NGUYEN", "ROSSI", "BROWN", "DOE", "SCHMIDT"]
GIVEN = ["JANE", "JOHN", "ANNA", "ERIK", "MARIA", "CHEN"]


@contextmanager
def serving(config: Path, work: Path):
    from browser import free_port

    port = free_port()
    log = (work / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "nasindex.cli", "--config", str(config),
                             "serve", "--port", str(port)], stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/api/v1/health", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError((work / "serve.log").read_text()) from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


# -- QIDO ------------------------------------------------------------------------------

def qido_queries(sample: dict, n: int) -> dict[str, list[dict]]:
    rng = random.Random(5)
    from datetime import date, timedelta

    def window(day: str) -> str:
        end = date(int(day[:4]), int(day[4:6]), int(day[6:]))
        return f"{(end - timedelta(days=30)):%Y%m%d}-{day}"

    return {
        "PatientID": [{"PatientID": rng.choice(sample["ids"])} for _ in range(n)],
        "PatientName wildcard": [{"PatientName": _wild(rng.choice(sample["names"]))}
                                 for _ in range(n)],
        "StudyDate+Modality": [{"StudyDate": window(rng.choice(sample["days"])),
                                "ModalitiesInStudy": "CT"} for _ in range(n)],
    }


def _wild(name: str) -> str:
    family, _, given = name.partition("^")
    return f"{family}^{given[:2]}*"


def timed_queries(url: str, queries: list[dict]) -> tuple[float, float, float]:
    """p50, p99 (ms) and mean results of ``queries`` on one keep-alive connection."""
    times, counts = [], []
    with httpx.Client(timeout=60) as client:
        client.get(url, params={**queries[0], "limit": 100})  # connection and warm-up
        for q in queries:
            start = time.perf_counter()
            answer = client.get(url, params={**q, "limit": 100})
            times.append((time.perf_counter() - start) * 1000)
            answer.raise_for_status()
            counts.append(len(answer.json()))
    times.sort()
    return (statistics.median(times), times[max(0, int(len(times) * 0.99) - 1)],
            statistics.mean(counts))


def qido(base: str, orthanc: Orthanc, sample: dict, args) -> None:
    print(f"\nQIDO-RS /studies over HTTP, limit=100, {args.repeat} queries per kind "
          f"(target: nasindex p99 <= 15 ms at {args.patients:,} patients / "
          f"{args.instances:,} instances)")
    print(f"  {'query':<22} {'nasindex p50/p99 ms':>20} {'results':>8}   "
          f"{'Orthanc p50/p99 ms':>19} {'results':>8} (Orthanc: "
          f"{args.orthanc_studies + 1:,} studies)")
    ours = qido_queries(sample, args.repeat)
    theirs = qido_queries({"ids": [f"Q{i:07d}" for i in range(args.orthanc_studies)],
                           "names": [f"{a}^{b}" for a in NAMES for b in GIVEN],
                           "days": sample["days"]}, args.repeat)
    for kind in ours:
        a50, a99, an = timed_queries(f"{base}/dicomweb/studies", ours[kind])
        b50, b99, bn = timed_queries(f"{orthanc.dicomweb}/studies", theirs[kind])
        verdict = "ok" if a99 <= 15 else "OVER TARGET"
        print(f"  {kind:<22} {a50:9.1f} / {a99:6.1f} {an:8.1f}   {b50:8.1f} / {b99:6.1f} "
              f"{bn:8.1f}   {verdict}")


# -- WADO ------------------------------------------------------------------------------

def wado(base: str, orthanc: Orthanc, work: Path, args) -> None:
    files = sorted((work / f"ct{args.slices}").rglob("*.dcm"))
    total = sum(p.stat().st_size for p in files)
    study = "1.2.826.0.1.3680043.8.498.7001.1"
    path = f"/studies/{study}/series/{SERIES_UID}"
    print(f"\nWADO-RS retrieve of a {len(files)}-slice CT series ({total / 1e6:.0f} MB), "
          f"best of {args.retrievals} (target: nasindex >= 0.80 of reading the files)")
    read_files(files)  # into the page cache, for every contender alike
    rows = [("read the files, one process", lambda: read_files(files)),
            ("nasindex WADO-RS", lambda: retrieve(f"{base}/dicomweb{path}")),
            ("Orthanc WADO-RS", lambda: retrieve(f"{orthanc.dicomweb}{path}"))]
    best = {}
    for label, fn in rows:
        runs = []
        for _ in range(args.retrievals):
            start = time.perf_counter()
            size = fn()
            runs.append(time.perf_counter() - start)
        best[label] = size / min(runs) / 1e6
        print(f"  {label:<30} {best[label]:8.0f} MB/s  ({size / 1e6:.0f} MB, best "
              f"{min(runs):.2f} s, worst {max(runs):.2f} s)")
    baseline = best["read the files, one process"]
    for label in ("nasindex WADO-RS", "Orthanc WADO-RS"):
        print(f"  {label:<30} {best[label] / baseline:8.2f} of the baseline")
    print(f"  {'nasindex / Orthanc':<30} {best['nasindex WADO-RS'] / best['Orthanc WADO-RS']:8.2f}")


def read_files(files: list[Path]) -> int:
    size = 0
    for p in files:
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                size += len(chunk)
    return size


def retrieve(url: str) -> int:
    size = 0
    headers = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
    with httpx.stream("GET", url, headers=headers, timeout=300) as answer:
        answer.raise_for_status()
        for chunk in answer.iter_raw(1 << 20):
            size += len(chunk)
    return size


if __name__ == "__main__":
    main()
