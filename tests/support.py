"""Helpers and fixtures shared by the tests: real DICOM trees, real config files, a
migrated SQLite index. Registered as fixtures by conftest.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import pytest
import tomli_w
from sqlalchemy import select
from sqlalchemy.engine import Engine

from nasindex.config import Settings, load_settings
from nasindex.demo import DemoPatient, demo_patients
from nasindex.index.db import get_engine, migrate
from nasindex.index.models import Instance, ItemError, Patient, Series, Study
from nasindex.ops.processes import port_free
from nasindex.registry import nas_type, open_nas
from nasindex.sync import RunSummary, run_sync

T = TypeVar("T")


def write_config(path: Path, nas: dict[str, dict], index_url: str | None = None) -> Settings:
    """A real nasindex.toml; NAS tables get settle_seconds = 0 unless given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tables = {k: {"settle_seconds": 0, "workers": 1, **v} for k, v in nas.items()}
    doc = {"index": {"url": index_url or f"sqlite:///{path.parent / 'index.db'}"},
           "nas": tables}
    path.write_text(tomli_w.dumps(doc), encoding="utf-8")
    return load_settings(path)


def run_nas(settings: Settings, nas_id: str, kind: str = "incremental",
            **kwargs: object) -> RunSummary:
    """One engine run of a configured NAS, resolved as the CLI resolves it."""
    nas = settings.get_nas(nas_id)
    return run_sync(open_nas(nas), nas, get_engine(settings.index.url), kind, **kwargs)


def write_tree(root: Path, patients: Sequence[DemoPatient], size: int = 32) -> Path:
    """``patients`` as a dicom-folder NAS under ``root`` with ``size`` x ``size`` images,
    written by that type's own demo writer, found through the registry: the core's tests
    reach the built-in NAS types as the core does, never by importing them."""
    for series in (se for p in patients for st in p.studies for se in st.series):
        series.size = size
    nas_type("dicom-folder").create_demo(root.name, root, patients)
    return root


def free_port() -> int:
    """A TCP port nothing listens on now, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def age(root: Path, seconds: float = 3600) -> None:
    """Date every file under root back, as files on a real share are."""
    then = time.time() - seconds
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, (then, then))


@pytest.fixture
def ct_root(tmp_path: Path) -> Path:
    """A small generated CT tree: 3 patients, 32x32 slices, aged past the settle window."""
    root = tmp_path / "nas1"
    write_tree(root, demo_patients(3, slices=4), size=32)
    age(root)
    return root


@pytest.fixture
def settings(tmp_path: Path, ct_root: Path) -> Settings:
    s = write_config(tmp_path / "nasindex.toml",
                     {"ct": {"type": "dicom-folder", "root": str(ct_root),
                             "display_root": "Z:\\CT"}})
    migrate(s.index.url)
    return s


@pytest.fixture
def engine(settings: Settings) -> Engine:
    return get_engine(settings.index.url)


DUMP_INSTANCE = (Instance.item_key, Instance.sop_instance_uid, Instance.content_hash,
                 Instance.size, Instance.missing_since.is_not(None))
DUMP_ERROR = (ItemError.item_key, ItemError.reason, ItemError.skipped)


def dump(engine: Engine, instance_columns: tuple = DUMP_INSTANCE,
         error_columns: tuple = DUMP_ERROR) -> dict[str, list[tuple]]:
    """Everything a user could see in the index, minus timestamps that differ per run:
    per instance ``instance_columns`` then its series, study, patient ID and name."""
    with engine.connect() as conn:
        instances = conn.execute(
            select(*instance_columns, Series.series_uid, Study.study_uid,
                   Patient.patient_id, Patient.patient_name)
            .join(Series, Series.id == Instance.series_pk)
            .join(Study, Study.id == Series.study_pk)
            .join(Patient, Patient.id == Study.patient_pk)).all()
        errors = conn.execute(select(*error_columns)).all()
    return {"instances": sorted(map(tuple, instances)), "errors": sorted(map(tuple, errors))}


def wait_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 30,
              log: Path | None = None) -> bytes:
    """The body of ``url`` once a server a test started answers it (2xx). RuntimeError
    at once if ``proc`` exits first, TimeoutError after ``timeout`` s; both end with the
    tail of the server's ``log``, if given."""
    def body() -> bytes | None:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.read()
        except OSError:
            return None

    return _wait(body, proc, what, f"answer {url}", timeout, log)


def wait_listening(ports: Sequence[int], proc: subprocess.Popen, what: str,
                   timeout: float = 30, log: Path | None = None) -> None:
    """Once a server a test started accepts TCP connections on each of ``ports`` on
    127.0.0.1 (a server that speaks no HTTP); fails as :func:`wait_http` does."""
    _wait(lambda: not any(port_free(p) for p in ports) or None, proc, what,
          f"listen on 127.0.0.1:{','.join(map(str, ports))}", timeout, log)


def _wait(ready: Callable[[], T | None], proc: subprocess.Popen, what: str, doing: str,
          timeout: float, log: Path | None) -> T:
    """``ready()`` once it returns something other than None, polled until ``proc``
    exits (RuntimeError) or ``timeout`` s pass (TimeoutError)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}) before it was ready"
                               f"{_tail(log)}")
        value = ready()
        if value is not None:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not {doing} within {timeout:.0f} s{_tail(log)}")


def _tail(log: Path | None) -> str:
    return f":\n{log.read_text(errors='replace')[-2000:]}" if log else ""


def stop_process(proc: subprocess.Popen, grace: float = 10) -> None:
    """Terminate a server a test started; kill it if it does not stop in ``grace`` s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# CLI processes run as on an installed system, where Python caches bytecode (some
# sandboxes set PYTHONDONTWRITEBYTECODE: then every process compiles every module).
CLI_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def start_cli(*args: str, cwd: Path, env: dict | None = None,
              python_flags: tuple[str, ...] = ()) -> subprocess.Popen:
    """``nasindex ARGS`` as a real process (started, not awaited)."""
    return subprocess.Popen([sys.executable, *python_flags, "-m", "nasindex.cli", *args],
                            cwd=cwd, env={**CLI_ENV, **(env or {})}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_cli(*args: str, cwd: Path, env: dict | None = None, check: bool = True,
            python_flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``nasindex ARGS`` as a user runs it; fails the test on a non-zero exit if ``check``."""
    proc = start_cli(*args, cwd=cwd, env=env, python_flags=python_flags)
    out, err = proc.communicate(timeout=300)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if check and done.returncode != 0:
        raise AssertionError(f"nasindex {' '.join(args)} failed:\n{out}\n{err}")
    return done


@pytest.fixture(scope="session")
def cli_demo(tmp_path_factory) -> Path:
    """A folder with the CLI's demo (3 patients), indexed: ``nasindex`` runs there."""
    cwd = tmp_path_factory.mktemp("demo")
    run_cli("demo", "--patients", "3", "--slices", "3", cwd=cwd)
    run_cli("init", cwd=cwd)
    run_cli("index", "--all", cwd=cwd)
    return cwd
