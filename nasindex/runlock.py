"""One run per NAS at a time, and whether a run is still alive.

The lock dies with its process, so a killed run never blocks the rerun, and a run
record left ``running`` by a killed process is recognised as dead: its lock is free.
PostgreSQL: a session advisory lock (valid across hosts), seen in ``pg_locks``.
SQLite: an open-file-description lock on a file beside the index, which can be
tested without taking it (``F_OFD_GETLK``), so a status reader never gets in the way
of a run that is starting.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

from nasindex.errors import RunInProgress

# struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid (native alignment).
_FLOCK = struct.Struct("@hhqqi4x")


def _busy(nas_name: str) -> RunInProgress:
    return RunInProgress(f"Another run of NAS {nas_name!r} is in progress; "
                         "this one was not started.")


def _pg_key(nas_name: str) -> int:
    return int.from_bytes(hashlib.blake2b(nas_name.encode(), digest_size=8).digest(),
                          "big", signed=True)


def _lock_file(engine: Engine, nas_name: str) -> Path:
    db_path = engine.url.database or "memory"
    return Path(f"{db_path}.{hashlib.sha1(nas_name.encode()).hexdigest()[:12]}.lock")


@contextmanager
def run_lock(engine: Engine, nas_name: str) -> Iterator[None]:
    """Hold the NAS's run lock for the block; RunInProgress if another run has it."""
    if engine.dialect.name == "postgresql":
        key = _pg_key(nas_name)
        with engine.connect() as conn:
            if not conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}):
                raise _busy(nas_name)
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        return
    try:
        fd = os.open(_lock_file(engine, nas_name), os.O_CREAT | os.O_RDWR, 0o644)
    except OSError as exc:  # a read-only mount or folder, a full disk
        from nasindex.index.faults import os_fault

        raise os_fault(exc, str(engine.url)) from None
    try:
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
        except OSError:  # EAGAIN or EACCES: another open file holds it
            raise _busy(nas_name) from None
        yield
    finally:
        os.close(fd)


def lock_held(engine: Engine, nas_name: str) -> bool:
    """Whether a run of the NAS holds its lock now; never takes the lock."""
    if engine.dialect.name == "postgresql":
        key = _pg_key(nas_name) & (2**64 - 1)
        with engine.connect() as conn:
            return bool(conn.scalar(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND objsubid = 1 AND classid::text::bigint = :hi "
                "AND objid::text::bigint = :lo"), {"hi": key >> 32, "lo": key & 0xFFFFFFFF}))
    try:
        fd = os.open(_lock_file(engine, nas_name), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        probe = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        return _FLOCK.unpack(fcntl.fcntl(fd, fcntl.F_OFD_GETLK, probe))[0] != fcntl.F_UNLCK
    finally:
        os.close(fd)
