"""Storage faults of the index, told the operator in one line: the cause and the fix.

A full disk, a read-only file or mount, a damaged (truncated, overwritten) database
file: each is a clear sentence naming where the index is and what to do, never a
traceback. Anything else (a locked database, a dropped connection) is not one of
these and is left to the caller (retried by the flows, reported as it is).
"""

from __future__ import annotations

import errno
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from nasindex.errors import IndexStorageError

REBUILD = "nasindex init --rebuild"
# SQLite's messages and PostgreSQL's SQLSTATE classes for each fault.
FULL = ("database or disk is full", "no space left on device", "53100")
READ_ONLY = ("attempt to write a readonly database", "readonly database",
             "read-only file system", "25006")
DAMAGED = ("database disk image is malformed", "file is not a database",
           "malformed database schema", "XX001", "XX002")


def where(url: str | None) -> str:
    """The index as an operator finds it: the file of a SQLite index, else its URL
    without the password."""
    if not url:
        return "the index"
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"the index at {parsed.database}"
    return f"the index at {parsed.render_as_string(hide_password=True)}"


def storage_fault(exc: BaseException, url: str | None, *, run: bool = True
                  ) -> IndexStorageError | None:
    """The operator's sentence for a storage fault of the index, or None if ``exc`` is
    not one; ``run``: it stopped a run (which kept what it committed)."""
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig
    text = f"{orig} {getattr(orig, 'sqlstate', '') or ''}".lower()
    cause = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
    index = where(url)
    if any(s.lower() in text for s in FULL):
        return IndexStorageError(
            f"The disk holding {index} is full ({cause}): free space there and run again."
            + (" What was committed before is kept; the next run goes on from there."
               if run else ""))
    if any(s.lower() in text for s in READ_ONLY):
        return IndexStorageError(
            f"{_cap(index)} is read-only for this process ({cause}): make the file and "
            "its folder writable by this user (or mount them read-write), then run again.")
    if any(s.lower() in text for s in DAMAGED):
        return IndexStorageError(
            f"{_cap(index)} is damaged ({cause}): restore it from a backup, or rebuild it "
            f"with `{REBUILD}` (the damaged file is kept beside it; every NAS is read "
            "again; the images are never touched).")
    return None


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def os_fault(exc: OSError, url: str | None) -> IndexStorageError:
    """The sentence for a file beside the index that cannot be written (a run lock on
    a read-only mount, a full disk)."""
    cause = exc.strerror or type(exc).__name__
    index = where(url)
    if exc.errno == errno.ENOSPC:
        return IndexStorageError(f"The disk holding {index} is full ({cause}): free space "
                                 "there and run again.")
    return IndexStorageError(f"{_cap(index)} is not writable for this process ({cause}): "
                             "make the file and its folder writable by this user (or mount "
                             "them read-write), then run again.")


def set_aside(url: str) -> Path | None:
    """Move a SQLite index (with its -wal and -shm files) aside, kept for a restore or
    an autopsy, so that a new one can be created: the first step of
    ``nasindex init --rebuild`` (which first makes sure that no run is using it)."""
    from nasindex.index.db import get_engine

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        raise IndexStorageError(
            f"`{REBUILD}` rebuilds a SQLite index; {where(url)} is a server database: "
            "restore it from a backup, or drop its tables and run `nasindex init`.")
    get_engine(url).dispose()
    path = Path(parsed.database)
    if not path.exists():
        return None
    kept = path.with_name(f"{path.name}.damaged-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(f"{path}{suffix}")
        if part.exists():
            part.rename(f"{kept}{suffix}")
    return kept
