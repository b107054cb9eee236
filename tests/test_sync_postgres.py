"""The engine writes the same index on PostgreSQL as on SQLite (upserts, tombstones,
the advisory run lock)."""

from __future__ import annotations

import pytest

from nasindex.index.db import get_engine, migrate
from nasindex.runlock import RunInProgress, run_lock
from support import dump, run_nas, write_config


def test_same_index_on_postgresql_and_sqlite(tmp_path, ct_root, postgres_url):
    nas = {"ct": {"type": "dicom-folder", "root": str(ct_root)}}
    lite = write_config(tmp_path / "lite" / "nasindex.toml", nas)
    pg = write_config(tmp_path / "pg" / "nasindex.toml", nas, index_url=postgres_url)
    for s in (lite, pg):
        migrate(s.index.url)
        run_nas(s, "ct", "full")
    next(ct_root.rglob("*.dcm")).unlink()
    for s in (lite, pg):
        assert run_nas(s, "ct", "incremental").missing == 1
    pg_dump = dump(get_engine(pg.index.url))
    assert pg_dump == dump(get_engine(lite.index.url))
    assert sum(row[4] for row in pg_dump["instances"]) == 1  # one tombstone


def test_postgresql_run_lock_admits_one_run_per_nas(postgres_url):
    migrate(postgres_url)
    engine = get_engine(postgres_url)
    with run_lock(engine, "ct"):
        with pytest.raises(RunInProgress, match="'ct'"), run_lock(engine, "ct"):
            pass
        with run_lock(engine, "pacs2"):  # another NAS runs alongside
            pass
    with run_lock(engine, "ct"):  # released
        pass
