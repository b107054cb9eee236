"""PostgreSQL: names through the GIN pg_trgm index, Patient ID prefixes through the
``text_pattern_ops`` index (migration 0002)."""

from __future__ import annotations

from sqlalchemy import or_
from sqlalchemy.sql import ColumnElement

from nasindex.index.models import Patient
from nasindex.search.backends.base import Backend
from nasindex.search.terms import NameTerm, escape_like


def _contains(s: str) -> ColumnElement[bool]:
    return Patient.name_key.like(f"%{escape_like(s)}%", escape="\\")


class PostgresBackend(Backend):
    dialect = "postgresql"

    def id_prefix(self, value: str) -> ColumnElement[bool]:
        return Patient.patient_id.like(f"{escape_like(value)}%", escape="\\")

    def name_conditions(self, terms: list[NameTerm]) -> list[ColumnElement[bool]]:
        # A LIKE on the literal runs of a wildcard lets the planner pick the trigram
        # index, which it does not for the regular expression alone.
        return [t.condition() for t in terms] + [
            _contains(p) for t in terms if t.kind == "wildcard" for p in t.fts_phrases()]

    def any_trigram(self, groups: list[list[str]]) -> list[ColumnElement[bool]]:
        return [or_(*(_contains(t) for t in g)) for g in groups]

    def bytes_order(self, expr: ColumnElement) -> ColumnElement:
        # Its default collation orders by language rules; "C" compares code points.
        return expr.collate("C")
