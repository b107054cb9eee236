"""Content hashes come after the metadata: search does not wait for them, every file gets
the hash of its bytes, a re-read of an unchanged file keeps it, and a file that changes
before it is hashed never gets a stale one."""

from __future__ import annotations

from pathlib import Path

import xxhash
from sqlalchemy import select

from nasindex.hashing import hash_pending, pending
from nasindex.index.models import Instance
from nasindex.registry import open_nas
from nasindex.search import SearchQuery, search
from support import run_nas

TIMEOUT = 60  # io_timeout_seconds: the share never stalls here


def _hashes(engine) -> dict[str, str | None]:
    with engine.connect() as conn:
        return dict(conn.execute(select(Instance.item_key, Instance.content_hash)).all())


def _nas_pk(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(Instance.nas_id).limit(1))


def test_metadata_is_searchable_before_hashing_and_hashes_follow(settings, engine,
                                                                 ct_root: Path) -> None:
    summary = run_nas(settings, "ct", "full", hash_files=False)
    assert summary.indexed > 0 and summary.hashed == 0
    assert search(engine, SearchQuery(patient_id="PAT00001"), scope=None).patients  # now
    assert set(_hashes(engine).values()) == {None}
    nas = open_nas(settings.get_nas("ct"))
    assert pending(engine, _nas_pk(engine))

    changed = sorted(ct_root.rglob("*.dcm"))[0]  # rewritten before the hash pass reaches it
    changed.write_bytes(changed.read_bytes()[:-2] + b"\x07\x07")
    result = hash_pending(nas, _nas_pk(engine), engine, TIMEOUT)
    assert (result.hashed, result.skipped, result.done) == (summary.indexed - 1, 1, True)
    key = changed.relative_to(ct_root).as_posix()
    hashes = _hashes(engine)
    assert hashes.pop(key) is None  # no hash of bytes the index has not read
    assert hashes == {k: xxhash.xxh3_128_hexdigest((ct_root / k).read_bytes()) for k in hashes}

    again = run_nas(settings, "ct", "incremental")  # reads the changed file, then hashes it
    assert (again.changed, again.hashed) == (1, 1)
    assert _hashes(engine)[key] == xxhash.xxh3_128_hexdigest(changed.read_bytes())
    assert not pending(engine, _nas_pk(engine))


def test_a_full_index_of_unchanged_files_keeps_their_hashes(settings, engine) -> None:
    first = run_nas(settings, "ct", "full")
    before = _hashes(engine)
    assert first.hashed == len(before) and None not in before.values()
    again = run_nas(settings, "ct", "full")
    assert again.indexed == len(before) and again.hashed == 0  # nothing to hash again
    assert _hashes(engine) == before


def test_a_deadline_stops_the_pass_and_the_next_one_goes_on(settings, engine) -> None:
    run_nas(settings, "ct", "full", hash_files=False)
    nas = open_nas(settings.get_nas("ct"))
    stopped = hash_pending(nas, _nas_pk(engine), engine, TIMEOUT, deadline=0.0)
    assert (stopped.hashed, stopped.done) == (0, False)
    rest = hash_pending(nas, _nas_pk(engine), engine, TIMEOUT)
    assert rest.done and rest.hashed == len(_hashes(engine))
