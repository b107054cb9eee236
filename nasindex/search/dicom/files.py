"""Which file serves each SOP instance of a study, series or instance (WADO-RS).

One SOP instance may be indexed on several NAS devices (a study copied from the PACS to
the CT share), or twice on one. The copy served is always the same: the present one
on the NAS whose id comes first in code-point order, then the smallest item key. A
tombstoned copy is never served; when every copy of what was asked for is tombstoned,
:class:`Tombstoned` says so (and since when), which a front end answers as 404 with
that reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql import ColumnElement

from nasindex.index.models import Instance, Nas, Patient, Series, Study
from nasindex.search.backends import backend
from nasindex.search.scope import Scope, nas_id_in

# JPEG 2000 files are served as Secondary Capture images (nasindex.wado.part10).
WRAPPED_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.7"
JPEG_2000_FILES = ("jp2", "j2k")


def sop_class() -> ColumnElement[str | None]:
    """An instance's SOP Class UID as served: its file's own, or Secondary Capture for a
    JPEG 2000 file (made into DICOM on the fly)."""
    return func.coalesce(Instance.sop_class_uid, case(
        (Instance.file_format.in_(JPEG_2000_FILES), WRAPPED_SOP_CLASS), else_=None))


@dataclass(frozen=True)
class StoredInstance:
    """One SOP instance's chosen copy, with what a DICOM header of it needs."""

    nas: str
    rel_path: str
    file_format: str  # dicom | jp2 | j2k
    transfer_syntax: str | None
    lossless: bool | None
    size: int
    sop_instance_uid: str
    instance_number: int | None
    series_uid: str
    series_number: int | None
    modality: str | None
    series_description: str | None
    study_uid: str
    study_date: str | None
    study_time: str | None
    accession_number: str | None
    study_description: str | None
    patient_id: str
    patient_name: str
    birth_date: str | None
    sex: str | None


@dataclass(frozen=True)
class Tombstoned:
    """Every indexed copy of what was asked for is gone from its NAS."""

    since: datetime


_COLUMNS = (Nas.name, Instance.rel_path, Instance.file_format, Instance.transfer_syntax,
            Instance.lossless, Instance.size, Instance.sop_instance_uid,
            Instance.instance_number, Series.series_uid, Series.series_number,
            Series.modality, Series.description, Study.study_uid, Study.study_date,
            Study.study_time, Study.accession_number, Study.description, Patient.patient_id,
            Patient.patient_name, Patient.birth_date, Patient.sex)


def stored_instances(engine: Engine, study_uid: str, series_uid: str | None = None,
                     sop_uid: str | None = None, *, scope: Scope
                     ) -> list[StoredInstance] | Tombstoned | None:
    """The chosen copy of every present SOP instance of the study (or of one series of
    it, or the one instance), in series and instance order; ``Tombstoned`` when only
    tombstoned copies are indexed; None when nothing is (inside ``scope``)."""
    conds = [Study.study_uid == study_uid, *nas_id_in(scope, Instance.nas_id)]
    if series_uid is not None:
        conds.append(Series.series_uid == series_uid)
    if sop_uid is not None:
        conds.append(Instance.sop_instance_uid == sop_uid)
    base = (select().select_from(Instance).join(Series, Series.id == Instance.series_pk)
            .join(Study, Study.id == Series.study_pk)
            .join(Patient, Patient.id == Study.patient_pk)
            .join(Nas, Nas.id == Instance.nas_id).where(*conds))
    chosen: dict[str, StoredInstance] = {}
    with engine.connect() as conn:
        db = backend(conn)
        stmt = (base.with_only_columns(*_COLUMNS).where(Instance.missing_since.is_(None))
                .order_by(Series.series_number.nulls_last(), Series.series_uid,
                          Instance.instance_number.nulls_last(), Instance.sop_instance_uid,
                          db.bytes_order(Nas.name), db.bytes_order(Instance.item_key)))
        for row in conn.execute(stmt):
            if row.sop_instance_uid not in chosen:  # the first copy in that order
                chosen[row.sop_instance_uid] = StoredInstance(*row)
        if chosen:
            return list(chosen.values())
        gone = conn.scalar(base.with_only_columns(func.max(Instance.missing_since)))
    return Tombstoned(gone) if gone is not None else None
