"""A throwaway PostgreSQL cluster for tests: real server binaries, no mocks.

Fixtures (registered for every test under ``tests/`` by ``tests/conftest.py``):

* ``postgres_server`` (session): one cluster on a free port, a socket dir under a temp
  dir, ``fsync=off``; stopped and deleted at the end of the session.
* ``postgres_url`` (function): a fresh, empty database on that cluster, as a SQLAlchemy
  URL (``postgresql+psycopg://postgres@127.0.0.1:PORT/test_N``).

If the server cannot start, the test fails and says why; it never skips silently.
Other test modules may also use :class:`PostgresServer` directly.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import free_port

PG_BIN = Path(os.environ.get("NASINDEX_PG_BIN", "/usr/lib/postgresql/15/bin"))
OS_USER = "postgres"  # initdb refuses to run as root


class PostgresError(RuntimeError):
    """The throwaway cluster could not be created or started."""


class PostgresServer:
    """One throwaway cluster. ``start()`` then ``url()``/``create_database()``; ``stop()``.
    Given a ``directory`` (benchmarks), the cluster in it is reused if there is one, and
    ``stop(keep=True)`` leaves it there for the next run."""

    def __init__(self, directory: Path | None = None) -> None:
        self.dir = directory or Path(tempfile.mkdtemp(prefix="nasindex-pg-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._names = itertools.count(1)

    @property
    def data(self) -> Path:
        return self.dir / "data"

    def start(self) -> PostgresServer:
        for tool in ("initdb", "pg_ctl"):
            if not (PG_BIN / tool).exists():
                raise PostgresError(f"{PG_BIN / tool} not found: install the 'postgresql' "
                                    "Debian package (scripts/install-system-deps.sh) or set "
                                    "NASINDEX_PG_BIN to the server binaries.")
        (self.dir / "sock").mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir, OS_USER, OS_USER)
            shutil.chown(self.dir / "sock", OS_USER, OS_USER)
        if not (self.data / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E",
                      "UTF8", "--locale=C.UTF-8", "--no-sync")
        options = (f"-p {self.port} -k {self.dir / 'sock'} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-t",
                  "30", "-o", options, "start")
        return self

    def restart(self) -> None:
        """Stop the server, ending every session as an administrator's restart does, and
        start it again on the same port."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-m", "fast",
                  "-w", "restart")

    def stop(self, keep: bool = False) -> None:
        if (self.data / "postmaster.pid").exists():
            # On failure still remove the files; a stray server dies with its data dir.
            with contextlib.suppress(PostgresError):
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast" if keep else "immediate",
                          "-w", "stop")
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def has_database(self, name: str) -> bool:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                (name,)).fetchone() is not None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = name or f"test_{next(self._names)}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(PG_BIN / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", OS_USER, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            log = self.dir / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise PostgresError(f"{tool} failed ({proc.returncode}): "
                                f"{proc.stderr.strip() or proc.stdout.strip()}\n{tail}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
    except (PostgresError, OSError, subprocess.SubprocessError) as exc:
        server.stop()
        pytest.fail(f"PostgreSQL for the tests could not start: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database for one test."""
    return postgres_server.create_database()
