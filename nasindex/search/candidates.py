"""Candidate SQL: the patient records a query matches, scored and, where there are many,
ranked and paged by the database.

The SQL narrows candidates with an index (the backend's) and applies the exact rule and
the scores, so both databases return the same rows. The database ranks and pages the
records that stand alone (most of them); records that may belong with one on another NAS
(``may_link``, kept by migration 0003's triggers) are grouped in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, case, func, literal, or_, select, union
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement, Select

from nasindex.index.models import Nas, Patient, Study
from nasindex.search.backends import Backend, NameIndex
from nasindex.search.people import Candidate, group, rank
from nasindex.search.query import SearchQuery, normalize_date
from nasindex.search.terms import NameTerm, escape_like

SMALL = 300  # candidates fetched whole and ranked in Python, as one query


def spellings(value: str) -> list[str]:
    value = value.strip()
    return list(dict.fromkeys([value, value.upper()]))


def _id_prefix(db: Backend, value: str) -> ColumnElement[bool]:
    """Patient ID starts with one of the spellings of ``value`` (exact included)."""
    return or_(*(db.id_prefix(v) for v in spellings(value)))


def id_condition(db: Backend, value: str, with_accession: bool) -> ColumnElement[bool]:
    if not with_accession:
        return _id_prefix(db, value)
    # A union, not an OR: each branch keeps its own index on both databases.
    return Patient.id.in_(union(
        select(Patient.id).where(_id_prefix(db, value)),
        select(Study.patient_pk).where(Study.accession_number.in_(spellings(value)))))


def _id_score(db: Backend, value: str) -> ColumnElement[int]:
    """100 for the exact Patient ID, 60 for a prefix (an accession match scores 0)."""
    return case((Patient.patient_id.in_(spellings(value)), 100),
                (_id_prefix(db, value), 60), else_=0)


def score_expr(db: Backend, q: SearchQuery, terms: list[NameTerm], ident: str | None
               ) -> ColumnElement[int]:
    parts = [t.score_expr() for t in terms]
    parts += [_id_score(db, v) for v in (ident, q.patient_id) if v]
    total: ColumnElement[int] = literal(0)
    for part in parts:
        total = total + part
    return total


def study_conditions(q: SearchQuery) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if q.modalities:
        # Study.modalities holds its series' modalities as "CT\\SR" (kept by the store):
        # matching it avoids a series lookup per study.
        mods = sorted({m.strip().upper() for m in q.modalities if m.strip()})
        padded = literal("\\") + Study.modalities + literal("\\")
        conds.append(or_(*(padded.like(f"%\\{escape_like(m, '!')}\\%", escape="!")
                           for m in mods)))
    if q.date_from:
        conds.append(Study.study_date >= normalize_date(q.date_from))
    if q.date_to:
        conds.append(Study.study_date <= normalize_date(q.date_to))
    if q.accession:
        conds.append(Study.accession_number.in_(spellings(q.accession)))
    return conds


def name_only(q: SearchQuery) -> bool:
    """The typed name is the whole filter."""
    return not (q.patient_id or q.birth_date or q.nas or study_conditions(q))


@dataclass(frozen=True)
class _Stmt:
    """A candidate query, the expressions that rank it, and a count of its lone records."""

    select: Select
    latest: ColumnElement[str | None]
    score: ColumnElement[int]
    count_alone: Select
    grouped: bool  # driven by studies: rows come only once all are read


def _candidate_stmt(db: Backend, q: SearchQuery, conds: list[ColumnElement[bool]],
                    score: ColumnElement[int] | None = None) -> _Stmt:
    """Patient records meeting ``conds`` and the query's other filters, with their score
    and the date of their latest study among those meeting the study filters."""
    study_conds = study_conditions(q)
    where = list(conds)
    if q.patient_id:
        where.append(id_condition(db, q.patient_id, with_accession=False))
    if q.birth_date:
        where.append(Patient.birth_date == normalize_date(q.birth_date))
    if q.nas:
        where.append(Nas.name.in_(q.nas))
    cols = (Patient.id, Nas.name, Patient.patient_id, Patient.name_key, Patient.birth_date)
    # Labelled: ORDER BY names it instead of computing it again.
    score = (literal(0) if score is None else score).label("score")
    alone = ~Patient.may_link
    if study_conds:  # driven by the studies that qualify
        joined = (select(*cols).join(Nas, Nas.id == Patient.nas_id)
                  .join(Study, and_(Study.patient_pk == Patient.id, *study_conds))
                  .where(*where))
        latest = func.max(Study.study_date)
        stmt = joined.add_columns(latest, score, Patient.may_link).group_by(
            *cols, Patient.may_link)
        count = joined.with_only_columns(func.count(Patient.id.distinct())).where(alone)
        return _Stmt(stmt, latest, score, count, True)
    # The patient's latest study is kept in its row (migration 0003): no seek per candidate.
    stmt = (select(*cols, Patient.latest_study, score, Patient.may_link)
            .join(Nas, Nas.id == Patient.nas_id).where(*where))
    count = stmt.with_only_columns(func.count()).where(alone)
    return _Stmt(stmt, Patient.latest_study, score, count, False)


def candidates(conn: Connection, db: Backend, q: SearchQuery,
               conds: list[ColumnElement[bool]]) -> list[Candidate]:
    """Every candidate (the typo-tolerant pass filters them in Python)."""
    stmt = _candidate_stmt(db, q, conds).select
    return [Candidate(*row[:7]) for row in conn.execute(stmt).all()]


def exact_people(conn: Connection, db: Backend, q: SearchQuery,
                 conds: list[ColumnElement[bool]], score: ColumnElement[int], first: int,
                 names: NameIndex | None = None) -> tuple[list[list[Candidate]], int]:
    """The best ``first`` people (at least), ranked, and the number of people matching.

    Few candidates (at most SMALL) are read in one query. Else a record without
    ``may_link``, a person on its own, is ranked by the database (in the order of
    :func:`rank`), which hands over the best ``first``, so a fragment matching
    thousands of patients sends a page, not thousands of rows; the flagged records come
    in full and are grouped in Python. The best ``first`` people are among those groups
    and the lone records read."""
    c = _candidate_stmt(db, q, conds, score)
    order = [c.score.desc(), db.bytes_order(func.coalesce(c.latest, "")).desc(),
             db.bytes_order(Nas.name), db.bytes_order(Patient.patient_id)]
    # One word may match thousands (count first, in the index); several words together
    # rarely do (try the one query first, and spare the index a second AND of them).
    bound = names.count(conn) if names is not None and not names.several else None
    # Unordered and ungrouped, the query stops after SMALL + 1 rows: cheap to try.
    if not c.grouped and (bound is None or bound <= SMALL):
        rows = conn.execute(c.select.limit(SMALL + 1)).all()
        if len(rows) <= SMALL:
            people = group([Candidate(*row[:7]) for row in rows])
            return rank(people, similar=False), len(people)
    if names is not None and bound is None:
        bound = names.count(conn)
    # Bare ``may_link`` (SQLite: "= 1") is the WHERE of ix_patient_flagged: a probe in
    # that small index, not a read of the row, tells whether a candidate is flagged.
    flagged = [Candidate(*row[:7]) for row in conn.execute(c.select.where(Patient.may_link))]
    n_alone = None
    if names is not None and names.exact:
        n_alone = bound - len(flagged)
        if n_alone > first:  # rank only the best score class that fills the page
            best = names.best_class(conn, [f.name_key for f in flagged], first)
            c = _candidate_stmt(db, q, [best], score)
    stmt = c.select.where(~Patient.may_link).order_by(*order).limit(first)
    # A name the index only narrows (an inner wildcard: a regex per row on SQLite) is
    # counted by the same scan that ranks it rather than by a second one.
    counted = names is not None and n_alone is None
    rows = conn.execute(stmt.add_columns(func.count().over()) if counted else stmt).all()
    top = [Candidate(*row[:7]) for row in rows]
    if counted:
        n_alone = rows[0][-1] if rows else 0
    elif n_alone is None:
        n_alone = len(top) if len(top) < first else conn.scalar(c.count_alone)
    linked = group(flagged)
    return rank([[t] for t in top] + linked, similar=False), n_alone + len(linked)
