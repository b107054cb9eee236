"""Storage faults of the index, through the `nasindex` command: a full disk (a small
tmpfs mounted under the index), a read-only index (a read-only bind mount), a truncated
index file. One line naming the cause and the fix, exit 1, never a traceback; the run
record says what was committed; the named fix works and never touches the images."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from nasindex.config import Settings
from nasindex.demo import demo_patients
from nasindex.index.db import get_engine, migrate
from support import age, write_config, write_tree

pytestmark = pytest.mark.slow


def nasindex(s: Settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nasindex.cli", "--config", str(s.path),
                           *args], capture_output=True, text=True, timeout=300)


def one_line(proc: subprocess.CompletedProcess, *expected: str) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert all(e in line for e in expected), line
    return line


@contextmanager
def mounted(*args: str) -> Iterator[None]:
    where = args[-1]
    made = subprocess.run(["mount", *args], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount here ({made.stderr.strip()}); tests run as root")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", where], check=True)


def indexed(tmp_path: Path, patients: int = 2, slices: int = 3) -> Settings:
    root = tmp_path / "nas"
    write_tree(root, demo_patients(patients, slices=slices), size=16)
    age(root)
    (tmp_path / "idx").mkdir(exist_ok=True)
    s = write_config(tmp_path / "nasindex.toml", {"ct": {"type": "dicom-folder",
                                                         "root": str(root)}},
                     f"sqlite:///{tmp_path / 'idx' / 'index.db'}")
    migrate(s.index.url)
    get_engine(s.index.url).dispose()  # as a finished command leaves it: no -wal file
    return s


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            digest.update(f"{p}{st.st_mtime_ns}".encode() + p.read_bytes())
    return digest.hexdigest()


def test_full_disk_fails_in_one_line_and_the_run_record_counts_what_was_committed(
        tmp_path: Path) -> None:
    s = indexed(tmp_path, patients=8, slices=24)
    idx = tmp_path / "idx"
    for p in idx.iterdir():
        p.unlink()
    with mounted("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(idx)):
        migrate(s.index.url)
        get_engine(s.index.url).dispose()
        ballast = idx / "ballast"
        free = os.statvfs(idx).f_bavail * os.statvfs(idx).f_frsize
        ballast.write_bytes(b"\0" * max(free - 700 * 1024, 0))  # room for a few batches
        s = write_config(s.path, {"ct": {"type": "dicom-folder", "root": str(s.nas["ct"].root),
                                         "batch_size": 20}}, s.index.url)
        line = one_line(nasindex(s, "index", "ct"), "ct:", "is full",
                        f"the index at {idx / 'index.db'}", "free space")
        assert "committed before is kept" in line
        ballast.unlink()
        status = json.loads(nasindex(s, "status", "--json").stdout)[0]
        run = status["last_run"]
        assert 0 < status["instances"] < run["seen"]
        assert run["new"] == status["instances"]  # not the whole listing: what committed
        assert run["status"] in ("failed", "interrupted")


def test_read_only_index_is_read_and_a_sync_says_why_it_cannot_write(tmp_path) -> None:
    s = indexed(tmp_path)
    assert nasindex(s, "sync", "ct").returncode == 0
    idx = str(tmp_path / "idx")
    with mounted("--bind", "-o", "ro", idx, idx):
        status = nasindex(s, "status", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)[0]["instances"] > 0
        # A search must be audited first (fail closed): refused in one line, naming the
        # index and the fix, exit 1 (the index's storage failed, not the command).
        found = nasindex(s, "search", "PAT00001", "--json")
        one_line(found, "audit trail cannot be written", f"The index at {idx}/index.db",
                 "read-only", "writable")
        assert not found.stdout
        one_line(nasindex(s, "sync", "ct"), "ct:", "not writable", "read-write")


def test_truncated_index_names_the_fix_and_the_fix_rebuilds_it(tmp_path: Path) -> None:
    s = indexed(tmp_path)
    assert nasindex(s, "index", "ct").returncode == 0
    before = json.loads(nasindex(s, "status", "--json").stdout)[0]["instances"]
    db = tmp_path / "idx" / "index.db"
    with open(db, "r+b") as f:
        f.truncate(db.stat().st_size // 2)
    images = tree_digest(s.nas["ct"].root)
    for command in (("status",), ("search", "PAT00001"), ("sync", "ct")):
        one_line(nasindex(s, *command), f"The index at {db} is damaged",
                 "`nasindex init --rebuild`")

    rebuilt = nasindex(s, "init", "--rebuild")

    assert rebuilt.returncode == 0, rebuilt.stderr
    kept = [p for p in db.parent.iterdir() if p.name.startswith("index.db.damaged-")]
    assert kept and f"kept as {kept[0]}" in " ".join(rebuilt.stdout.split())
    assert json.loads(nasindex(s, "status", "--json").stdout)[0]["instances"] == before
    assert tree_digest(s.nas["ct"].root) == images  # the images were never touched
