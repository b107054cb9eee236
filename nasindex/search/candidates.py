"""Candidate SQL: the patient records a query matches, how many people they are, and the
best page of them, without ranking thousands to show a page.

A record without ``may_link`` (kept by migration 0003's triggers) is a person on its
own; flagged records may belong together and are grouped in Python (people.py). One
statement takes a bounded set of matches (at most COUNT_LIMIT + 1 records; with study
filters, every patient they leave), ranks it in SQL and hands over only the flagged
records, the best page of lone ones and the counts. When a name or an ID matches more,
the flagged records are read whole and the lone ones are counted (up to COUNT_LIMIT)
and ranked class by class, latest study first: the database may walk ix_patient_latest
and stop after a page. A backend may do both in its own index (SQLite: the rank-ordered
FTS5 table).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Integer, and_, bindparam, func, or_, select
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql import ColumnElement, Select

from nasindex.index.models import Nas, Patient, Study
from nasindex.search.limits import COUNT_LIMIT, FLAGGED_LIMIT
from nasindex.search.people import KEYS, SHOWN, Candidate, Found, group, rank
from nasindex.search.plan import Plan


def candidate_select(plan: Plan, *extra_where: ColumnElement[bool],
                     lone: bool | None = None) -> Select:
    """The plan's matching records, one row each, in the columns Candidate.from_row
    reads."""
    where = [*plan.patient_conditions(), *extra_where]
    if lone is not None:
        # Bare ``may_link`` (SQLite: "= 1") is the WHERE of ix_patient_flagged: a probe in
        # that small index, not a read of the row, tells whether a record is flagged.
        where.append(~Patient.may_link if lone else Patient.may_link)
    score = plan.score().label("score")
    base = select(*KEYS).join(Nas, Nas.id == Patient.nas_id)
    if plan.by_study and plan.by_patient:  # few patients: their studies, latest among them
        latest = func.max(Study.study_date).label("latest")
        return (base.join(Study, and_(Study.patient_pk == Patient.id,
                                      *plan.study_conditions()))
                .add_columns(latest, score, *SHOWN).where(*where).group_by(*KEYS, *SHOWN))
    if plan.by_study:  # driven by the studies: grouped by patient before a row is read
        studies = (select(Study.patient_pk, func.max(Study.study_date).label("latest"))
                   .where(*plan.study_conditions()).group_by(Study.patient_pk).subquery())
        return (base.join(studies, studies.c.patient_pk == Patient.id)
                .add_columns(studies.c.latest, score, *SHOWN).where(*where))
    # The patient's latest study is kept in its row (migration 0003): no seek per record.
    return base.add_columns(Patient.latest_study.label("latest"), score, *SHOWN).where(*where)


def _rank_order(plan: Plan, score, latest, nas, patient_id, by_score: bool = True) -> list:
    """Score, latest study (missing last), then NAS and Patient ID by code point, so that
    the order is total and the same on both databases."""
    db = plan.db
    # A bare latest_study lets the database walk ix_patient_latest (it holds only
    # YYYYMMDD dates, which sort alike in every collation); a study filter's latest is
    # computed per query and may be any string.
    latest_desc = (latest.desc().nulls_last() if not plan.by_study
                   else db.bytes_order(func.coalesce(latest, "")).desc())
    order = [latest_desc, db.bytes_order(nas), db.bytes_order(patient_id)]
    return [score.desc(), *order] if by_score else order


def _windowed(plan: Plan) -> Select:
    """A bounded set of matches ranked in SQL: every flagged record, the best ``first``
    lone ones in rank order, how many lone ones and how many in all."""
    inner = candidate_select(plan)
    sub = (inner if plan.by_study else inner.limit(COUNT_LIMIT + 1)).subquery()
    c = sub.c
    order = _rank_order(plan, c.score, c.latest, c.name, c.patient_id)
    ranked = select(sub, func.count().filter(~c.may_link).over().label("n_lone"),
                    func.count().over().label("n_all"),
                    func.row_number().over(partition_by=c.may_link, order_by=order)
                    .label("rn")).subquery()
    page = ranked.c.rn <= bindparam("first", type_=Integer)
    return (select(ranked).where(or_(ranked.c.may_link, page))
            .order_by(ranked.c.may_link, ranked.c.rn))


def _flagged(plan: Plan) -> Select:
    return candidate_select(plan, lone=False).limit(FLAGGED_LIMIT + 1)


def _lone_count(plan: Plan) -> Select:
    inner = (candidate_select(plan, lone=True).with_only_columns(Patient.id)
             .limit(COUNT_LIMIT + 1))
    return select(func.count()).select_from(inner.subquery())


def _lone_top(plan: Plan) -> Select:
    stmt = candidate_select(plan, lone=True)
    c = stmt.selected_columns
    return stmt.order_by(*_rank_order(plan, c.score, Patient.latest_study, Nas.name,
                                      Patient.patient_id)).limit(bindparam("first", type_=Integer))


def _lone_class(score: int, bounded: bool) -> Callable[[Plan], Select]:
    """The best lone records of one score class, latest first. ``bounded``: ranked from
    at most COUNT_LIMIT + 1 of them (their number in ``n_all``); else from all, which
    the database walks in ix_patient_latest, stopping after a page (the class is known
    to be large: a sparse one would be walked from end to end)."""
    def build(plan: Plan) -> Select:
        stmt = candidate_select(plan, plan.class_condition(score), lone=True)
        if not bounded:
            return stmt.order_by(*_rank_order(
                plan, None, Patient.latest_study, Nas.name, Patient.patient_id,
                by_score=False)).limit(bindparam("first", type_=Integer))
        sub = stmt.limit(COUNT_LIMIT + 1).subquery()
        order = _rank_order(plan, None, sub.c.latest, sub.c.name, sub.c.patient_id,
                            by_score=False)
        return (select(sub, func.count().over().label("n_all")).order_by(*order)
                .limit(bindparam("first", type_=Integer)))
    return build


def read(conn: Connection, plan: Plan, purpose: str, build: Callable[[Plan], Select],
         **extra: object) -> list[Row]:
    return conn.execute(plan.statement(purpose, build), plan.params | extra).all()


def exact_people(conn: Connection, plan: Plan, first: int
                 ) -> tuple[list[list[Candidate]], int, bool]:
    """The best ``first`` people (at least), ranked; how many people match (counted up
    to COUNT_LIMIT); and whether that count is exact."""
    top, flagged, n_lone = (plan.db.native_people(conn, plan, first)
                            or _found(conn, plan, first))
    if len(flagged) > FLAGGED_LIMIT:  # a crowd of linked records: read every match
        people = group([Candidate.from_row(r) for r in conn.execute(
            plan.statement("all", candidate_select), plan.params)])
        n = len(people)
    else:
        people = [[t] for t in top] + group(flagged)
        n = n_lone + len(people) - len(top)
    return rank(people, similar=False), min(n, COUNT_LIMIT), n <= COUNT_LIMIT


def _found(conn: Connection, plan: Plan, first: int) -> Found:
    rows = read(conn, plan, "windowed", _windowed, first=first)
    n_all = rows[0].n_all if rows else 0
    if plan.by_study or n_all <= COUNT_LIMIT:
        cands = [Candidate.from_row(r) for r in rows]
        return ([c for c in cands if not c.may_link], [c for c in cands if c.may_link],
                rows[0].n_lone if rows else 0)
    # Many: the flagged records whole, the lone ones counted and ranked by the database.
    flagged = [Candidate.from_row(r) for r in read(conn, plan, "flagged", _flagged)]
    if len(flagged) > FLAGGED_LIMIT:
        return [], flagged, 0
    # Over COUNT_LIMIT lone ones among the first matches already: no need to count.
    count = (rows[0].n_lone if rows[0].n_lone > COUNT_LIMIT
             else conn.scalar(plan.statement("lone_count", _lone_count), plan.params))
    if count <= COUNT_LIMIT:  # ranked whole, a sort of at most COUNT_LIMIT rows
        rows = read(conn, plan, "lone_top", _lone_top, first=first)
        return [Candidate.from_row(r) for r in rows], flagged, count
    top: list[Candidate] = []
    classes = plan.score_classes()
    seen = 0  # lone matches in the classes read before
    for score in classes:
        need = first - len(top)
        # The last class holds every lone match the others did not: when that is more
        # than COUNT_LIMIT (a lone class; every other one empty), walk it at once.
        rows = (None if score == classes[-1] and count - seen > COUNT_LIMIT else
                read(conn, plan, f"class{score}", _lone_class(score, True), first=need))
        if rows is None or (rows and rows[0].n_all > COUNT_LIMIT):
            rows = read(conn, plan, f"walk{score}", _lone_class(score, False), first=need)
        elif rows:
            seen += rows[0].n_all
        top += [Candidate.from_row(r) for r in rows]
        if len(top) >= first:
            break
    return top, flagged, count
