"""SQLite: names through the rank-ordered FTS5 trigram table ``patient_rank_fts``
(migration 0005; sqlite_rank.py ranks one name word by it alone), study filters alone
walked latest first (sqlite_studies.py), Patient ID prefixes as a range on the B-tree,
Python functions for what SQLite's own matching cannot say."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, String, and_, bindparam, column, func, literal, or_, select, table
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql import ColumnElement

from nasindex.index.db import PART_INDEX as PARTS
from nasindex.index.models import Patient
from nasindex.search.backends import sqlite_rank, sqlite_studies
from nasindex.search.backends.base import Backend
from nasindex.search.backends.sqlite_rank import FTS, ID_MASK, name_match
from nasindex.search.limits import Deadline
from nasindex.search.people import Candidate
from nasindex.search.terms import (
    NameTerm,
    any_part_matches,
    escape_like,
    folded_match,
    glob_escape,
)

if TYPE_CHECKING:
    from nasindex.search.plan import Plan

WILDCARD_FUNCTION = "nasindex_wildcard"  # any_part_matches, registered per search
DICOM_FUNCTION = "nasindex_dicom_match"  # folded_match, registered per search
PROGRESS_STEPS = 5000  # SQLite virtual machine steps between two looks at the clock
_FTS = table(FTS, column("rowid"), column(FTS))
_PARTS = table(PARTS, column("rowid"), column(PARTS))


def part_token(part: str) -> str:
    """A name part as patient_part_fts holds it: its UTF-8 in hexadecimal (the SQL
    hex() of the triggers), which no tokenizer rule splits or folds."""
    return part.encode().hex()


def span_glob(word: str) -> str:
    """A GLOB that a name matches whenever ``* <word> *`` matches it only with the
    word's '*' running over a space; "*" (every name) unless the word has one '*' inside.
    A name it does not match meets the word's rule exactly when the word's GLOB matches:
    '?' never matches a space, and a '*' at either end can always stop at the part's end."""
    core = word.strip("*")
    if core.count("*") != 1:
        return "*"
    head, tail = word[:len(word) - len(word.lstrip("*"))], word[len(word.rstrip("*")):]
    before, after = core.split("*")
    return f"* {glob_escape(head + before)}* *{glob_escape(after + tail)} *"


def fts_ids(match: ColumnElement[str]) -> ColumnElement[bool]:
    """Patients whose name the FTS5 query ``match`` finds."""
    ids = select(_FTS.c.rowid.op("&")(ID_MASK)).where(_FTS.c.patient_rank_fts.op("MATCH")(match))
    return Patient.id.in_(ids)


class SqliteBackend(Backend):
    dialect = "sqlite"

    @contextmanager
    def bounded(self, conn: Connection, deadline: Deadline) -> Iterator[None]:
        raw = conn.connection.driver_connection
        raw.create_function(WILDCARD_FUNCTION, 2, any_part_matches, deterministic=True)
        raw.create_function(DICOM_FUNCTION, 2, folded_match, deterministic=True)
        # A progress handler that answers true interrupts the statement running.
        raw.set_progress_handler(deadline.passed, PROGRESS_STEPS)
        try:
            yield
        except (OperationalError, sqlite3.OperationalError) as exc:
            # sqlite3's own error: a statement run on the driver's connection directly.
            orig = getattr(exc, "orig", exc)
            if isinstance(orig, sqlite3.OperationalError) and deadline.passed():
                raise deadline.error() from None
            raise
        finally:
            raw.set_progress_handler(None, 0)

    def wildcard_part(self, value: ColumnElement[str]) -> ColumnElement[bool]:
        return getattr(func, WILDCARD_FUNCTION)(Patient.name_key, value, type_=Boolean)

    def wildcard_value(self, word: str) -> str:
        return word

    def id_prefix(self, name: str) -> ColumnElement[bool]:
        # A range on the B-tree: every string that starts with the value.
        return and_(Patient.patient_id >= bindparam(f"{name}_lo"),
                    Patient.patient_id < bindparam(f"{name}_hi"))

    def id_prefix_params(self, name: str, value: str) -> dict[str, str]:
        return {f"{name}_lo": value, f"{name}_hi": value + "\U0010ffff"}

    def prefix(self, expr: ColumnElement[str], value: str) -> ColumnElement[bool]:
        # A range on the B-tree: every string that starts with value.
        return and_(expr >= value, expr < value + "\U0010ffff")

    def dicom_wildcard(self, expr: ColumnElement[str], pattern: str, fold_case: bool
                       ) -> ColumnElement[bool]:
        if fold_case:  # SQLite's own upper() and NOCASE know ASCII only
            return getattr(func, DICOM_FUNCTION)(expr, literal(pattern), type_=Boolean)
        return expr.op("GLOB")(glob_escape(pattern))

    def name_conditions(self, terms: list[NameTerm]) -> list[ColumnElement[bool]]:
        indexed = bool(name_match(terms))
        conds = [fts_ids(bindparam("fts", type_=String))] if indexed else []
        conds += [self.inner_wildcard(f"t{i}", t) for i, t in enumerate(terms)
                  if t.inner_wildcard]
        # Where the FTS5 phrases are the rule, a check per row would only repeat them.
        return conds + [t.condition(self, f"t{i}") for i, t in enumerate(terms)
                        if not t.inner_wildcard and not (indexed and t.fts_exact())]

    def inner_wildcard(self, name: str, term: NameTerm) -> ColumnElement[bool]:
        """The rule of a word with a wildcard inside (values bound as ``{name}_*``)."""
        # With '?' inside, a GLOB (in C) is the rule itself. With a '*' inside, the GLOB
        # is a superset (its * may span parts): only where it could have (the ``span``
        # GLOB) does the wildcard function, in Python, decide.
        glob = Patient.name_key.op("GLOB", is_comparison=True)
        rule = glob(bindparam(f"{name}_glob"))
        if not term.inner_star:
            return rule
        return and_(rule, or_(~glob(bindparam(f"{name}_span")), term.condition(self, name)))

    def name_params(self, terms: list[NameTerm]) -> dict[str, str]:
        params = {"fts": name_match(terms)}
        for i, t in enumerate(terms):
            if t.inner_wildcard:
                params |= {f"t{i}_glob": f"* {glob_escape(t.word)} *",
                           f"t{i}_span": span_glob(t.word)}
        return params

    def holding(self, groups: int) -> list[ColumnElement[bool]]:
        # A part whole: a token of patient_part_fts (migration 0011), whose doclist is
        # its holders (the phrase ' part ' would read the doclists of its common
        # trigrams). They drive; the word inside a part is checked on the rows they give.
        def holders(name: str) -> ColumnElement[bool]:
            return Patient.id.in_(select(_PARTS.c.rowid).where(
                _PARTS.c[PARTS].op("MATCH")(bindparam(name, type_=String))))
        return [holders("hold"), *(or_(Patient.name_key.like(bindparam(f"hold{i}_word"),
                                                             escape="\\"),
                                       holders(f"hold{i}_parts")) for i in range(groups))]

    def holding_params(self, groups: list[tuple[str, list[str]]]) -> dict[str, object]:
        def tokens(parts: list[str]) -> str:
            return " OR ".join(map(part_token, parts)) or "x"  # 'x': no hex token, no one
        params: dict[str, object] = {"hold": tokens([p for _, ps in groups for p in ps])}
        for i, (word, parts) in enumerate(groups):
            params |= {f"hold{i}_word": f"%{escape_like(word)}%",
                       f"hold{i}_parts": tokens(parts)}
        return params

    def native_people(self, conn: Connection, plan: Plan, first: int
                      ) -> tuple[list[Candidate], list[Candidate], int] | None:
        if sqlite_rank.ranks_by_index(plan):
            return sqlite_rank.people(conn, plan, first)
        if sqlite_studies.walks_studies(plan):
            return sqlite_studies.people(conn, plan, first)
        return None
