"""item_error.note: a row that notes something about an item that was indexed (values
cut at DICOM's length limits), as opposed to an item that could not be indexed

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 15:20:00

Notes share the error table (one row per item, shown with the errors) but are not
failures: they are not counted as errors, never retried, and go when the item is read
again without a remark.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('item_error', sa.Column('note', sa.Boolean(), nullable=False,
                                          server_default=sa.false()))


def downgrade() -> None:
    op.drop_column('item_error', 'note')
