"""audit trail: who searched for whom, opened which patient, previewed which images, and
every admin action, login, logout and refusal

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 15:10:00

The table is append-only. The application only inserts; triggers make the database
itself refuse an UPDATE or DELETE (and on PostgreSQL a TRUNCATE) of a row, whoever
asks. On PostgreSQL the grants in docs/access.md add the second lock: the role the
application connects as may only SELECT and INSERT.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFUSAL = "audit_event is append-only: its rows cannot be changed or deleted"

SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER audit_event_no_{verb.lower()} BEFORE {verb} ON audit_event
        BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"""
    for verb in ("UPDATE", "DELETE")
]
POSTGRES_TRIGGERS = [
    f"""CREATE FUNCTION audit_event_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION '{REFUSAL}' USING ERRCODE = 'insufficient_privilege'; END $$""",
    """CREATE TRIGGER audit_event_no_change BEFORE UPDATE OR DELETE ON audit_event
       FOR EACH ROW EXECUTE FUNCTION audit_event_refuse()""",
    """CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
       FOR EACH STATEMENT EXECUTE FUNCTION audit_event_refuse()""",
]


def upgrade() -> None:
    op.create_table(
        'audit_event',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('username', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('door', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('client', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('action', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('nas', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('patient_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('study_uid', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('series_uid', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('query', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('results', sa.Integer(), nullable=True),
        sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    for column in ('at', 'username', 'action', 'nas', 'patient_id'):
        op.create_index(f'ix_audit_event_{column}', 'audit_event', [column])
    triggers = (POSTGRES_TRIGGERS if op.get_bind().dialect.name == 'postgresql'
                else SQLITE_TRIGGERS)
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    # Dropping the audit trail is a deliberate act of whoever runs the downgrade (the
    # database owner); the application never does it.
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TABLE audit_event")
        op.execute("DROP FUNCTION audit_event_refuse()")
        return
    op.drop_table('audit_event')
