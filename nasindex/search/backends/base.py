"""What differs between the databases the index may live on: one object per backend.

Search builds the same rules on both; a backend says how its database finds them fast
(which index serves a name fragment, a Patient ID prefix) and how it orders strings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from nasindex.search.limits import Deadline
from nasindex.search.terms import NameTerm


@dataclass(frozen=True)
class NameIndex:
    """A name search the database's substring index counts by itself (SQLite FTS5):
    ``count`` and ``best_class`` without reading a patient row. ``exact``: its matches
    are exactly the candidates (the name is the whole filter and the index's match is
    the rule); ``several``: more than one phrase."""

    exact: bool
    several: bool

    def count(self, conn: Connection) -> int:
        raise NotImplementedError

    def best_class(self, conn: Connection, flagged_keys: list[str], first: int
                   ) -> ColumnElement[bool] | None:
        """The condition of the best score class holding ``first`` lone records, or None
        for every match (see the SQLite backend)."""
        raise NotImplementedError


class Backend:
    """The database-specific parts of search. Subclasses: one per SQLAlchemy dialect."""

    dialect: str

    def id_prefix(self, value: str) -> ColumnElement[bool]:
        """Patient ID starts with ``value`` (equal included), served by an index."""
        raise NotImplementedError

    @contextmanager
    def bounded(self, conn: Connection, deadline: Deadline) -> Iterator[None]:
        """Run the statements inside within ``deadline``: the database stops one that
        runs past it, raising the deadline's SearchTimeout (nothing else is held up)."""
        raise NotImplementedError
        yield

    def wildcard_part(self, word: str) -> ColumnElement[bool]:
        """Some part of ``patient.name_key`` matches ``word`` (with ``*`` or ``?`` inside)
        as a whole, in time linear in the name (never a backtracking matcher)."""
        raise NotImplementedError

    def name_conditions(self, terms: list[NameTerm]) -> list[ColumnElement[bool]]:
        """Every term's exact rule, plus what lets the substring index narrow first."""
        raise NotImplementedError

    def name_index(self, terms: list[NameTerm], name_only: bool) -> NameIndex | None:
        """The count-in-the-index view of a name search, where the database has one."""
        return None

    def any_trigram(self, groups: list[list[str]]) -> list[ColumnElement[bool]]:
        """Names holding one trigram of each group (the similar-names pass narrows by it)."""
        raise NotImplementedError

    def bytes_order(self, expr: ColumnElement) -> ColumnElement:
        """``expr`` ordered by code point, as Python compares strings."""
        return expr
