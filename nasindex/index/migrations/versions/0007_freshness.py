"""freshness: folder state for cheap polls, the watch heartbeat, the files still to hash,
the lag of a run's newest file

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 16:00:00

* ``folder``: every folder of a file-tree NAS with the mtime its last listing saw; a poll
  stats these and lists again only the folders that moved (or were still receiving).
* ``nas_watch``: one row per NAS, rewritten by every poll of its watch (the heartbeat).
* ``ix_instance_unhashed``: a partial index of the present files without a content hash
  (hashing is a later pass than the metadata); empty once every file is hashed.
* ``index_run.newest_lag_seconds``: seconds from the newest indexed file's mtime to the
  commit that made it searchable.
* PostgreSQL only: ``ix_instance_key_c``, item keys in code-point order (``COLLATE "C"``),
  for the key ranges of a folder's items (SQLite's own index already has that order).

Plain ``op.add_column``/``drop_column``: a batch copy of ``index_run`` would work too, but
``instance`` and ``patient`` must never be batch-copied (0002's triggers live on them).
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0007'
down_revision: str | Sequence[str] | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNHASHED = "content_hash IS NULL AND missing_since IS NULL"


def upgrade() -> None:
    op.create_table(
        'folder',
        sa.Column('nas_id', sa.Integer(), sa.ForeignKey('nas.id'), primary_key=True),
        sa.Column('path', sqlmodel.sql.sqltypes.AutoString(), primary_key=True),
        sa.Column('mtime_ns', sa.BigInteger(), nullable=False),
        sa.Column('settled', sa.Boolean(), nullable=False),
    )
    op.create_table(
        'nas_watch',
        sa.Column('nas_id', sa.Integer(), sa.ForeignKey('nas.id'), primary_key=True),
        sa.Column('watcher', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('beat_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('interval_seconds', sa.Float(), nullable=False),
        sa.Column('poll_seconds', sa.Float(), nullable=True),
        sa.Column('polls', sa.Integer(), nullable=False),
        sa.Column('changed_polls', sa.Integer(), nullable=False),
        sa.Column('sweep_next', sa.Integer(), nullable=False),
        sa.Column('message', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    )
    op.create_index('ix_instance_unhashed', 'instance', ['nas_id', 'item_key'],
                    sqlite_where=sa.text(UNHASHED), postgresql_where=sa.text(UNHASHED))
    op.add_column('index_run', sa.Column('newest_lag_seconds', sa.Float(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute('CREATE INDEX ix_instance_key_c ON instance (nas_id, item_key COLLATE "C")')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_instance_key_c")
    op.drop_column('index_run', 'newest_lag_seconds')
    op.drop_index('ix_instance_unhashed', table_name='instance')
    op.drop_table('nas_watch')
    op.drop_table('folder')
