"""One object per database the index may live on; :func:`backend` picks it."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from nasindex.search.backends.base import Backend
from nasindex.search.backends.postgresql import PostgresBackend
from nasindex.search.backends.sqlite import SqliteBackend

_BACKENDS: dict[str, Backend] = {b.dialect: b for b in (SqliteBackend(), PostgresBackend())}


def backend(conn: Connection) -> Backend:
    """The backend of ``conn``'s database."""
    try:
        return _BACKENDS[conn.dialect.name]
    except KeyError:
        raise NotImplementedError(f"search does not support {conn.dialect.name!r} "
                                  "(SQLite or PostgreSQL)") from None


__all__ = ["Backend", "backend"]
