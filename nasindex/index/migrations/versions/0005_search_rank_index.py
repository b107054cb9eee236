"""name search in rank order: a SQLite FTS5 index whose row order is the search order;
a patient's latest study from valid dates only; an index on it for both databases

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 16:00:00

Search shows people latest study first. A name fragment may match thousands of patients,
and ranking them all to show 25 cost more than the search itself. On SQLite the name
index now holds each patient under a rowid that sorts like the search:
``(latest study as YYYYMMDD) << 32 | patient id``, so the best page of a name is the
first rows of the index read backwards, and a count never reads a patient row. Its
second column, ``tags``, holds ``N<nas id>N`` and ``LNK`` (may link, see 0003), so NAS
filters, NAS scopes and lone records are counted in the index as well (upper case: a
folded name never holds those trigrams). The table is
contentless (the patient row holds the name); triggers keep it current, as 0002's
triggers kept ``patient_fts``, which it replaces.

``patient.latest_study`` now counts only well-formed dates (eight digits): a malformed
Study Date no longer ranks a patient first or last by accident, and the string and the
number sort alike. Both databases get ``ix_patient_latest`` to walk patients latest
first (filters without a name, a Patient ID prefix that matches thousands).
"""
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | Sequence[str] | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EIGHT_DIGITS = "'[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]'"
LATEST = {  # 0003's rule, over well-formed dates only
    "sqlite": ("UPDATE patient SET latest_study = (SELECT max(study_date) FROM study "
               f"WHERE study.patient_pk = patient.id AND study_date GLOB {EIGHT_DIGITS}) "
               "WHERE id IN ({pks})"),
    "postgresql": ("UPDATE patient SET latest_study = (SELECT max(study_date) FROM study "
                   "WHERE study.patient_pk = patient.id AND study_date ~ '^[0-9]{{8}}$') "
                   "WHERE id IN ({pks})"),
}


def _rank(row: str) -> str:
    """The FTS rowid of a patient row (NEW or OLD): latest study, then id."""
    return f"(coalesce(CAST({row}.latest_study AS INTEGER), 0) << 32 | {row}.id)"


def _tags(row: str) -> str:
    # Upper case: folded names never hold it, so a tag's trigrams are its own.
    return f"('N' || {row}.nas_id || 'N' || CASE WHEN {row}.may_link THEN ' LNK' ELSE '' END)"


def _fts_insert(row: str) -> str:
    return (f"INSERT INTO patient_rank_fts(rowid, name_key, tags) "
            f"VALUES ({_rank(row)}, {row}.name_key, {_tags(row)})")


def _fts_delete(row: str) -> str:
    # Contentless: a row is deleted by giving back exactly what was inserted.
    return (f"INSERT INTO patient_rank_fts(patient_rank_fts, rowid, name_key, tags) "
            f"VALUES ('delete', {_rank(row)}, {row}.name_key, {_tags(row)})")


RANK_CHANGED = ("NEW.name_key IS NOT OLD.name_key OR NEW.latest_study IS NOT OLD.latest_study "
                "OR NEW.may_link IS NOT OLD.may_link OR NEW.nas_id IS NOT OLD.nas_id")
SQLITE_FTS = [
    """CREATE VIRTUAL TABLE patient_rank_fts USING fts5(
           name_key, tags, content='', columnsize=0,
           tokenize='trigram case_sensitive 1')""",
    f"CREATE TRIGGER patient_rank_ai AFTER INSERT ON patient BEGIN {_fts_insert('NEW')}; END",
    f"CREATE TRIGGER patient_rank_ad AFTER DELETE ON patient BEGIN {_fts_delete('OLD')}; END",
    "CREATE TRIGGER patient_rank_au AFTER UPDATE OF name_key, latest_study, may_link, nas_id "
    f"ON patient WHEN {RANK_CHANGED} BEGIN {_fts_delete('OLD')}; {_fts_insert('NEW')}; END",
    "INSERT INTO patient_rank_fts(rowid, name_key, tags) "
    f"SELECT {_rank('patient')}, name_key, {_tags('patient')} FROM patient",
]
SQLITE_FTS_DOWN = ["DROP TRIGGER IF EXISTS patient_rank_au",
                   "DROP TRIGGER IF EXISTS patient_rank_ad",
                   "DROP TRIGGER IF EXISTS patient_rank_ai",
                   "DROP TABLE IF EXISTS patient_rank_fts"]
STUDY_TRIGGERS = ("study_latest_ai", "study_latest_au", "study_latest_ad")


def _earlier(name: str):
    """A module of an earlier revision (its SQL, to restore on downgrade)."""
    path = next(Path(__file__).parent.glob(f"{name}_*.py"))
    spec = importlib.util.spec_from_file_location(f"nasindex_migration_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _study_triggers(dialect: str, latest: str) -> list[str]:
    """0003's latest-study triggers (and PostgreSQL function), with ``latest`` as their
    rule; not its may-link triggers."""
    m0003 = _earlier("0003")
    statements = m0003._sqlite_up(latest) if dialect == "sqlite" else m0003._postgres_up(latest)
    return [s for s in statements if "study_latest" in s]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in _earlier("0002").SQLITE_DOWN:  # patient_fts: replaced below
            op.execute(statement)
        for name in STUDY_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        for statement in _study_triggers(dialect, LATEST[dialect]):
            op.execute(statement)
    else:
        op.execute("DROP TRIGGER IF EXISTS study_latest_ai ON study")
        op.execute("DROP TRIGGER IF EXISTS study_latest_au ON study")
        op.execute("DROP FUNCTION IF EXISTS nasindex_study_latest()")
        for statement in _study_triggers(dialect, LATEST[dialect]):
            op.execute(statement)
    op.execute(LATEST[dialect].format(pks="SELECT id FROM patient"))
    if dialect == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)
    # Latest first, unknown last: the order search walks (SQLite sorts NULL first
    # ascending, so a plain index read backwards is that order).
    latest = "latest_study" if dialect == "sqlite" else "latest_study DESC NULLS LAST"
    op.create_index("ix_patient_latest", "patient", [sa.text(latest)])


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.drop_index("ix_patient_latest", table_name="patient")
    m0003 = _earlier("0003")
    if dialect == "sqlite":
        for statement in SQLITE_FTS_DOWN:
            op.execute(statement)
        for name in STUDY_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        for statement in _earlier("0002").SQLITE_UP:
            op.execute(statement)
    else:
        op.execute("DROP TRIGGER IF EXISTS study_latest_ai ON study")
        op.execute("DROP TRIGGER IF EXISTS study_latest_au ON study")
        op.execute("DROP FUNCTION IF EXISTS nasindex_study_latest()")
    for statement in _study_triggers(dialect, m0003.LATEST):
        op.execute(statement)
    op.execute(m0003.LATEST.format(pks="SELECT id FROM patient"))
