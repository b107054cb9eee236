"""name_part_variant: every distinct name part with its deletion variants, for the
similar-names pass

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 23:30:00

The similar-names pass read every name that shared a trigram with a typed word:
thousands of rows at 100,000 patients (a trigram such as ``ne `` is in every tenth
name), and more as the index grows. Names are made of far fewer distinct parts, and a
part within the typo budget of a word shares one of its *deletion variants* with it
(``nasindex.names.deletion_variants``: the first 7 letters with up to two deleted). This
table holds each part once per variant, so the pass looks up a typed word's few dozen
variants, keeps the parts within its budget, and reads only the names holding them.

On PostgreSQL a GIN index on a name's parts as an array (``ix_patient_name_parts``)
finds the patients holding a part whole from that part's own posting list; SQLite's
FTS5 name index finds them as the phrase ``' part '``.

Triggers add the parts of every new or renamed patient (for every writer, as 0003 and
0005 keep their columns and index); existing names are backfilled. Parts are never
removed: a part nobody holds any more (a renamed record's old name) finds nobody, as
0003's ``may_link`` flag is a safe superset. On PostgreSQL the table has no unique
index, so that syncs of several NAS devices adding the same new part never wait for
each other (a rare duplicate row is harmless: the pass reads distinct parts).
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0010'
down_revision: str | Sequence[str] | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREFIX = 7  # nasindex.names.VARIANT_PREFIX (a test checks both make the same variants)
# A numbers table 0..7 (FROM item, its value), as a trigger may use it (no CTE in SQLite's).
NUMBERS = {"sqlite": ("json_each('[0,1,2,3,4,5,6,7]') AS {a}", "{a}.value"),
           "postgresql": ("generate_series(0, 7) AS {a}", "{a}")}
# Deleting letter {j} (1-based; 0: none) and letter {i} < {j} of the prefix s: one
# deletion from 3 letters on, two from 6 (as deletion_variants).
VARIANT = ("CASE WHEN {j} = 0 THEN s WHEN {i} = 0 THEN substr(s, 1, {j} - 1) || substr(s, {j} + 1) "
           "ELSE substr(s, 1, {i} - 1) || substr(s, {i} + 1, {j} - {i} - 1) || substr(s, {j} + 1) END")
DELETED = ("({i} = 0 AND {j} = 0) OR ({i} = 0 AND {j} BETWEEN 1 AND length(s) AND length(s) >= 3) "
           "OR ({i} >= 1 AND {i} < {j} AND {j} <= length(s) AND length(s) >= 6)")


def _parts(dialect: str, name_key: str) -> tuple[str, str]:
    """(FROM item, column) of the parts of a name key (' doe jane ')."""
    if dialect == "sqlite":  # a JSON array of the parts, each quoted by json_quote
        return (f"json_each('[' || replace(json_quote(trim({name_key})), ' ', '\",\"') "
                "|| ']') AS p", "p.value")
    return f"unnest(string_to_array(btrim({name_key}, ' '), ' ')) AS p", "p"


def variants_select(dialect: str, source: str, name_key: str, only_new: bool) -> str:
    """SELECT (variant, part) of every part of ``name_key``, FROM ``source`` (a table
    and a comma, or nothing in a trigger); ``only_new``: of the parts not in the table."""
    parts, part = _parts(dialect, name_key)
    new = (" AND NOT EXISTS (SELECT 1 FROM name_part_variant v WHERE "
           f"v.variant = substr({part}, 1, {PREFIX}) AND v.part = {part})") if only_new else ""
    numbers, value = NUMBERS[dialect]
    ij = {"i": value.format(a="ni"), "j": value.format(a="nj")}
    return (f"SELECT DISTINCT {VARIANT.format(**ij)}, n.part "
            f"FROM (SELECT DISTINCT {part} AS part, substr({part}, 1, {PREFIX}) AS s "
            f"FROM {source}{parts} WHERE {part} <> ''{new}) AS n, "
            f"{numbers.format(a='ni')}, {numbers.format(a='nj')} WHERE {DELETED.format(**ij)}")


NAME_PARTS = "string_to_array(btrim(name_key, ' '), ' ')"  # as search's PostgreSQL backend


def _insert(dialect: str) -> str:
    return ("INSERT OR IGNORE INTO" if dialect == "sqlite" else "INSERT INTO") + \
        " name_part_variant (variant, part) "


SQLITE_UP = [
    "CREATE TABLE name_part_variant (variant TEXT NOT NULL, part TEXT NOT NULL, "
    "PRIMARY KEY (variant, part)) WITHOUT ROWID",
    f"INSERT INTO name_part_variant (variant, part) "
    f"{variants_select('sqlite', 'patient, ', 'patient.name_key', False)}",
    "CREATE TRIGGER name_part_variant_ai AFTER INSERT ON patient BEGIN "
    f"{_insert('sqlite')}{variants_select('sqlite', '', 'NEW.name_key', True)}; END",
    "CREATE TRIGGER name_part_variant_au AFTER UPDATE OF name_key ON patient "
    "WHEN NEW.name_key IS NOT OLD.name_key BEGIN "
    f"{_insert('sqlite')}{variants_select('sqlite', '', 'NEW.name_key', True)}; END",
]
POSTGRES_UP = [
    "CREATE TABLE name_part_variant (variant TEXT NOT NULL, part TEXT NOT NULL)",
    f"INSERT INTO name_part_variant (variant, part) "
    f"{variants_select('postgresql', 'patient, ', 'patient.name_key', False)}",
    "CREATE INDEX ix_name_part_variant ON name_part_variant (variant, part)",
    # The patients holding a part: one posting list per part (SQLite's FTS5 name index
    # finds a whole part as the phrase ' part ' at about that cost already).
    f"CREATE INDEX ix_patient_name_parts ON patient USING gin ({NAME_PARTS})",
    "CREATE FUNCTION nasindex_name_part_variants() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN {_insert('postgresql')}{variants_select('postgresql', '', 'NEW.name_key', True)}; "
    "RETURN NULL; END $$",
    "CREATE TRIGGER name_part_variant_ai AFTER INSERT ON patient "
    "FOR EACH ROW EXECUTE FUNCTION nasindex_name_part_variants()",
    "CREATE TRIGGER name_part_variant_au AFTER UPDATE OF name_key ON patient FOR EACH ROW "
    "WHEN (NEW.name_key IS DISTINCT FROM OLD.name_key) "
    "EXECUTE FUNCTION nasindex_name_part_variants()",
]


def upgrade() -> None:
    for statement in SQLITE_UP if op.get_bind().dialect.name == "sqlite" else POSTGRES_UP:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS name_part_variant_au")
        op.execute("DROP TRIGGER IF EXISTS name_part_variant_ai")
    else:
        op.execute("DROP TRIGGER IF EXISTS name_part_variant_au ON patient")
        op.execute("DROP TRIGGER IF EXISTS name_part_variant_ai ON patient")
        op.execute("DROP FUNCTION IF EXISTS nasindex_name_part_variants()")
        op.execute("DROP INDEX IF EXISTS ix_patient_name_parts")
    op.execute("DROP TABLE name_part_variant")
