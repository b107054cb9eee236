"""substring indexes for name search (SQLite FTS5 trigram, PostgreSQL pg_trgm)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 18:55:00

Name fragments (``%doe%``) cannot use a B-tree. SQLite gets an external-content FTS5
table over ``patient.name_key`` with the trigram tokenizer, kept in sync by triggers
(so the sync engine's plain upserts keep it current); PostgreSQL gets a GIN pg_trgm
index, which serves LIKE and regular expressions directly. Patient ID prefixes get a
pattern index on PostgreSQL (SQLite uses a range on the existing index). A patient's
latest study (search ranks by it) is one seek in ``ix_study_patient_date``.

Existing rows get their ``name_key`` recomputed: the key now also holds the joined
parts of names in unspaced scripts (``山田太郎``), see nasindex.names.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from nasindex.names import name_key

revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_UP = [
    """CREATE VIRTUAL TABLE patient_fts USING fts5(
           name_key, content='patient', content_rowid='id',
           tokenize='trigram case_sensitive 1')""",
    "INSERT INTO patient_fts(patient_fts) VALUES ('rebuild')",
    """CREATE TRIGGER patient_fts_ai AFTER INSERT ON patient BEGIN
           INSERT INTO patient_fts(rowid, name_key) VALUES (new.id, new.name_key);
       END""",
    """CREATE TRIGGER patient_fts_ad AFTER DELETE ON patient BEGIN
           INSERT INTO patient_fts(patient_fts, rowid, name_key)
           VALUES ('delete', old.id, old.name_key);
       END""",
    """CREATE TRIGGER patient_fts_au AFTER UPDATE OF name_key ON patient BEGIN
           INSERT INTO patient_fts(patient_fts, rowid, name_key)
           VALUES ('delete', old.id, old.name_key);
           INSERT INTO patient_fts(rowid, name_key) VALUES (new.id, new.name_key);
       END""",
]
SQLITE_DOWN = ["DROP TRIGGER IF EXISTS patient_fts_au", "DROP TRIGGER IF EXISTS patient_fts_ad",
               "DROP TRIGGER IF EXISTS patient_fts_ai", "DROP TABLE IF EXISTS patient_fts"]
POSTGRES_UP = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    # fastupdate off: new names go straight into the index instead of a pending list
    # that every search would scan until the next vacuum (steadier search latency).
    "CREATE INDEX IF NOT EXISTS ix_patient_name_key_trgm ON patient "
    "USING gin (name_key gin_trgm_ops) WITH (fastupdate = off)",
    "CREATE INDEX IF NOT EXISTS ix_patient_patient_id_pattern ON patient "
    "(patient_id text_pattern_ops)",
]
POSTGRES_DOWN = ["DROP INDEX IF EXISTS ix_patient_patient_id_pattern",
                 "DROP INDEX IF EXISTS ix_patient_name_key_trgm"]


def _refresh_name_keys(conn) -> None:
    """Recompute name_key with the current folding rules (only rows that change)."""
    patient = sa.table("patient", sa.column("id"), sa.column("patient_name"),
                       sa.column("name_key"))
    rows = conn.execute(sa.select(patient.c.id, patient.c.patient_name, patient.c.name_key))
    changed = [{"pk": pk, "key": name_key(name or "")} for pk, name, key in rows
               if name_key(name or "") != key]
    if changed:
        conn.execute(patient.update().where(patient.c.id == sa.bindparam("pk"))
                     .values(name_key=sa.bindparam("key")), changed)


def upgrade() -> None:
    conn = op.get_bind()
    _refresh_name_keys(conn)
    for statement in SQLITE_UP if conn.dialect.name == "sqlite" else POSTGRES_UP:
        op.execute(statement)
    op.create_index("ix_study_patient_date", "study", ["patient_pk", "study_date"])


def downgrade() -> None:
    op.drop_index("ix_study_patient_date", table_name="study")
    conn = op.get_bind()
    for statement in SQLITE_DOWN if conn.dialect.name == "sqlite" else POSTGRES_DOWN:
        op.execute(statement)
