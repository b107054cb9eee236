"""Search the index: patients by name, ID, modality, dates and NAS; their images.

Read-only. The CLI and the dashboard both call these functions. Name rules
(see README, "Matching rules"): words in any order, case- and accent-insensitive,
``*`` and ``?`` wildcards within a word, a plain word of three or more letters
matches inside a name part, a shorter one only at the start of a part.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql import Select

from nasindex.index.models import Instance, Nas, Patient, Series, Study
from nasindex.names import name_words
from nasindex.paths import display_path, host_path

MIN_FRAGMENT = 3


@dataclass
class SearchQuery:
    text: str | None = None
    patient_id: str | None = None
    modalities: list[str] = field(default_factory=list)
    date_from: str | None = None  # YYYYMMDD, inclusive
    date_to: str | None = None
    nas: list[str] = field(default_factory=list)
    limit: int = 50
    offset: int = 0


@dataclass
class StudyHit:
    study_uid: str
    date: str | None
    description: str | None
    modalities: list[str]
    accession: str | None
    series_count: int
    instance_count: int


@dataclass
class PatientHit:
    nas: str
    patient_id: str
    patient_name: str
    birth_date: str | None
    sex: str | None
    studies: list[StudyHit] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResult:
    patients: list[PatientHit]
    total: int


def _escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def name_condition(text: str):
    """Every typed word must match a word of the folded name (see module docstring)."""
    conditions = []
    for word in name_words(text):
        if "*" in word or "?" in word:
            pattern = _escape_like(word).replace("*", "%").replace("?", "_")
            conditions.append(Patient.name_key.like(f"% {pattern} %", escape="\\"))
        elif len(word) >= MIN_FRAGMENT:
            conditions.append(Patient.name_key.like(f"%{_escape_like(word)}%", escape="\\"))
        else:
            conditions.append(Patient.name_key.like(f"% {_escape_like(word)}%", escape="\\"))
    return and_(*conditions) if conditions else None


def _study_conditions(q: SearchQuery) -> list:
    conds = []
    if q.modalities:
        mods = [m.upper() for m in q.modalities]
        conds.append(Study.id.in_(select(Series.study_pk).where(Series.modality.in_(mods))))
    if q.date_from:
        conds.append(Study.study_date >= q.date_from)
    if q.date_to:
        conds.append(Study.study_date <= q.date_to)
    return conds


def _patient_query(q: SearchQuery) -> Select:
    conds = []
    if q.text and (cond := name_condition(q.text)) is not None:
        conds.append(cond)
    if q.patient_id:
        conds.append(Patient.patient_id == q.patient_id.strip())
    if q.nas:
        conds.append(Nas.name.in_(q.nas))
    study_conds = _study_conditions(q)
    latest = func.max(Study.study_date).label("latest")
    stmt = (select(Patient.id, latest).join(Nas, Nas.id == Patient.nas_id)
            .join(Study, Study.patient_pk == Patient.id, isouter=not study_conds)
            .where(*conds, *study_conds).group_by(Patient.id))
    return stmt


def search(engine: Engine, q: SearchQuery) -> SearchResult:
    base = _patient_query(q).subquery()
    with engine.connect() as conn:
        total = conn.scalar(select(func.count()).select_from(base)) or 0
        rows = conn.execute(select(base.c.id).order_by(base.c.latest.desc().nulls_last(),
                                                       base.c.id)
                            .limit(q.limit).offset(q.offset)).all()
        pks = [r.id for r in rows]
        patients = _load_patients(conn, pks, _study_conditions(q))
    return SearchResult([patients[pk] for pk in pks], total)


def _load_patients(conn, pks: list[int], study_conds: list) -> dict[int, PatientHit]:
    if not pks:
        return {}
    hits = {}
    for pk, nas, pid, name, birth, sex in conn.execute(
            select(Patient.id, Nas.name, Patient.patient_id, Patient.patient_name,
                   Patient.birth_date, Patient.sex)
            .join(Nas, Nas.id == Patient.nas_id).where(Patient.id.in_(pks))):
        hits[pk] = PatientHit(nas, pid, name, birth, sex)
    counts = (select(Series.study_pk, func.count(func.distinct(Series.id)).label("series"),
                     func.count(Instance.id).label("instances"))
              .join(Instance, and_(Instance.series_pk == Series.id,
                                   Instance.missing_since.is_(None)), isouter=True)
              .group_by(Series.study_pk).subquery())
    stmt = (select(Study.patient_pk, Study.study_uid, Study.study_date, Study.description,
                   Study.modalities, Study.accession_number,
                   func.coalesce(counts.c.series, 0), func.coalesce(counts.c.instances, 0))
            .join(counts, counts.c.study_pk == Study.id, isouter=True)
            .where(Study.patient_pk.in_(pks), *study_conds)
            .order_by(Study.study_date.desc().nulls_last(), Study.id))
    for ppk, uid, date, desc, mods, acc, n_series, n_inst in conn.execute(stmt):
        hits[ppk].studies.append(StudyHit(uid, date, desc, [m for m in mods.split("\\") if m],
                                          acc, n_series, n_inst))
    return hits


def images(engine: Engine, nas: str, patient_id: str,
           include_missing: bool = True) -> list[dict[str, Any]]:
    """Every indexed file of one patient on one NAS, with host and workstation paths."""
    stmt = (select(Instance.sop_instance_uid, Study.study_uid, Series.series_uid,
                   Series.modality, Instance.rel_path, Instance.file_format,
                   Instance.transfer_syntax, Instance.size, Instance.missing_since,
                   Nas.root, Nas.display_root, Instance.instance_number, Series.series_number,
                   Study.study_date)
            .join(Series, Series.id == Instance.series_pk)
            .join(Study, Study.id == Series.study_pk)
            .join(Patient, Patient.id == Study.patient_pk)
            .join(Nas, Nas.id == Instance.nas_id)
            .where(Nas.name == nas, Patient.patient_id == patient_id)
            .order_by(Study.study_date, Study.study_uid, Series.series_number,
                      Series.series_uid, Instance.instance_number, Instance.rel_path))
    if not include_missing:
        stmt = stmt.where(Instance.missing_since.is_(None))
    with engine.connect() as conn:
        return [{
            "sop_instance_uid": r.sop_instance_uid, "study_uid": r.study_uid,
            "series_uid": r.series_uid, "modality": r.modality,
            "path": host_path(r.root, r.rel_path),
            "display_path": display_path(r.display_root, r.root, r.rel_path),
            "format": r.file_format, "transfer_syntax": r.transfer_syntax, "size": r.size,
            "missing_since": _iso(r.missing_since),
        } for r in conn.execute(stmt)]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


