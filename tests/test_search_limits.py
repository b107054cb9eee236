"""Hostile and mistaken queries (issue 9), on SQLite and PostgreSQL: matching never
backtracks, long or odd text is refused with a clear message, every search is bounded in
time, '?' is one character, wildcards alone and bad paging are refused. Every refusal is
a QueryError: one line for the CLI (a NasIndexError), a message for the dashboard (a
ValueError), never SQL, a traceback or the text typed."""

from __future__ import annotations

import random
import re
import threading
import time

import pytest
from search_support import nas_pk, records
from sqlalchemy import text

from nasindex import store
from nasindex.errors import NasIndexError, QueryError, SearchTimeout
from nasindex.search import SearchQuery, search
from nasindex.search.backends import backend
from nasindex.search.limits import MAX_LIMIT, MAX_OFFSET, Deadline
from nasindex.search.terms import wildcard_match

LONG_PART = "A" * 64  # the longest name part DICOM allows (PN: 64 characters a group)


@pytest.fixture
def engine(people_index):
    return people_index


def _ids(engine, typed: str, **kw) -> set[tuple[str, str]]:
    result = search(engine, SearchQuery(text=typed, fuzzy=False, **kw), scope=None)
    return {(r.nas, r.patient_id) for r in result.patients}


def _refused(engine, **kw) -> str:
    with pytest.raises(QueryError) as caught:
        search(engine, SearchQuery(**kw), scope=None)
    message = str(caught.value)
    assert isinstance(caught.value, NasIndexError | ValueError)
    assert "\n" not in message and "SELECT" not in message.upper()
    return message


def test_wildcards_never_backtrack(search_engine):
    """'a*a*a*a*a*a*a*a*n' against a 64-letter part took the old regex 20 s (ten 'a*':
    90 s); a linear matcher answers at once, and exactly."""
    engine = search_engine
    store.write_batch(engine, nas_pk(engine, "ct"), records(
        "LONG1", f"{LONG_PART}^NAN", "19700101", "F", [("20240101", "CT", "L1", 1)]))
    for typed in ("a*a*a*a*a*a*a*a*n", "a*" * 10 + "n", "*a*a*a*a*a*a*a*a*a*a*a*a?n"):
        start = time.perf_counter()
        assert _ids(engine, typed) == set(), typed
        assert time.perf_counter() - start < 2.0, typed
    start = time.perf_counter()
    assert _ids(engine, "a*a*a*a*a*a*a*a*a") == {("ct", "LONG1")}  # matches whole
    assert _ids(engine, "n?n") == {("ct", "LONG1")}
    assert time.perf_counter() - start < 2.0


def test_wildcard_matcher_agrees_with_a_regular_expression():
    """Both ways the matcher works ('*' alone: string searches; with '?': one pass) give
    what a regular expression gives, on short random parts where backtracking is cheap."""
    rng = random.Random(7)
    for _ in range(20000):
        part = "".join(rng.choice("ab") for _ in range(rng.randint(0, 7)))
        pattern = "".join(rng.choice("ab*?" if rng.random() < 0.5 else "ab**")
                          for _ in range(rng.randint(0, 6)))
        reference = re.fullmatch(pattern.replace("*", ".*").replace("?", "."), part)
        assert wildcard_match(pattern, part) == (reference is not None), (pattern, part)


def test_question_mark_is_exactly_one_character(engine):
    assert _ids(engine, "mul?er") == {("ct", "PAT003"), ("pacs2", "PAT004")}
    assert _ids(engine, "m?ler") == set()  # 'muller' has one letter more
    assert _ids(engine, "?? wei") == {("ct", "PAT011")}  # LI^WEI: a two-letter part
    assert _ids(engine, "? wei") == set()


@pytest.mark.parametrize("typed", ["*", "?", "??", "* ?", "*?*", " , ^ "])
def test_wildcards_alone_are_refused(engine, typed):
    assert "letter or digit" in _refused(engine, text=typed)


def test_long_and_odd_text_is_refused_at_once(engine):
    start = time.perf_counter()
    for words in (1_000, 10_000):
        message = _refused(engine, text=" ".join(["doe"] * words))
        assert "characters" in message or "words" in message
    assert "words" in _refused(engine, text=" ".join(["al"] * 20))
    assert time.perf_counter() - start < 1.0
    assert "control character (U+0000)" in _refused(engine, text="doe\x00jane")
    assert "control character (U+001B)" in _refused(engine, text="doe\x1b[2J")
    assert "control character" in _refused(engine, patient_id="PAT\x00")
    assert "not a valid date" in _refused(engine, birth_date="1970-13-01")
    assert "Type a name" in _refused(engine)  # nothing asked: not a list of everyone
    # Pasted text: a tab or a line break separates words like a space.
    assert _ids(engine, "jane\tdoe") == _ids(engine, "jane doe") != set()


@pytest.mark.parametrize(("paging", "word"), [
    ({"offset": -5}, "offset"), ({"limit": 0}, "limit"), ({"limit": MAX_LIMIT + 1}, "limit"),
    ({"offset": MAX_OFFSET + 1}, "offset"), ({"limit": "50"}, "limit"),
    ({"offset": 1.5}, "offset"), ({"limit": True}, "limit")])
def test_bad_paging_is_refused(engine, paging, word):
    assert word in _refused(engine, text="doe", **paging)


def test_a_search_past_its_time_limit_is_stopped(engine):
    with pytest.raises(SearchTimeout, match="longer than"):
        search(engine, SearchQuery(text="doe"), scope=None, time_limit=1e-6)
    # The database stops a statement that runs on: a query that never ends by itself.
    endless = {"sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                         "SELECT count(*) FROM c",
               "postgresql": "SELECT pg_sleep(60)"}[engine.dialect.name]
    start = time.perf_counter()
    with (engine.connect() as conn, pytest.raises(SearchTimeout),
          backend(conn).bounded(conn, Deadline.after(0.5))):
        conn.execute(text(endless))
    if engine.dialect.name == "sqlite":  # name search runs some on the driver's connection
        with (engine.connect() as conn, pytest.raises(SearchTimeout),
              backend(conn).bounded(conn, Deadline.after(0.5))):
            conn.connection.driver_connection.execute(endless).fetchall()
    assert time.perf_counter() - start < 4.0
    assert _ids(engine, "jane doe")  # and the next search runs as usual


@pytest.mark.parametrize("people_index", ["sqlite"], indirect=True)
def test_a_long_search_does_not_hold_the_others(people_index):
    """While one statement runs up to its limit, other searches of the same process
    answer (the old regex ran inside SQLite and held the interpreter's lock for the
    whole match; PostgreSQL runs statements in its own processes)."""
    engine = people_index
    endless = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
               "SELECT count(*) FROM c WHERE nasindex_wildcard(' aaaa ' || x, 'a*a*a*n')")
    stopped: list[BaseException] = []

    def long_one() -> None:
        try:
            with engine.connect() as conn, backend(conn).bounded(conn, Deadline.after(1.0)):
                conn.execute(text(endless))
        except SearchTimeout as exc:
            stopped.append(exc)

    worker = threading.Thread(target=long_one)
    worker.start()
    try:
        time.sleep(0.2)
        for _ in range(5):
            start = time.perf_counter()
            assert _ids(engine, "muller")
            assert time.perf_counter() - start < 0.5
        assert worker.is_alive()  # the long one was still running meanwhile
    finally:
        worker.join(10)
    assert stopped
