"""Content hashes of indexed files, filled in by a pass after the metadata.

Reading a whole 0.5 MB slice to hash it cost more than reading its header, so a run
indexes metadata first (searchable at once) and this pass hashes the files afterwards:
at the end of a CLI command, as its own Prefect task, and in a watch's idle time. It
never holds back a run: it takes its own lock (one hash pass per NAS), not the run's, and
writes a hash only for a row whose fingerprint (size, mtime) is still the one the file
had while it was read (``UPDATE ... WHERE size = ? AND mtime_ns = ?``): a file rewritten
meanwhile keeps no stale hash, and is hashed after the sync that reads it again. Only
this module writes ``instance.content_hash`` (besides the engine's upserts, which keep
a stored hash while the fingerprint is unchanged).

The files to hash are found through a partial index of the present rows without a hash
(migration 0007), so a pass over a NAS that has nothing left to hash costs one probe.
Reading runs under the run's no-progress deadline (:class:`nasindex.deadline.Deadline`): a
share that stalls stops the pass (what it wrote is kept), never hangs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine

from nasindex.contract import NasType, progress_hook, set_progress_hook
from nasindex.deadline import Deadline
from nasindex.errors import NasUnavailable, RunInProgress
from nasindex.runlock import run_lock

BATCH = 200  # files per query and per commit
THREADS = 4  # reading is I/O (the NAS): overlap it; xxh3 itself runs at ~7 GB/s


Unhashed = tuple[str, str, int, int]  # item key, path, size, mtime_ns
_UNHASHED = text(
    "SELECT item_key, rel_path, size, mtime_ns FROM instance WHERE nas_id = :nas "
    "AND content_hash IS NULL AND missing_since IS NULL AND item_key > :after "
    "ORDER BY item_key LIMIT :limit")
_SET_HASH = text(
    "UPDATE instance SET content_hash = :hash WHERE nas_id = :nas AND item_key = :key "
    "AND size = :size AND mtime_ns = :mtime AND content_hash IS NULL")


def _unhashed(engine: Engine, nas_pk: int, after: str, limit: int) -> list[Unhashed]:
    """Up to ``limit`` present files without a content hash, in key order after ``after``."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(_UNHASHED, {"nas": nas_pk, "after": after,
                                                           "limit": limit})]


def _set_hashes(engine: Engine, nas_pk: int, rows: Sequence[Unhashed],
               hashes: Sequence[str | None]) -> int:
    """Store each row's hash, only while its fingerprint is the one that was hashed (a
    file rewritten meanwhile keeps none). How many rows had a hash to store."""
    done = [{"hash": h, "nas": nas_pk, "key": r[0], "size": r[2], "mtime": r[3]}
            for r, h in zip(rows, hashes, strict=True) if h is not None]
    if done:
        with engine.begin() as conn:
            conn.execute(_SET_HASH, done)
    return len(done)

@dataclass(slots=True)
class HashResult:
    hashed: int = 0
    skipped: int = 0  # changed or gone since indexed: read again by the next sync
    seconds: float = 0.0
    done: bool = True  # False: stopped at its deadline, by a stall, or another pass runs
    message: str | None = None  # why it stopped early, when the NAS stalled

def hash_pending(nas: NasType, nas_pk: int, engine: Engine, io_timeout: float,
                 deadline: float | None = None,
                 on_progress: Callable[[int], None] | None = None) -> HashResult:
    """Hash the indexed files of ``nas`` that have no content hash yet, until none is
    left or ``time.monotonic()`` passes ``deadline``."""
    result = HashResult()
    if not nas.hashes_files:
        return result
    started = time.perf_counter()
    calls = Deadline(nas.nas_id, io_timeout)
    try:
        with run_lock(engine, f"{nas.nas_id}#hash"):
            after = ""
            while deadline is None or time.monotonic() < deadline:
                rows = _unhashed(engine, nas_pk, after, BATCH)
                if not rows:
                    break
                after = rows[-1][0]
                hashes = calls.call("hashing files", _hash_rows, nas, rows)
                done = _set_hashes(engine, nas_pk, rows, hashes)
                result.hashed += done
                result.skipped += len(rows) - done
                if on_progress:
                    on_progress(result.hashed)
            else:
                result.done = False
    except RunInProgress:
        result.done = False
    except NasUnavailable as exc:  # a stalled share: the hashes so far are kept
        result.done, result.message = False, str(exc)
    result.seconds = time.perf_counter() - started
    return result

def _hash_rows(nas: NasType, rows: Sequence[Unhashed]) -> list[str | None]:
    """The rows' hashes, read in threads that report progress to the call under the deadline."""
    with ThreadPoolExecutor(THREADS, initializer=set_progress_hook,
                            initargs=(progress_hook(),)) as pool:
        return list(pool.map(lambda r: nas.content_hash(r[1], r[2], r[3]), rows))

def pending(engine: Engine, nas_pk: int) -> bool:
    """Whether any present file of the NAS still lacks its hash (one index probe)."""
    return bool(_unhashed(engine, nas_pk, "", 1))
