"""A query compiled for one database: its conditions and score as SQL with bound
values, and its *shape*, the part that decides what the SQL looks like.

Building a SQLAlchemy statement costs more than running a small one, so statements are
built once per shape and backend (:meth:`Plan.statement`) and run with the values of
each search (:attr:`Plan.params`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy import bindparam, case, literal, or_, select, union
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.visitors import replacement_traverse

from nasindex.index.models import Nas, Patient, Study
from nasindex.search.backends import Backend
from nasindex.search.query import SearchQuery, normalize_date
from nasindex.search.terms import NameTerm, escape_like

STATEMENTS_KEPT = 512  # built statements kept, least recently used dropped first
_STATEMENTS: OrderedDict[tuple, Select] = OrderedDict()
_STATEMENTS_LOCK = threading.Lock()  # the dashboard searches from several threads


def spellings(value: str) -> list[str]:
    """How an identifier may be stored: as typed, or in upper case."""
    value = value.strip()
    return list(dict.fromkeys([value, value.upper()]))


@dataclass
class Plan:
    """``q`` (its NAS filter already narrowed to the caller's scope), its name terms or
    identifier, on ``db``."""

    db: Backend
    q: SearchQuery
    terms: list[NameTerm]
    ident: str | None
    params: dict[str, Any] = field(default_factory=dict)
    # The caller adds conditions that narrow the patients to a few (the similar-names
    # pass: names holding given parts): they drive the search, as terms would.
    narrowed: bool = False

    def __post_init__(self) -> None:
        q, p = self.q, self.params
        for i, t in enumerate(self.terms):
            p |= t.params(self.db, f"t{i}")
        p |= self.db.name_params(self.terms)
        for name, value in (("id", self.ident), ("pid", q.patient_id)):
            if value:
                p[f"{name}_exact"] = spellings(value)
                for j, v in enumerate(spellings(value)):
                    p |= self.db.id_prefix_params(f"{name}{j}", v)
        if self.ident:
            p["id_acc"] = spellings(self.ident)
        if q.birth_date:
            p["birth"] = normalize_date(q.birth_date, "birth date")
        if q.nas:
            p["nas"] = list(q.nas)
        for j, m in enumerate(self.modalities):
            p[f"mod{j}"] = f"%\\{escape_like(m, '!')}\\%"
        if q.date_from:
            p["date_from"] = normalize_date(q.date_from, "study date 'from'")
        if q.date_to:
            p["date_to"] = normalize_date(q.date_to, "study date 'to'")
        if q.accession:
            p["acc"] = spellings(q.accession)

    @cached_property
    def modalities(self) -> list[str]:
        return sorted({m.strip().upper() for m in self.q.modalities if m.strip()})

    @cached_property
    def shape(self) -> tuple:
        q = self.q
        ident = len(spellings(self.ident)) if self.ident else 0
        pid = len(spellings(q.patient_id)) if q.patient_id else 0
        return (self.db.dialect, self.narrowed, ident, pid, tuple(t.shape for t in self.terms),
                bool(q.birth_date), bool(q.nas), len(self.modalities), bool(q.date_from),
                bool(q.date_to), bool(q.accession))

    @property
    def by_study(self) -> bool:
        """Study filters: candidates are driven by the studies that qualify."""
        return bool(self.modalities or self.q.date_from or self.q.date_to or self.q.accession)

    @property
    def by_patient(self) -> bool:
        """Conditions an index of ``patient`` narrows to a few records (a name, an ID, a
        birth date): they drive the search, not the study filters."""
        return bool(self.narrowed or self.terms or self.ident or self.q.patient_id
                    or self.q.birth_date)

    def statement(self, purpose: str, build: Callable[[Plan], Select]) -> Select:
        """The statement ``build`` makes for this plan, built once per shape."""
        key = (purpose, self.shape)
        with _STATEMENTS_LOCK:
            stmt = _STATEMENTS.get(key)
            if stmt is not None:
                _STATEMENTS.move_to_end(key)
                return stmt
        stmt = build(self)
        with _STATEMENTS_LOCK:
            _STATEMENTS[key] = stmt
            if len(_STATEMENTS) > STATEMENTS_KEPT:  # odd shapes must not pile up
                _STATEMENTS.popitem(last=False)
        return stmt

    # -- SQL of the parts (bound values named as in __post_init__) ------------------------

    def patient_conditions(self) -> list[ColumnElement[bool]]:
        """Every condition on the patient row (its NAS joined as ``nas``)."""
        q, conds = self.q, []
        if self.ident:
            # A union, not an OR: each branch keeps its own index on both databases.
            conds.append(self.db.one_of(Patient.id, union(
                select(Patient.id).where(self._id_prefix("id")),
                select(Study.patient_pk).where(
                    Study.accession_number.in_(bindparam("id_acc", expanding=True))))))
        else:
            conds += self.db.name_conditions(self.terms)
        if q.patient_id:
            conds.append(self._id_prefix("pid"))
        if q.birth_date:
            conds.append(Patient.birth_date == bindparam("birth"))
        if q.nas:
            conds.append(Nas.name.in_(bindparam("nas", expanding=True)))
        return conds

    def study_conditions(self) -> list[ColumnElement[bool]]:
        """Conditions on one study, all of which one study must meet."""
        q, conds = self.q, []
        if self.modalities:
            # Study.modalities holds its series' modalities as "CT\\SR" (kept by the
            # store): matching it avoids a series lookup per study.
            padded = literal("\\") + Study.modalities + literal("\\")
            conds.append(or_(*(padded.like(bindparam(f"mod{j}"), escape="!")
                               for j in range(len(self.modalities)))))
        if q.date_from:
            conds.append(Study.study_date >= bindparam("date_from"))
        if q.date_to:
            conds.append(Study.study_date <= bindparam("date_to"))
        if q.accession:
            conds.append(Study.accession_number.in_(bindparam("acc", expanding=True)))
        return conds

    def score(self) -> ColumnElement[int]:
        """Relevance: per name term 1-3, 100 for the exact Patient ID, 60 for a prefix."""
        parts = [t.score_expr(f"t{i}") for i, t in enumerate(self.terms)]
        parts += [self._id_score(name) for name, v in (("id", self.ident),
                                                       ("pid", self.q.patient_id)) if v]
        total: ColumnElement[int] = literal(0)
        for part in parts:
            total = total + part
        return total

    def score_classes(self) -> list[int]:
        """Every score a match can have, best first (with one name term: 3, 2, 1)."""
        totals = {0}
        for options in [t.scores() for t in self.terms] + [
                (100, 60) for v in (self.ident, self.q.patient_id) if v]:
            totals = {s + o for s in totals for o in options}
        return sorted(totals, reverse=True)

    def class_condition(self, score: int) -> ColumnElement[bool]:
        """The matches of one score class (see :meth:`score_classes`)."""
        if len(self.terms) == 1 and not (self.ident or self.q.patient_id):
            return self.terms[0].class_condition("t0", score)
        return self.score() == score

    def _id_prefix(self, name: str) -> ColumnElement[bool]:
        n = len(spellings(self.ident if name == "id" else self.q.patient_id))
        return or_(*(self.db.id_prefix(f"{name}{j}") for j in range(n)))

    def _id_score(self, name: str) -> ColumnElement[int]:
        return case((Patient.patient_id.in_(bindparam(f"{name}_exact", expanding=True)), 100),
                    (self._id_prefix(name), 60), else_=0)


def bound(plan: Plan, conds: list[ColumnElement[bool]]) -> list[ColumnElement[bool]]:
    """``conds`` (built from ``plan``) with its values bound in: for callers that build a
    statement of their own once per request (DICOM matching), not once per shape."""
    def swap(element: Any) -> Any:
        if isinstance(element, BindParameter) and element.key in plan.params:
            return bindparam(element.key, plan.params[element.key], type_=element.type,
                             expanding=element.expanding)
        return None

    return [replacement_traverse(c, {}, swap) for c in conds]
