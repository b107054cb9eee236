"""SQLite: a search by study filters alone (modality, study dates, and maybe the NAS): the
patients they leave, read latest first from the study date index, stopping after a page.

Each patient is met once, at its latest study that meets the filters (no later one of
its own does). The first statement reads, in one go: the first lone patients met, how
many lone patients there are (up to COUNT_LIMIT + 1) and the patients that may link (up
to FLAGGED_LIMIT + 1, for the caller's grouping). The second reads the records of the
page and, when the page ends among patients of one day, the first of that day by NAS and
Patient ID (the order the index does not know). Grouping every matching study by patient
to rank them all cost more than the search itself (issue 10).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sqlalchemy import (
    Integer,
    and_,
    bindparam,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.sql.util import ClauseAdapter

from nasindex.index.models import Nas, Patient, Study
from nasindex.search.limits import COUNT_LIMIT, FLAGGED_LIMIT
from nasindex.search.people import KEYS, SHOWN, Candidate, Found, tied_day

if TYPE_CHECKING:
    from nasindex.search.plan import Plan

WALK, COUNT, FLAGGED = 0, 1, 2  # the kinds of row of the first statement


def walks_studies(plan: Plan) -> bool:
    """Study dates or modalities, and no filter on the patient but the NAS (an accession
    number finds its few studies by its own index)."""
    return plan.by_study and not plan.by_patient and not plan.q.accession


def people(conn: Connection, plan: Plan, first: int) -> Found:
    """The best ``first`` lone patients (at least; ranked by the caller), every patient
    that may link, and how many lone ones match."""
    walked: list[tuple[int, str | None]] = []
    count, flagged = 0, []
    for kind, pk, day in conn.execute(plan.statement("study_walk", _first),
                                      plan.params | {"n": first + 1}):
        if kind == WALK:
            walked.append((pk, day))
        elif kind == COUNT:
            count = pk
        else:
            flagged.append(pk)
    day = tied_day([_blank(d) for _, d in walked], first)
    if day is not None:  # those of that day come by NAS and Patient ID
        walked = [(pk, d) for pk, d in walked if _blank(d) > day]
    values = {"ids": json.dumps([pk for pk, _ in walked[:first]] + flagged)}
    if day is not None:
        values |= {"day": day, "tie_n": first - len(walked)}
    purpose = "study_rows" if day is None else f"study_rows_tie{'_blank' if not day else ''}"
    rows = conn.execute(plan.statement(purpose, lambda p: _rows(p, day)), plan.params | values)
    cands = [Candidate.from_row(r) for r in rows]
    return [c for c in cands if not c.may_link], [c for c in cands if c.may_link], count


def _blank(day: str | None) -> str:
    return day or ""  # how ranking compares a missing date


def _patient(plan: Plan, lone: bool) -> ColumnElement[bool]:
    """The study's patient is lone (or may link) and on the NAS filter's devices: a seek
    of its row."""
    where = [Patient.id == Study.patient_pk, ~Patient.may_link if lone else Patient.may_link]
    query = select(literal(1)).select_from(Patient).where(*where)
    if conds := plan.patient_conditions():  # the NAS filter
        query = query.join(Nas, Nas.id == Patient.nas_id).where(*conds)
    return exists(query.correlate(Study))


def _met(plan: Plan) -> list[ColumnElement[bool]]:
    """A study meets the filters and is its lone patient's latest that does."""
    later = Study.__table__.alias("later")
    theirs = [ClauseAdapter(later).traverse(c) for c in plan.study_conditions()]
    mine, their_day = func.coalesce(Study.study_date, ""), func.coalesce(later.c.study_date, "")
    newer = exists(select(literal(1)).where(
        later.c.patient_pk == Study.patient_pk, *theirs,
        or_(their_day > mine, and_(their_day == mine, later.c.id > Study.id))))
    return [*plan.study_conditions(), ~newer, _patient(plan, lone=True)]


def _first(plan: Plan) -> Select:
    """(WALK, patient, day) for the first ``:n`` lone patients, latest first; (COUNT, how
    many lone patients, -); (FLAGGED, patient, -) per patient that may link."""
    walk = (select(Study.patient_pk, Study.study_date).where(*_met(plan))
            .order_by(Study.study_date.desc()).limit(bindparam("n", type_=Integer)).subquery())
    lone = (select(Study.patient_pk).where(*plan.study_conditions(), _patient(plan, lone=True))
            .distinct().limit(COUNT_LIMIT + 1).subquery())
    linked = (select(Study.patient_pk).where(*plan.study_conditions(), _patient(plan, lone=False))
              .distinct().limit(FLAGGED_LIMIT + 1).subquery())
    return union_all(
        select(literal(WALK), walk.c.patient_pk, walk.c.study_date),
        select(literal(COUNT), func.count(), null()).select_from(lone),
        select(literal(FLAGGED), linked.c.patient_pk, null()))


def _rows(plan: Plan, day: str | None) -> Select:
    """The records ``:ids`` (a JSON list), each with its latest study that meets the
    filters; with ``day``, also the first ``:tie_n`` lone patients whose latest such
    study is that day, by NAS and Patient ID."""
    latest = (select(func.max(Study.study_date))
              .where(Study.patient_pk == Patient.id, *plan.study_conditions()).scalar_subquery())
    ids = func.json_each(bindparam("ids")).table_valued("value")
    rows = (select(*KEYS, latest, literal(0), *SHOWN)
            .join_from(ids, Patient, Patient.id == ids.c.value)
            .join(Nas, Nas.id == Patient.nas_id))
    if day is None:
        return rows
    on_day = (Study.study_date == bindparam("day") if day
              else func.coalesce(Study.study_date, "") == "")
    tied = (select(*KEYS, Study.study_date, literal(0), *SHOWN).select_from(Study)
            .join(Patient, Patient.id == Study.patient_pk).join(Nas, Nas.id == Patient.nas_id)
            .where(*_met(plan), on_day).order_by(Nas.name, Patient.patient_id)
            .limit(bindparam("tie_n", type_=Integer)).subquery())
    return union_all(rows, select(tied))
