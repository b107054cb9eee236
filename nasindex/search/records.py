"""Patient records and their studies, as a results page shows them."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement, Select

from nasindex.index.models import Instance, Nas, Patient, Series, Study
from nasindex.search.query import PatientHit, StudyHit


def load_patients(conn: Connection, pks: list[int], study_conds: list[ColumnElement[bool]]
                  ) -> dict[int, PatientHit]:
    """The records ``pks`` with their studies (only those meeting ``study_conds``)."""
    if not pks:
        return {}
    hits = {}
    for pk, nas, pid, name, birth, sex in conn.execute(_patients_stmt(), {"pks": pks}):
        hits[pk] = PatientHit(nas, pid, name, birth, sex)
    for ppk, study in _studies(conn, pks, study_conds):
        hits[ppk].studies.append(study)
    return hits


@cache
def _patients_stmt() -> Select:
    """Built once: constructing a statement costs about as much as running this one."""
    return (select(Patient.id, Nas.name, Patient.patient_id, Patient.patient_name,
                   Patient.birth_date, Patient.sex)
            .join(Nas, Nas.id == Patient.nas_id)
            .where(Patient.id.in_(bindparam("pks", expanding=True))))


@cache
def _studies_stmt() -> Select:
    """The page's studies, built once (the study filters are added per search)."""
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


def _studies(conn: Connection, patient_pks: list[int], study_conds: list
             ) -> Iterable[tuple[int, StudyHit]]:
    stmt = _studies_stmt().where(*study_conds) if study_conds else _studies_stmt()
    for ppk, uid, day, desc, mods, acc, series, files in conn.execute(
            stmt, {"pks": patient_pks}).all():
        yield ppk, StudyHit(uid, day, desc, split_modalities(mods), acc, series, files)


def split_modalities(stored: str) -> list[str]:
    """``study.modalities`` ("CT\\SR") as a list."""
    return [m for m in stored.split("\\") if m]
