"""instance: SOP Class UID, Bits Allocated and Number of Frames, for DICOMweb searches

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 18:00:00

A QIDO-RS instance search returns them (PS3.18 Table 10.6.3-5). They are filled as files
are read: existing rows keep NULL (the attribute is returned empty) until a full index
(``nasindex index NAS``) reads them again.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("sop_class_uid", sa.String()), ("bits_allocated", sa.Integer()),
           ("frames", sa.Integer()))


def upgrade() -> None:
    for name, kind in COLUMNS:
        op.add_column("instance", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite >= 3.35): a batch copy of the table would drop nothing
    # else here, but there is no need to rebuild a million-row table.
    for name, _kind in reversed(COLUMNS):
        op.execute(f"ALTER TABLE instance DROP COLUMN {name}")
