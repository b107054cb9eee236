"""What differs between the databases the index may live on: one object per backend.

Search builds the same rules on both; a backend says how its database finds them fast
(which index serves a name fragment, a Patient ID prefix), how it orders strings, how a
statement is stopped at a deadline, and, where its index can, counts and ranks a name by
itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement, CompoundSelect, Select

from nasindex.search.limits import Deadline
from nasindex.search.terms import NameTerm

if TYPE_CHECKING:
    from nasindex.search.people import Candidate
    from nasindex.search.plan import Plan


class Backend:
    """The database-specific parts of search. Subclasses: one per SQLAlchemy dialect."""

    dialect: str

    def one_of(self, column: ColumnElement, keys: Select | CompoundSelect
               ) -> ColumnElement[bool]:
        """``column`` is one of ``keys`` (a subquery of a few rows), looked up in the
        index of ``column``."""
        return column.in_(keys)

    def prefix(self, expr: ColumnElement[str], value: str) -> ColumnElement[bool]:
        """``expr`` starts with ``value`` (equal included), served by its index."""
        raise NotImplementedError

    def dicom_wildcard(self, expr: ColumnElement[str], pattern: str, fold_case: bool
                       ) -> ColumnElement[bool]:
        """``expr`` matches a DICOM wildcard ``pattern`` as a whole (``*`` any run, ``?``
        one character, everything else literal; PS3.4 C.2.2.2.4), ignoring case if
        ``fold_case`` (Python's case folding on both sides where the database allows)."""
        raise NotImplementedError

    @contextmanager
    def bounded(self, conn: Connection, deadline: Deadline) -> Iterator[None]:
        """Run the statements inside within ``deadline``: the database stops one that
        runs past it, raising the deadline's SearchTimeout (nothing else is held up)."""
        raise NotImplementedError
        yield

    def wildcard_part(self, value: ColumnElement[str]) -> ColumnElement[bool]:
        """Some part of ``patient.name_key`` matches a word with ``*`` or ``?`` inside
        (bound as :meth:`wildcard_value`) as a whole, in time linear in the name (never a
        backtracking matcher)."""
        raise NotImplementedError

    def wildcard_value(self, word: str) -> str:
        raise NotImplementedError

    def id_prefix(self, name: str) -> ColumnElement[bool]:
        """Patient ID starts with the value bound by :meth:`id_prefix_params` (equal
        included), served by an index."""
        raise NotImplementedError

    def id_prefix_params(self, name: str, value: str) -> dict[str, str]:
        raise NotImplementedError

    def name_conditions(self, terms: list[NameTerm]) -> list[ColumnElement[bool]]:
        """Every term's exact rule, plus what lets the substring index narrow first
        (values bound by the terms' params and :meth:`name_params`)."""
        raise NotImplementedError

    def name_params(self, terms: list[NameTerm]) -> dict[str, str]:
        return {}

    def holding(self, groups: int) -> list[ColumnElement[bool]]:
        """The names the similar-names pass reads: those holding one of the parts of any
        of ``groups`` (a word and name parts, bound by :meth:`holding_params`) whole,
        and for each group the word inside a part or one of its parts whole."""
        raise NotImplementedError

    def holding_params(self, groups: list[tuple[str, list[str]]]) -> dict[str, object]:
        raise NotImplementedError

    def bytes_order(self, expr: ColumnElement) -> ColumnElement:
        """``expr`` ordered by code point, as Python compares strings."""
        return expr

    def native_people(self, conn: Connection, plan: Plan, first: int
                      ) -> tuple[list[Candidate], list[Candidate], int] | None:
        """When the database's own index can tell: the best ``first`` records that may
        not link (ranked), every record that may, and how many of the first kind there
        are (up to COUNT_LIMIT + 1). Else None."""
        return None
