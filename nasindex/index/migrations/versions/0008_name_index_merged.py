"""SQLite's name index merged into one segment

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 19:00:00

``patient_rank_fts`` (0005) was filled by triggers, row by row: a full index left it in
many segments with a delete marker for every patient whose latest study moved, and a
name search read them all (5-10x slower than on the merged index). 'optimize' merges it
once; from now on the sync engine merges what each run wrote
(``nasindex.index.db.compact_name_index``). Nothing to undo on downgrade: the merged
index holds the same rows.
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0008'
down_revision: str | Sequence[str] | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("INSERT INTO patient_rank_fts(patient_rank_fts) VALUES ('optimize')")


def downgrade() -> None:
    pass
