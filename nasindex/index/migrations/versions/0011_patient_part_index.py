"""patient_part_fts: on SQLite, the patients holding a name part whole

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 00:00:00

The similar-names pass reads the names holding a near part whole (0010). SQLite's FTS5
name index finds ``' part '`` as a phrase of trigrams, reading the doclists of its
common trigrams (`` st``, ``er ``) every time: about 1 ms a part, and a word may have
20-30 near parts. This contentless FTS5 table holds each patient under its parts whole,
as tokens (a part's UTF-8 bytes in hexadecimal, so that no tokenizer rule splits or
folds a part): one short doclist per part. Triggers keep it current as 0005's keep the
name index; existing names are backfilled. PostgreSQL has ix_patient_name_parts (0010).
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0011'
down_revision: str | Sequence[str] | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tokens(row: str) -> str:
    """The parts of ``row``'s name key, each in hexadecimal, between spaces (NULL for
    none). A JSON array of the parts, each quoted by json_quote, lists them."""
    return ("(SELECT group_concat(hex(p.value), ' ') FROM json_each('[' || "
            f"replace(json_quote(trim({row}.name_key)), ' ', '\",\"') || ']') AS p "
            "WHERE p.value <> '')")


def _insert(row: str) -> str:
    return f"INSERT INTO patient_part_fts(rowid, parts) VALUES ({row}.id, {_tokens(row)})"


def _delete(row: str) -> str:
    # Contentless: a row is deleted by giving back exactly what was inserted.
    return (f"INSERT INTO patient_part_fts(patient_part_fts, rowid, parts) "
            f"VALUES ('delete', {row}.id, {_tokens(row)})")


SQLITE_UP = [
    "CREATE VIRTUAL TABLE patient_part_fts USING fts5(parts, content='', columnsize=0, "
    "detail=none, tokenize='ascii')",
    f"INSERT INTO patient_part_fts(rowid, parts) SELECT id, {_tokens('patient')} FROM patient",
    f"CREATE TRIGGER patient_part_ai AFTER INSERT ON patient BEGIN {_insert('NEW')}; END",
    f"CREATE TRIGGER patient_part_ad AFTER DELETE ON patient BEGIN {_delete('OLD')}; END",
    "CREATE TRIGGER patient_part_au AFTER UPDATE OF name_key ON patient "
    f"WHEN NEW.name_key IS NOT OLD.name_key BEGIN {_delete('OLD')}; {_insert('NEW')}; END",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_UP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("patient_part_au", "patient_part_ad", "patient_part_ai"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS patient_part_fts")
