"""Patient records and their studies, as a results page or a patient page shows them."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from nasindex.index.models import Instance, Series, Study
from nasindex.search.people import Candidate
from nasindex.search.query import PatientHit, StudyHit

if TYPE_CHECKING:
    from nasindex.search.plan import Plan


def load_patients(conn: Connection, cands: Iterable[Candidate], plan: Plan | None = None
                  ) -> dict[int, PatientHit]:
    """The records ``cands`` with their studies: only those meeting the plan's study
    filters, when a plan is given."""
    hits = {c.pk: PatientHit(c.nas, c.patient_id, c.patient_name, c.birth_date, c.sex)
            for c in cands}
    if not hits:
        return {}
    if plan is None or not plan.by_study:
        stmt, params = _studies_stmt(), {}
    else:
        stmt, params = plan.statement("studies", _filtered_studies), plan.params
    for ppk, study in _studies(conn, stmt, params | {"pks": list(hits)}):
        hits[ppk].studies.append(study)
    return hits


@cache
def _studies_stmt() -> Select:
    """The page's studies, built once (a plan's study filters are added per shape)."""
    # Correlated counts: a few index seeks per study, whatever the size of the index.
    n_series = (select(func.count()).select_from(Series).where(Series.study_pk == Study.id)
                .scalar_subquery())
    n_files = (select(func.count()).select_from(Instance)
               .join(Series, Series.id == Instance.series_pk)
               .where(Series.study_pk == Study.id, Instance.missing_since.is_(None))
               .scalar_subquery())
    return (select(Study.patient_pk, Study.study_uid, Study.study_date, Study.description,
                   Study.modalities, Study.accession_number, n_series, n_files)
            .where(Study.patient_pk.in_(bindparam("pks", expanding=True)))
            .order_by(Study.study_date.desc().nulls_last(), Study.study_uid))


def _filtered_studies(plan: Plan) -> Select:
    return _studies_stmt().where(*plan.study_conditions())


def _studies(conn: Connection, stmt: Select, params: dict) -> Iterable[tuple[int, StudyHit]]:
    for ppk, uid, day, desc, mods, acc, series, files in conn.execute(stmt, params).all():
        yield ppk, StudyHit(uid, day, desc, split_modalities(mods), acc, series, files)


def split_modalities(stored: str) -> list[str]:
    """``study.modalities`` ("CT\\\\SR") as a list."""
    return [m for m in stored.split("\\") if m]
