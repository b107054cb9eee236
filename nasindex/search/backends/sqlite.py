"""SQLite: names through the FTS5 trigram table ``patient_fts`` (migration 0002)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Boolean, and_, func, literal, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql import ColumnElement, column

from nasindex.index.models import Patient
from nasindex.search.backends.base import Backend, NameIndex
from nasindex.search.limits import Deadline
from nasindex.search.terms import NameTerm, any_part_matches, glob_escape

WILDCARD_FUNCTION = "nasindex_wildcard"  # any_part_matches, registered per search
PROGRESS_STEPS = 5000  # SQLite virtual machine steps between two looks at the clock

_FTS_COUNT = text("SELECT count(*) FROM patient_fts WHERE patient_fts MATCH :m")


def fts_condition(match: str) -> ColumnElement[bool]:
    """Patients whose name key the FTS5 trigram index matches."""
    sub = text("SELECT rowid FROM patient_fts WHERE patient_fts MATCH :fts").bindparams(
        fts=match).columns(column("rowid"))
    return Patient.id.in_(sub)


def fts_count(conn: Connection, match: str) -> int:
    """Matches of an FTS5 query, counted in the index (no patient row is read)."""
    return conn.scalar(_FTS_COUNT, {"m": match})


def phrase(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


@dataclass(frozen=True)
class FtsNameIndex(NameIndex):
    """The FTS5 query every candidate matches. For one plain word the index also finds
    its score classes, each a subset of the next: whole part (3), start of a part (2 or
    more), anywhere (all)."""

    match: str = ""
    classes: tuple[str, ...] = ()  # substrings of the name key, best class first

    def count(self, conn: Connection) -> int:
        return fts_count(conn, self.match)

    def best_class(self, conn: Connection, flagged_keys: list[str], first: int
                   ) -> ColumnElement[bool]:
        """Every lone record in the class outranks every one outside it, so the page is
        ranked from the best class that holds ``first`` lone records."""
        for sub in self.classes:
            n = fts_count(conn, phrase(sub)) - sum(sub in key for key in flagged_keys)
            if n >= first:
                return fts_condition(phrase(sub))
        return fts_condition(self.match)


class SqliteBackend(Backend):
    dialect = "sqlite"

    @contextmanager
    def bounded(self, conn: Connection, deadline: Deadline) -> Iterator[None]:
        raw = conn.connection.driver_connection
        raw.create_function(WILDCARD_FUNCTION, 2, any_part_matches, deterministic=True)
        # A progress handler that answers true interrupts the statement running.
        raw.set_progress_handler(deadline.passed, PROGRESS_STEPS)
        try:
            yield
        except OperationalError as exc:
            if isinstance(exc.orig, sqlite3.OperationalError) and deadline.passed():
                raise deadline.error() from None
            raise
        finally:
            raw.set_progress_handler(None, 0)

    def wildcard_part(self, word: str) -> ColumnElement[bool]:
        return getattr(func, WILDCARD_FUNCTION)(Patient.name_key, literal(word), type_=Boolean)

    def id_prefix(self, value: str) -> ColumnElement[bool]:
        # A range on the B-tree: every string that starts with value.
        return and_(Patient.patient_id >= value, Patient.patient_id < value + "\U0010ffff")

    def name_conditions(self, terms: list[NameTerm]) -> list[ColumnElement[bool]]:
        phrases = [p for t in terms for p in t.fts_phrases()]
        conds: list[ColumnElement[bool]] = []
        if phrases:
            conds.append(fts_condition(" AND ".join(map(phrase, phrases))))
        # SQLite runs REGEXP as a Python call per row: a GLOB (C, a superset: its * may
        # span parts) first leaves the regex only the rows that nearly match.
        conds += [Patient.name_key.op("GLOB")(f"* {glob_escape(t.word)} *")
                  for t in terms if t.inner_wildcard]
        # FTS5 phrases are case-sensitive substrings of the folded key: where they are
        # the rule itself, a LIKE on every candidate would only repeat them.
        return conds + [t.condition(self) for t in terms if not (phrases and t.fts_exact())]

    def name_index(self, terms: list[NameTerm], name_only: bool) -> FtsNameIndex | None:
        phrases = [p for t in terms for p in t.fts_phrases()]
        if not phrases:
            return None
        match = " AND ".join(map(phrase, phrases))
        exact = name_only and all(t.fts_exact() for t in terms)
        several = len(phrases) > 1
        if not exact or len(terms) > 1 or terms[0].kind == "wildcard":
            return FtsNameIndex(exact, several, match)  # classes of several words: not worth it
        word = terms[0].word
        classes = (f" {word} ", f" {word}") if terms[0].kind == "fragment" else (f" {word} ",)
        return FtsNameIndex(exact, several, match, classes)

    def any_trigram(self, groups: list[list[str]]) -> list[ColumnElement[bool]]:
        return [fts_condition(" AND ".join("(" + " OR ".join(map(phrase, g)) + ")"
                                           for g in groups))]
