"""precomputed search columns: a patient's latest study date and whether it may link;
a covering index for study date ranges

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 19:45:00

Search ranks every matching patient by its latest study and groups records of one person
across NAS devices. Computing both per candidate (a seek in ``study`` for the date, two
seeks in ``patient`` for a partner) cost more than the search itself when a fragment
matches thousands of patients. Two columns of ``patient`` hold them instead:

* ``latest_study``: ``max(study.study_date)`` of its studies.
* ``may_link``: true once a record on another NAS has had the same Patient ID, or the
  same non-empty name key and birth date. Never reset: a superset is safe (search groups
  the flagged candidates exactly, in Python); a record without the flag is alone.

Triggers keep both current for every writer (the sync engine's upserts, bulk loads), as
0002's triggers keep ``patient_fts``; existing rows are backfilled.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same rules in both dialects; {T}/{F} are true/false (1/0 in SQLite), NEW/OLD the row.
LATEST = ("UPDATE patient SET latest_study = (SELECT max(study_date) FROM study "
          "WHERE study.patient_pk = patient.id) WHERE id IN ({pks})")
# A partner shares the Patient ID, or the name key and birth date, on another NAS; both
# get the flag. Two statements, not an OR, so that each uses its own index.
# Rows already flagged are left alone (no rewrite, no row lock on another NAS's record).
LINK = [
    "UPDATE patient SET may_link = {T} WHERE may_link = {F} AND nas_id <> NEW.nas_id "
    "AND patient_id = NEW.patient_id",
    "UPDATE patient SET may_link = {T} WHERE may_link = {F} AND nas_id <> NEW.nas_id "
    "AND NEW.name_key <> '' AND NEW.birth_date <> '' "
    "AND name_key = NEW.name_key AND birth_date = NEW.birth_date",
    "UPDATE patient SET may_link = {T} WHERE id = NEW.id AND may_link = {F} AND (EXISTS (SELECT 1 FROM patient o "
    "WHERE o.nas_id <> NEW.nas_id AND o.patient_id = NEW.patient_id) OR EXISTS ("
    "SELECT 1 FROM patient o WHERE o.nas_id <> NEW.nas_id AND NEW.name_key <> '' "
    "AND NEW.birth_date <> '' AND o.name_key = NEW.name_key "
    "AND o.birth_date = NEW.birth_date))",
]
BACKFILL_LINK = (
    "UPDATE patient SET may_link = {T} WHERE id IN ("
    "SELECT a.id FROM patient a JOIN patient b ON a.patient_id = b.patient_id "
    "AND a.nas_id <> b.nas_id UNION "
    "SELECT a.id FROM patient a JOIN patient b ON a.name_key = b.name_key "
    "AND a.birth_date = b.birth_date AND a.nas_id <> b.nas_id "
    "WHERE a.name_key <> '' AND a.birth_date <> '')")
STUDY_CHANGED = ("NEW.study_date IS NOT OLD.study_date OR NEW.patient_pk <> OLD.patient_pk")
PATIENT_CHANGED = ("NEW.name_key IS NOT OLD.name_key OR NEW.birth_date IS NOT OLD.birth_date")


def _sqlite_up(latest: str = LATEST) -> list[str]:
    link = "; ".join(s.format(T=1, F=0) for s in LINK)
    return [
        f"CREATE TRIGGER study_latest_ai AFTER INSERT ON study BEGIN "
        f"{latest.format(pks='NEW.patient_pk')}; END",
        f"CREATE TRIGGER study_latest_au AFTER UPDATE OF study_date, patient_pk ON study "
        f"WHEN {STUDY_CHANGED} BEGIN {latest.format(pks='NEW.patient_pk, OLD.patient_pk')}; END",
        f"CREATE TRIGGER study_latest_ad AFTER DELETE ON study BEGIN "
        f"{latest.format(pks='OLD.patient_pk')}; END",
        f"CREATE TRIGGER patient_link_ai AFTER INSERT ON patient BEGIN {link}; END",
        f"CREATE TRIGGER patient_link_au AFTER UPDATE OF name_key, birth_date ON patient "
        f"WHEN {PATIENT_CHANGED} BEGIN {link}; END",
    ]


def _postgres_up(latest: str = LATEST) -> list[str]:
    link = "; ".join(s.format(T="true", F="false") for s in LINK)
    return [
        f"""CREATE FUNCTION nasindex_study_latest() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF TG_OP IN ('INSERT', 'UPDATE') THEN
                {latest.format(pks='NEW.patient_pk')};
              END IF;
              IF TG_OP IN ('UPDATE', 'DELETE') THEN
                {latest.format(pks='OLD.patient_pk')};
              END IF;
              RETURN NULL;
            END $$""",
        "CREATE TRIGGER study_latest_ai AFTER INSERT OR DELETE ON study "
        "FOR EACH ROW EXECUTE FUNCTION nasindex_study_latest()",
        "CREATE TRIGGER study_latest_au AFTER UPDATE OF study_date, patient_pk ON study "
        f"FOR EACH ROW WHEN ({STUDY_CHANGED.replace('IS NOT', 'IS DISTINCT FROM')}) "
        "EXECUTE FUNCTION nasindex_study_latest()",
        f"""CREATE FUNCTION nasindex_patient_link() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN {link}; RETURN NULL; END $$""",
        "CREATE TRIGGER patient_link_ai AFTER INSERT ON patient "
        "FOR EACH ROW EXECUTE FUNCTION nasindex_patient_link()",
        "CREATE TRIGGER patient_link_au AFTER UPDATE OF name_key, birth_date ON patient "
        f"FOR EACH ROW WHEN ({PATIENT_CHANGED.replace('IS NOT', 'IS DISTINCT FROM')}) "
        "EXECUTE FUNCTION nasindex_patient_link()",
    ]


def upgrade() -> None:
    conn = op.get_bind()
    sqlite = conn.dialect.name == "sqlite"
    op.add_column("patient", sa.Column("latest_study", sa.String(), nullable=True))
    op.add_column("patient", sa.Column("may_link", sa.Boolean(), nullable=False,
                                       server_default=sa.false()))
    op.execute(LATEST.format(pks="SELECT patient_pk FROM study"))
    op.execute(BACKFILL_LINK.format(T=1 if sqlite else "true"))
    for statement in _sqlite_up() if sqlite else _postgres_up():
        op.execute(statement)
    op.create_index("ix_patient_flagged", "patient", ["id"],
                    sqlite_where=sa.text("may_link = 1"), postgresql_where=sa.text("may_link"))
    # A date range with a modality reads the study rows it finds only for these columns.
    op.create_index("ix_study_date_cover", "study", ["study_date", "modalities", "patient_pk"])


def downgrade() -> None:
    conn = op.get_bind()
    op.drop_index("ix_study_date_cover", table_name="study")
    op.drop_index("ix_patient_flagged", table_name="patient")
    for name, table in (("study_latest_ai", "study"), ("study_latest_au", "study"),
                        ("study_latest_ad", "study"), ("patient_link_ai", "patient"),
                        ("patient_link_au", "patient")):
        op.execute(f"DROP TRIGGER IF EXISTS {name}" if conn.dialect.name == "sqlite"
                   else f"DROP TRIGGER IF EXISTS {name} ON {table}")
    if conn.dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS nasindex_study_latest()")
        op.execute("DROP FUNCTION IF EXISTS nasindex_patient_link()")
    # Plain ALTER TABLE (SQLite >= 3.35), not a batch copy of the table: that would drop
    # 0002's patient_fts triggers along with the old table.
    op.execute("ALTER TABLE patient DROP COLUMN may_link")
    op.execute("ALTER TABLE patient DROP COLUMN latest_study")
