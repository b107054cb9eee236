"""The attribute values of a page of QIDO results: the chosen copy's own values, and
counts and modalities over every copy inside the scope (present files only)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from nasindex.index.models import Instance, Patient, Series, Study
from nasindex.search.dicom.attributes import LEVELS, Level, levels_up_to, returned
from nasindex.search.dicom.matching import COLUMNS
from nasindex.search.scope import Scope, nas_id_in

# The columns a result of each level reads: its attributes held in a column (counts
# and modalities are computed over the copies).
_HELD = {level: [a.keyword for a in returned(level, levels_up_to(level))
                 if a.keyword in COLUMNS] for level in LEVELS}


def load(conn: Connection, level: Level, pks: list[int], scope: Scope
         ) -> list[dict[str, Any]]:
    """One dict (keyword -> value) per pk of ``level``, in the order of ``pks``."""
    if not pks:
        return []
    columns = _HELD[level]
    stmt = select().select_from(Study).join(Patient, Patient.id == Study.patient_pk)
    pk = Study.id
    if level != "study":
        stmt, pk = stmt.join(Series, Series.study_pk == Study.id), Series.id
    if level == "instance":
        stmt, pk = stmt.join(Instance, Instance.series_pk == Series.id), Instance.id
    stmt = stmt.with_only_columns(pk, *(COLUMNS[k] for k in columns)).where(pk.in_(pks))
    found = {row[0]: dict(zip(columns, row[1:], strict=True)) for row in conn.execute(stmt)}
    rows = [found[p] for p in pks if p in found]
    if level == "study":
        _study_counts(conn, rows, scope)
    elif level == "series":
        _series_counts(conn, rows, scope)
    return rows


def _study_counts(conn: Connection, rows: list[dict[str, Any]], scope: Scope) -> None:
    uids = [r["StudyInstanceUID"] for r in rows]
    per_study: dict[str, list[tuple[str | None, int]]] = {u: [] for u in uids}
    stmt = (select(Study.study_uid, Series.series_uid, func.max(Series.modality),
                   func.count(Instance.sop_instance_uid.distinct()))
            .select_from(Instance).join(Series, Series.id == Instance.series_pk)
            .join(Study, Study.id == Series.study_pk)
            .where(Study.study_uid.in_(uids), Instance.missing_since.is_(None),
                   *nas_id_in(scope, Instance.nas_id))
            .group_by(Study.study_uid, Series.series_uid))
    for study_uid, _series, modality, files in conn.execute(stmt):
        per_study[study_uid].append((modality, files))
    for r in rows:
        series = per_study[r["StudyInstanceUID"]]
        r["ModalitiesInStudy"] = sorted({m for m, _ in series if m})
        r["NumberOfStudyRelatedSeries"] = len(series)
        r["NumberOfStudyRelatedInstances"] = sum(n for _, n in series)


def _series_counts(conn: Connection, rows: list[dict[str, Any]], scope: Scope) -> None:
    uids = [r["SeriesInstanceUID"] for r in rows]
    stmt = (select(Series.series_uid, func.count(Instance.sop_instance_uid.distinct()))
            .select_from(Instance).join(Series, Series.id == Instance.series_pk)
            .where(Series.series_uid.in_(uids), Instance.missing_since.is_(None),
                   *nas_id_in(scope, Instance.nas_id))
            .group_by(Series.series_uid))
    counts = dict(conn.execute(stmt).all())
    for r in rows:
        r["NumberOfSeriesRelatedInstances"] = counts.get(r["SeriesInstanceUID"], 0)
