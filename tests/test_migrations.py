"""Alembic migrations: an index made by an older version migrates with its data."""

from __future__ import annotations

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text

from nasindex.index.db import alembic_config, get_engine, head_revision, migrate, schema_state
from nasindex.search import SearchQuery, search


def test_head_revision_is_alembics_head(tmp_path):
    url = f"sqlite:///{tmp_path / 'i.db'}"
    assert head_revision() == ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def test_an_index_of_the_first_schema_migrates_with_its_data(tmp_path):
    url = f"sqlite:///{tmp_path / 'i.db'}"
    cfg = alembic_config(url)
    with get_engine(url).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(text("INSERT INTO nas (id, name, type, root, created_at) "
                          "VALUES (1, 'ct', 'dicom-folder', '/mnt/ct', '2026-01-01')"))
        conn.execute(text("INSERT INTO patient (id, nas_id, patient_id, patient_name, "
                          "name_key) VALUES (1, 1, 'P1', 'MÜLLER^Jörg', '')"))
        conn.execute(text("INSERT INTO study (id, nas_id, patient_pk, study_uid, study_date, "
                          "modalities) VALUES (1, 1, 1, '1.2.3', '20260101', 'CT')"))
    assert schema_state(url) == ("0001", head_revision())
    migrate(url)
    assert schema_state(url) == (head_revision(), head_revision())
    hits = search(get_engine(url), SearchQuery(text="jorg muller"), scope=None).patients
    assert [(h.nas, h.patient_id) for h in hits] == [("ct", "P1")]
