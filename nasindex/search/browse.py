"""Look-ups for the patient page and the CLI: one record with the same person's other
records, its studies and series with their folders, the files of a series or a patient,
and what the filters can offer."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, literal, select
from sqlalchemy.engine import Engine

from nasindex.index.models import Instance, Nas, Patient, Series, Study
from nasindex.paths import display_path, host_path
from nasindex.search.people import Candidate, link_reason, partner_condition
from nasindex.search.query import PersonHit
from nasindex.search.records import load_patients, split_modalities
from nasindex.search.scope import Scope, nas_id_in


def patient(engine: Engine, nas: str, patient_id: str, *, scope: Scope) -> PersonHit | None:
    """One patient record with every study, plus the records of the same person on other
    NAS devices of ``scope`` (people.LINK_KEYS), each with its studies. None when the
    record does not exist or its NAS is outside the scope."""
    stmt = (select(Patient.id, Nas.name, Patient.patient_id, Patient.name_key,
                   Patient.birth_date, Patient.latest_study, literal(0),
                   Patient.patient_name, Patient.sex, Patient.may_link)
            .join(Nas, Nas.id == Patient.nas_id).where(*nas_id_in(scope, Patient.nas_id)))
    with engine.connect() as conn:
        row = conn.execute(stmt.where(Nas.name == nas,
                                          Patient.patient_id == patient_id)).first()
        if row is None:
            return None
        me = Candidate.from_row(row)
        others = conn.execute(stmt.where(partner_condition(me), Nas.name != nas)).all()
        cands = [me] + [Candidate.from_row(other) for other in others]
        hits = load_patients(conn, cands)
    group = sorted(cands, key=lambda c: (c.nas != nas, c.nas, c.patient_id))
    reason = link_reason(group)
    records = [hits[c.pk] for c in group]
    for r in records:
        r.linked_because = reason
    return PersonHit(records, "exact", reason)


@dataclass
class SeriesNode:
    series_uid: str
    number: int | None
    modality: str | None
    description: str | None
    instances: int
    folder: str  # as the workstation sees it (display_root)
    host_folder: str


@dataclass
class StudyNode:
    study_uid: str
    date: str | None
    description: str | None
    accession: str | None
    modalities: list[str]
    folder: str
    host_folder: str
    series: list[SeriesNode] = field(default_factory=list)

    @property
    def instances(self) -> int:
        return sum(s.instances for s in self.series)


def _common_dir(paths: Iterable[str]) -> str:
    dirs = [posixpath.dirname(p) for p in paths]
    return posixpath.commonpath(dirs) if dirs and all(dirs) else ""


def study_tree(engine: Engine, nas: str, patient_id: str, *, scope: Scope
               ) -> list[StudyNode]:
    """Studies (latest first) and series of one record, with the folder of each as the
    workstation sees it. A folder is the deepest one holding all of its present files.
    Empty when the NAS is outside ``scope``."""
    # The common prefix of a set of paths is the common prefix of its min and max.
    stmt = (select(Study.study_uid, Study.study_date, Study.description,
                   Study.accession_number, Study.modalities, Series.series_uid,
                   Series.series_number, Series.modality, Series.description,
                   func.count(Instance.id), func.min(Instance.rel_path),
                   func.max(Instance.rel_path), Nas.root, Nas.display_root)
            .join(Patient, Patient.id == Study.patient_pk)
            .join(Nas, Nas.id == Patient.nas_id)
            .join(Series, Series.study_pk == Study.id)
            .join(Instance, and_(Instance.series_pk == Series.id,
                                 Instance.missing_since.is_(None)), isouter=True)
            .where(Nas.name == nas, Patient.patient_id == patient_id,
                   *nas_id_in(scope, Patient.nas_id))
            .group_by(Study.id, Study.study_uid, Study.study_date, Study.description,
                      Study.accession_number, Study.modalities, Series.id, Series.series_uid,
                      Series.series_number, Series.modality, Series.description, Nas.root,
                      Nas.display_root)
            .order_by(Study.study_date.desc().nulls_last(), Study.study_uid,
                      Series.series_number.nulls_last(), Series.series_uid))
    studies: dict[str, StudyNode] = {}
    spans: dict[str, list[str]] = {}
    roots: tuple[str, str | None] = ("", None)
    with engine.connect() as conn:
        for (st_uid, day, desc, acc, mods, se_uid, number, modality, se_desc, count, lo, hi,
             root, shown) in conn.execute(stmt):
            roots = (root, shown)
            if st_uid not in studies:
                studies[st_uid] = StudyNode(st_uid, day, desc, acc, split_modalities(mods),
                                            "", "")
                spans[st_uid] = []
            folder = _common_dir([lo, hi]) if lo else ""
            spans[st_uid] += [p for p in (lo, hi) if p]
            studies[st_uid].series.append(SeriesNode(
                se_uid, number, modality, se_desc, count, display_path(shown, root, folder),
                host_path(root, folder)))
    root, shown = roots
    for uid, node in studies.items():
        folder = _common_dir(spans[uid])
        node.folder = display_path(shown, root, folder)
        node.host_folder = host_path(root, folder)
    return list(studies.values())


def series_files(engine: Engine, nas: str, series_uid: str, *, scope: Scope
                 ) -> list[dict[str, Any]]:
    """The present files of one series in slice order, with their paths (none when the
    NAS is outside ``scope``)."""
    stmt = (select(Instance.sop_instance_uid, Instance.instance_number, Instance.rel_path,
                   Instance.file_format, Instance.size, Nas.root, Nas.display_root)
            .join(Series, Series.id == Instance.series_pk)
            .join(Nas, Nas.id == Instance.nas_id)
            .where(Nas.name == nas, Series.series_uid == series_uid,
                   Instance.missing_since.is_(None), *nas_id_in(scope, Instance.nas_id))
            .order_by(Instance.instance_number.nulls_last(), Instance.rel_path))
    with engine.connect() as conn:
        return [{"sop_instance_uid": r.sop_instance_uid, "instance_number": r.instance_number,
                 "rel_path": r.rel_path, "format": r.file_format, "size": r.size,
                 "display_path": display_path(r.display_root, r.root, r.rel_path)}
                for r in conn.execute(stmt)]


def nas_roots(engine: Engine, *, scope: Scope) -> dict[str, str]:
    """Each NAS's root as recorded in the index, for the NAS devices of ``scope``:
    previews may read only below these."""
    with engine.connect() as conn:
        return dict(conn.execute(select(Nas.name, Nas.root)
                                 .where(*nas_id_in(scope, Nas.id))).all())


def images(engine: Engine, nas: str, patient_id: str, include_missing: bool = True, *,
           scope: Scope) -> list[dict[str, Any]]:
    """Every indexed file of one patient on one NAS, with host and workstation paths
    (none when the NAS is outside ``scope``)."""
    stmt = (select(Instance.sop_instance_uid, Study.study_uid, Series.series_uid,
                   Series.modality, Instance.rel_path, Instance.file_format,
                   Instance.transfer_syntax, Instance.size, Instance.missing_since,
                   Nas.root, Nas.display_root, Instance.instance_number, Series.series_number,
                   Study.study_date)
            .join(Series, Series.id == Instance.series_pk)
            .join(Study, Study.id == Series.study_pk)
            .join(Patient, Patient.id == Study.patient_pk)
            .join(Nas, Nas.id == Instance.nas_id)
            .where(Nas.name == nas, Patient.patient_id == patient_id,
                   *nas_id_in(scope, Instance.nas_id))
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


def instance(engine: Engine, nas: str, sop_uid: str, *, scope: Scope
             ) -> dict[str, Any] | None:
    """One SOP instance on one NAS, with its patient, study, series and file; None when
    it is not indexed there or the NAS is outside ``scope``. When the NAS holds several
    files of it, the present one first in path order, the same every time."""
    stmt = (select(Patient.patient_id, Study.study_uid, Series.series_uid,
                   Instance.sop_instance_uid, Instance.rel_path, Instance.file_format,
                   Instance.transfer_syntax, Instance.size, Instance.missing_since)
            .join(Series, Series.id == Instance.series_pk)
            .join(Study, Study.id == Series.study_pk)
            .join(Patient, Patient.id == Study.patient_pk)
            .join(Nas, Nas.id == Instance.nas_id)
            .where(Nas.name == nas, Instance.sop_instance_uid == sop_uid,
                   *nas_id_in(scope, Instance.nas_id))
            .order_by(Instance.missing_since.is_not(None), Instance.rel_path).limit(1))
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    if row is None:
        return None
    return {"nas": nas, "patient_id": row.patient_id, "study_uid": row.study_uid,
            "series_uid": row.series_uid, "sop_instance_uid": row.sop_instance_uid,
            "rel_path": row.rel_path, "format": row.file_format,
            "transfer_syntax": row.transfer_syntax, "size": row.size,
            "missing_since": _iso(row.missing_since)}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def facets(engine: Engine, *, scope: Scope) -> dict[str, Any]:
    """What the filters can offer: the modalities and NAS devices of ``scope`` in the
    index, and the number of patient records there (0: nothing indexed there)."""
    with engine.connect() as conn:
        modalities = [m for (m,) in conn.execute(
            select(Series.modality).distinct()
            .where(Series.modality.is_not(None), *nas_id_in(scope, Series.nas_id))
            .order_by(Series.modality))]
        nas = [n for (n,) in conn.execute(select(Nas.name).where(*nas_id_in(scope, Nas.id))
                                          .order_by(Nas.name))]
        records = conn.scalar(select(func.count()).select_from(Patient)
                              .where(*nas_id_in(scope, Patient.nas_id))) or 0
    return {"modalities": modalities, "nas": nas, "patients": records}
