"""PostgreSQL: names through the GIN pg_trgm index, Patient ID prefixes through the
``text_pattern_ops`` index (migration 0002)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Text, any_, bindparam, func, literal_column, or_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ColumnElement, CompoundSelect, Select

from nasindex.index.db import SEARCH_TIMEOUT
from nasindex.index.models import Patient
from nasindex.search.backends.base import Backend
from nasindex.search.limits import Deadline
from nasindex.search.terms import NameTerm, escape_like, wildcard_regex

QUERY_CANCELED = "57014"  # SQLSTATE of a statement stopped by statement_timeout
# A name's parts as an array: the expression of the GIN index ix_patient_name_parts,
# spelled as in migration 0010 (literals, not parameters, or the index would not match).
_SPACE = literal_column("' '")
NAME_PARTS = func.string_to_array(func.btrim(Patient.name_key, _SPACE), _SPACE)


def _contains(value) -> ColumnElement[bool]:
    return Patient.name_key.like(value, escape="\\")


def _runs(terms: list[NameTerm]) -> list[tuple[str, str]]:
    """(parameter, LIKE pattern) of each literal run of each term whose rule is a
    regular expression (a wildcard inside the word)."""
    return [(f"t{i}_run{j}", f"%{escape_like(run)}%") for i, t in enumerate(terms)
            if t.inner_wildcard for j, run in enumerate(t.fts_phrases())]


class PostgresBackend(Backend):
    dialect = "postgresql"

    @contextmanager
    def bounded(self, conn: Connection, deadline: Deadline) -> Iterator[None]:
        # No transaction: a search only reads, and each of its statements takes a
        # snapshot of its own anyway (READ COMMITTED; on SQLite likewise). That spares
        # the BEGIN and ROLLBACK round trips, and psycopg keeps the statements it has
        # prepared (a ROLLBACK drops them).
        conn.execution_options(isolation_level="AUTOCOMMIT")
        # The session keeps its timeout between searches: set only when it is off the
        # time left by more than 5% (another time limit).
        ms = max(1, int(deadline.left() * 1000))
        info = conn.connection.info
        kept = info.get(SEARCH_TIMEOUT)
        if kept is None or abs(kept - ms) > ms // 20:
            info.pop(SEARCH_TIMEOUT, None)
            conn.exec_driver_sql(f"SET statement_timeout = {ms}")
            info[SEARCH_TIMEOUT] = ms
        try:
            yield
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == QUERY_CANCELED:
                raise deadline.error() from None
            raise

    def one_of(self, column: ColumnElement, keys: Select | CompoundSelect
               ) -> ColumnElement[bool]:
        # As an array, the keys are looked up one by one whatever the planner expects
        # them to number: IN (subquery) with a Patient ID prefix estimated at 1,000
        # matches for 100 had it hash-join the whole patient table (50 ms, one ID
        # prefix search in seven at 100,000 patients).
        return column == any_(func.array(keys.scalar_subquery()))

    def wildcard_part(self, value: ColumnElement[str]) -> ColumnElement[bool]:
        # PostgreSQL's regular expressions run as automata, without backtracking.
        return Patient.name_key.regexp_match(value)

    def wildcard_value(self, word: str) -> str:
        return f" {wildcard_regex(word)} "

    def id_prefix(self, name: str) -> ColumnElement[bool]:
        # Served by the text_pattern_ops index.
        return Patient.patient_id.like(bindparam(f"{name}_like"), escape="\\")

    def id_prefix_params(self, name: str, value: str) -> dict[str, str]:
        return {f"{name}_like": f"{escape_like(value)}%"}

    def prefix(self, expr: ColumnElement[str], value: str) -> ColumnElement[bool]:
        return expr.like(f"{escape_like(value)}%", escape="\\")

    def dicom_wildcard(self, expr: ColumnElement[str], pattern: str, fold_case: bool
                       ) -> ColumnElement[bool]:
        like = escape_like(pattern).replace("*", "%").replace("?", "_")
        return expr.ilike(like, escape="\\") if fold_case else expr.like(like, escape="\\")

    def name_conditions(self, terms: list[NameTerm]) -> list[ColumnElement[bool]]:
        # A LIKE on the literal runs of a wildcard inside a word lets the planner pick
        # the trigram index, which it does not for the regular expression alone. (A
        # wildcard at the ends is a LIKE already: the same LIKE twice made the planner
        # square its estimate, 160 rows for 6,000, and sort them all for a page.)
        return [t.condition(self, f"t{i}") for i, t in enumerate(terms)] + [
            _contains(bindparam(name)) for name, _ in _runs(terms)]

    def name_params(self, terms: list[NameTerm]) -> dict[str, str]:
        return dict(_runs(terms))

    def holding(self, groups: int) -> list[ColumnElement[bool]]:
        # Parts whole through ix_patient_name_parts (migration 0010): one small posting
        # list per part, where a LIKE ' part ' would read those of its trigrams.
        def holders(name: str) -> ColumnElement[bool]:
            return NAME_PARTS.op("&&")(bindparam(name, type_=ARRAY(Text)))
        return [holders("hold"), *(or_(_contains(bindparam(f"hold{i}_word")),
                                       holders(f"hold{i}_parts")) for i in range(groups))]

    def holding_params(self, groups: list[tuple[str, list[str]]]) -> dict[str, object]:
        params: dict[str, object] = {"hold": [p for _, ps in groups for p in ps]}
        for i, (word, parts) in enumerate(groups):
            params |= {f"hold{i}_word": f"%{escape_like(word)}%", f"hold{i}_parts": parts}
        return params

    def bytes_order(self, expr: ColumnElement) -> ColumnElement:
        # Its default collation orders by language rules; "C" compares code points.
        return expr.collate("C")
