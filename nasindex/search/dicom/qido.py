"""Find studies, series or instances by DICOM attributes (the matching of QIDO-RS).

One result per UID, whatever the number of NAS devices holding a copy: the rows of
every copy inside the caller's ``scope`` are read in a fixed order (newest study first,
then UID, then NAS id in code-point order) and the first copy that matches stands for
the UID; counts and modalities are those of every copy in the scope. Only what is
present is found: a study, series or instance whose files are all tombstoned is not.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, exists, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import ColumnElement

from nasindex.errors import QueryError
from nasindex.index.db import for_search
from nasindex.index.models import Instance, Nas, Patient, Series, Study
from nasindex.search.backends import Backend, backend
from nasindex.search.dicom import details
from nasindex.search.dicom.attributes import (
    LEVELS,
    Attribute,
    Level,
    levels_up_to,
    lookup,
    returned,
)
from nasindex.search.dicom.matching import MAX_LIST, condition
from nasindex.search.limits import TIME_LIMIT, Deadline
from nasindex.search.plan import Plan, bound
from nasindex.search.query import SearchQuery
from nasindex.search.scope import Scope, nas_id_in, visible_nas
from nasindex.search.similar import similar
from nasindex.search.terms import parse_terms

MAX_RESULTS = 1000  # per request (and the default): more are paged with offset
MAX_OFFSET = 1_000_000


@dataclass
class DicomQuery:
    """One QIDO-RS request. ``keys`` are the query keys as sent (keyword or tag: value);
    ``study_uid``/``series_uid`` come from the path (``/studies/{uid}/series``)."""

    level: Level
    keys: dict[str, str] = field(default_factory=dict)
    study_uid: str | None = None
    series_uid: str | None = None
    includefield: list[str] = field(default_factory=list)
    fuzzy: bool = False
    limit: int = MAX_RESULTS
    offset: int = 0


@dataclass
class DicomResult:
    rows: list[dict[str, Any]]  # keyword -> value (PN as stored, lists, numbers)
    attributes: list[Attribute]  # what each row may hold, in tag order
    more: bool  # further results exist past this page (or past MAX_RESULTS)
    ignored: list[str] = field(default_factory=list)  # keys the index does not hold


def find(engine: Engine, q: DicomQuery, *, scope: Scope, time_limit: float = TIME_LIMIT
         ) -> DicomResult:
    """The page of results of ``q`` on the NAS devices of ``scope`` (None: all).
    QueryError for a key or value that cannot be matched (the message names it)."""
    keys, wanted, ignored = _parse(q)
    visible = visible_nas(scope)
    attrs = [a for a in returned(q.level, levels_up_to(q.level))
             if a.default or a.keyword in wanted]
    attrs.sort(key=lambda a: a.tag)
    if visible is not None and not visible:
        return DicomResult([], attrs, False, ignored)
    deadline = Deadline.after(time_limit)
    with for_search(engine).connect() as conn:
        db = backend(conn)
        with db.bounded(conn, deadline):
            conds = _conditions(conn, db, q, keys, visible, deadline)
            picked, more = _page(conn.execute(_stmt(db, q.level, conds, scope)), q, deadline)
            rows = details.load(conn, q.level, picked, scope)
    return DicomResult(rows, attrs, more, ignored)


def _parse(q: DicomQuery) -> tuple[dict[Attribute, str], set[str], list[str]]:
    if not 1 <= q.limit <= MAX_RESULTS:
        raise QueryError(f"limit must be between 1 and {MAX_RESULTS}.")
    if not 0 <= q.offset <= MAX_OFFSET:
        raise QueryError(f"offset must be between 0 and {MAX_OFFSET:,}.")
    allowed = levels_up_to(q.level)
    keys: dict[Attribute, str] = {}
    ignored: list[str] = []
    for key, value in q.keys.items():
        attr = lookup(key)
        if attr is None or attr.level not in allowed or attr.matching == "none":
            ignored.append(key)
        else:
            keys[attr] = value
    for level, uid in (("StudyInstanceUID", q.study_uid), ("SeriesInstanceUID", q.series_uid)):
        if uid is not None:
            keys[lookup(level)] = uid  # type: ignore[index]
    wanted: set[str] = set()
    for item in (f.strip() for entry in q.includefield for f in entry.split(",")):
        if item.lower() == "all":
            wanted.update(a.keyword for a in returned(q.level, allowed))
        elif item and (attr := lookup(item)) is not None:
            wanted.add(attr.keyword)
        elif item:
            ignored.append(item)
    if len(ignored) > MAX_LIST:
        raise QueryError(f"Too many query keys and fields; at most {MAX_LIST}.")
    return keys, wanted, ignored


def _conditions(conn: Connection, db: Backend, q: DicomQuery, keys: dict[Attribute, str],
                visible: Scope, deadline: Deadline) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    for attr, value in keys.items():
        if attr.matching == "pn" and q.fuzzy and value.strip(" *"):
            conds.append(_fuzzy_name(conn, db, value, visible, deadline))
        else:
            conds += condition(db, attr, value)
    return conds


def _fuzzy_name(conn: Connection, db: Backend, value: str, visible: Scope,
                deadline: Deadline) -> ColumnElement[bool]:
    """The project's own name rules (any order, case and accents ignored, ``*``/``?``
    within a name part); the typo-tolerant pass when nobody matches them exactly."""
    terms = parse_terms(value)
    if not terms:
        return Patient.id.is_not(None)
    nas = sorted(visible) if visible is not None else []
    plan = Plan(db, SearchQuery(nas=nas), terms, None)
    exact = bound(plan, db.name_conditions(terms))
    if conn.execute(select(Patient.id).where(*exact, *nas_id_in(visible, Patient.nas_id))
                    .limit(1)).first():
        return and_(*exact)
    near = similar(conn, plan, deadline)
    return Patient.id.in_([c.pk for c in near])


def _stmt(db: Backend, level: Level, conds: list[ColumnElement[bool]], scope: Scope) -> Select:
    """(pk, uid) of every copy matching ``conds``, in result order."""
    present = Instance.missing_since.is_(None)
    order: list[Any] = [Study.study_date.desc().nulls_last(), Study.study_uid]
    if level == "study":
        cols = (Study.id, Study.study_uid)
        has_file = exists().where(Series.study_pk == Study.id, Instance.series_pk == Series.id,
                                  present)
        stmt = select(*cols).join(Patient, Patient.id == Study.patient_pk).where(has_file)
        owner = Study.nas_id
    elif level == "series":
        cols = (Series.id, Series.series_uid)
        order += [Series.series_number.nulls_last(), Series.series_uid]
        has_file = exists().where(Instance.series_pk == Series.id, present)
        stmt = (select(*cols).join(Study, Study.id == Series.study_pk)
                .join(Patient, Patient.id == Study.patient_pk).where(has_file))
        owner = Series.nas_id
    else:
        cols = (Instance.id, Instance.sop_instance_uid)
        order += [Series.series_number.nulls_last(), Series.series_uid,
                  Instance.instance_number.nulls_last(), Instance.sop_instance_uid,
                  Instance.item_key]
        stmt = (select(*cols).join(Series, Series.id == Instance.series_pk)
                .join(Study, Study.id == Series.study_pk)
                .join(Patient, Patient.id == Study.patient_pk).where(present))
        owner = Instance.nas_id
    stmt = stmt.join(Nas, Nas.id == owner).where(*conds, *nas_id_in(scope, owner))
    return stmt.order_by(*order, db.bytes_order(Nas.name))


def _page(rows: Iterable[Any], q: DicomQuery, deadline: Deadline
          ) -> tuple[list[int], bool]:
    """The pks standing for the page's UIDs (the first copy of each), and whether more
    UIDs follow. Copies of one UID arrive together unless their dates differ: a UID
    already counted is skipped wherever it comes again."""
    seen: set[str] = set()
    picked: list[int] = []
    for pk, uid in _rows(rows, deadline):
        if uid in seen:
            continue
        seen.add(uid)
        if len(seen) > q.offset + q.limit:
            return picked, True
        if len(seen) > q.offset:
            picked.append(pk)
    return picked, False


def _rows(rows: Iterable[Any], deadline: Deadline) -> Iterator[tuple[int, str]]:
    for n, row in enumerate(rows):
        if n % 512 == 0:
            deadline.check()
        yield row[0], row[1]


__all__ = ["LEVELS", "MAX_RESULTS", "DicomQuery", "DicomResult", "find"]
