"""Searches on PostgreSQL, as their connections see them: a search on a warm connection
costs a round trip per statement and nothing else (no ping, BEGIN, SET or ROLLBACK); the
time limit a search leaves on its session never stops anyone else's statement; and a
search after the server restarted is answered, not refused."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres import PostgresServer
from psycopg import pq
from search_support import fill
from sqlalchemy import event
from sqlalchemy.engine import Engine

from nasindex.index.db import get_engine, migrate
from nasindex.search import SearchQuery, search


@pytest.fixture
def engine(postgres_url) -> Engine:
    migrate(postgres_url)
    eng = get_engine(postgres_url)
    fill(eng)
    eng.dispose()  # from here on, the connections the test opens are the pool's only ones
    return eng


@contextlib.contextmanager
def connections_opened(engine: Engine) -> Iterator[list]:
    opened: list = []
    listener = lambda dbapi_conn, _record: opened.append(dbapi_conn)  # noqa: E731
    event.listen(engine, "connect", listener)
    try:
        yield opened
    finally:
        event.remove(engine, "connect", listener)


def _waits(trace: str) -> int:
    """Messages of libpq's protocol trace that wait for the server's answer: a simple
    Query, or the Sync that ends an extended-protocol statement."""
    sent = [line.split("\t") for line in trace.splitlines() if line.startswith("F\t")]
    return sum(1 for f in sent if len(f) > 2 and f[2].split(" ")[0] in ("Query", "Sync"))


def test_a_search_waits_for_its_statements_only(engine, tmp_path: Path):
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda _c, _cur, sql, *_: statements.append(sql))
    trace_path = tmp_path / "protocol.txt"
    with connections_opened(engine) as opened, open(trace_path, "w") as trace:
        search(engine, SearchQuery(text="jane doe"), scope=None)  # sets the time limit
        (conn,) = opened
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        statements.clear()
        for text in ("jane doe", "muller", "PAT001"):
            search(engine, SearchQuery(text=text), scope=None)
        conn.pgconn.untrace()  # flushes the trace
    assert len(statements) >= 6  # a page's records and its studies, at least
    assert _waits(trace_path.read_text()) == len(statements)


def test_a_searchs_time_limit_never_stops_another_statement(engine):
    with connections_opened(engine) as opened:
        search(engine, SearchQuery(text="jane doe"), scope=None, time_limit=0.5)
        with engine.connect() as conn:  # the search's connection, as a sync would use it
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "0"
            conn.exec_driver_sql("SELECT pg_sleep(0.7)")  # past the search's limit
        with engine.connect() as conn:  # the same for the DBAPI connection itself
            raw = conn.connection.driver_connection
            assert raw.execute("SHOW statement_timeout").fetchone() == ("0",)
        assert len(opened) == 1
        # and the next search has its limit again
        assert search(engine, SearchQuery(text="jane doe"), scope=None).total


def test_a_search_after_the_server_restarted_is_answered():
    server = PostgresServer().start()
    url = None
    try:
        url = server.create_database("restarted")
        migrate(url)
        eng = get_engine(url)
        fill(eng)
        q = SearchQuery(text="jane doe")
        before = search(eng, q, scope=None)
        server.restart()  # every pooled connection is closed by the server
        after = search(eng, q, scope=None)
        assert [p.as_dict() for p in after.patients] == [p.as_dict() for p in before.patients]
        assert after.total == before.total > 0
    finally:
        if url:
            get_engine(url).dispose()
        server.stop()
