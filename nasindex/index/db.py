"""Connecting to the index and keeping its schema current (Alembic)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError
from sqlmodel import create_engine

from nasindex.errors import IndexNotReady

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).with_name("migrations")


@cache
def get_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if _read_only_folder(path):
            # A read-only mount or folder: SQLite cannot make the WAL's shared-memory
            # file beside it, so open the file as what it is, immutable. Reading (status,
            # search) works; a write fails as a read-only index (one line, exit 1).
            uri = f"file:{quote(path)}?mode=ro&immutable=1"
            engine = create_engine(url, creator=lambda: sqlite3.connect(
                uri, uri=True, timeout=60, check_same_thread=False))
        else:
            engine = create_engine(url, connect_args={"timeout": 60})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url)
    event.listen(engine, "checkout", _drop_if_closed)
    event.listen(engine, "engine_connect", _clear_search_timeout)
    return engine


# Execution option of the connections searches read through (:func:`for_search`), and
# the key of a pooled connection's info holding the statement_timeout (ms) a search
# left on its session.
SEARCH = "nasindex_search"
SEARCH_TIMEOUT = "nasindex_search_timeout"


def for_search(engine: Engine) -> Engine:
    """``engine``, for a search's connection: a statement_timeout a search left on the
    session stays there (the next search is likely to want the same)."""
    return engine.execution_options(**{SEARCH: True})


def _drop_if_closed(dbapi_conn, _record, _proxy) -> None:
    """pool_pre_ping without its round trip: a server that restarted or ended the
    session closed the socket, which reading what is waiting on it (without blocking)
    finds. The pool then opens a new connection. A server that vanished without closing
    (a network cut) fails the next statement instead, and SQLAlchemy empties the pool."""
    from psycopg import OperationalError, pq

    pgconn = dbapi_conn.pgconn
    with contextlib.suppress(OperationalError):
        for _ in range(2):  # the server's last words (a FATAL notice), then the end
            pgconn.consume_input()
    if pgconn.status != pq.ConnStatus.OK:
        raise DisconnectionError("the server closed the connection")


def _clear_search_timeout(conn: Connection) -> None:
    """A session a search left a statement_timeout on gets the server's default back
    before anything else uses it (a sync's long statement must not be cut at 3 s)."""
    info = conn.connection.info
    if SEARCH_TIMEOUT in info and not conn.get_execution_options().get(SEARCH):
        raw = conn.connection.driver_connection
        raw.autocommit = True  # at once, not in a transaction that might roll it back
        try:
            raw.execute("SET statement_timeout = DEFAULT")
        finally:
            raw.autocommit = False
        del info[SEARCH_TIMEOUT]


def _read_only_folder(path: str) -> bool:
    folder = os.path.dirname(path) or "."
    return os.path.exists(path) and not os.access(folder, os.W_OK)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets the dashboard read while a sync writes (a read-only file keeps its mode).
    cur = dbapi_conn.cursor()
    with contextlib.suppress(sqlite3.OperationalError):
        cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    # Searches touch scattered pages of a large file: a 64 MB page cache and memory-mapped
    # reads keep them off the read() path (SQLite's default cache is 2 MB).
    cur.execute("PRAGMA cache_size=-65536")
    cur.execute("PRAGMA mmap_size=268435456")
    cur.close()


NAME_INDEX = "patient_rank_fts"  # SQLite's name index (migration 0005)
PART_INDEX = "patient_part_fts"  # its patients by name part whole (migration 0011)
MERGE_PAGES = 1000  # FTS5 leaf pages merged per step: one short write transaction each
SEGMENTS_KEPT = 4  # past this many segments, the name index is merged into one


def compact_name_index(engine: Engine) -> None:
    """Merge SQLite's FTS5 name indexes each into one segment without delete markers,
    once it holds more than SEGMENTS_KEPT segments.

    Every write transaction adds a segment, and a changed or deleted patient leaves a
    delete marker (the tables are contentless): after a full run a name search read 18
    segments and 1.5x the data, 5-10x slower than on the merged index. A merge rewrites
    the whole index (about 1 s per 100,000 patients), so a run that adds a segment or
    two (a poll, an incremental sync) leaves it for later. Merging is done in steps of
    MERGE_PAGES (FTS5's 'merge' with a negative budget works until one segment is
    left), each its own transaction, so other writers wait for one step at most.
    PostgreSQL's GIN indexes need nothing here (autovacuum merges their pending lists)."""
    if engine.dialect.name != "sqlite":
        return
    for index in (NAME_INDEX, PART_INDEX):
        with engine.connect() as conn:
            segments = conn.scalar(text(f"SELECT count(DISTINCT segid) FROM {index}_idx"))
        while segments > SEGMENTS_KEPT:
            with engine.begin() as conn:
                raw = conn.connection.driver_connection
                before = raw.total_changes
                raw.execute(f"INSERT INTO {index}({index}, rank) VALUES ('merge', {-MERGE_PAGES})")
                # The statement itself counts one change: more means a merge step was done.
                if raw.total_changes - before <= 1:
                    break


def alembic_config(url: str) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig  # here: every command pays its import

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Create the index, or bring an existing one up to the current schema."""
    from alembic import command

    _ensure_sqlite_dir(url)
    cfg = alembic_config(url)
    with get_engine(url).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def head_revision() -> str:
    """This code's schema revision. Revisions are numbered files (0001_..., 0002_...) in
    one line of history, so the highest number is the head (a test checks it against
    Alembic's own answer); reading it this way spares every command Alembic's import."""
    return max(p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def schema_state(url: str) -> tuple[str | None, str]:
    """(current revision of the database, head revision of this code)."""
    with get_engine(url).connect() as conn:
        current = (conn.scalar(text("SELECT version_num FROM alembic_version"))
                   if inspect(conn).has_table("alembic_version") else None)
    return current, head_revision()


def require_current(url: str) -> Engine:
    """The engine, if the index exists and is migrated; else a clear IndexNotReady."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise IndexNotReady("The index does not exist yet. Run `nasindex init` to create it.")
    current, head = schema_state(url)
    if current is None:
        raise IndexNotReady("The index is empty (no schema). Run `nasindex init` to create it.")
    if current != head:
        raise IndexNotReady(f"The index schema is at {current}, this version needs {head}. "
                            "Run `nasindex init` to migrate it.")
    return get_engine(url)


def _ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite:///") and ":memory:" not in url:
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
