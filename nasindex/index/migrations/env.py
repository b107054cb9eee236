"""Alembic environment: runs on the connection nasindex hands it (see nasindex.index.db)."""

import sqlmodel
from alembic import context
from sqlalchemy import create_engine

from nasindex.index import models  # noqa: F401  (registers the tables)

config = context.config
target_metadata = sqlmodel.SQLModel.metadata


def run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:  # plain `alembic` command line, e.g. for `alembic revision --autogenerate`
    with create_engine(config.get_main_option("sqlalchemy.url")).connect() as conn:
        run(conn)
        conn.commit()
