"""The access layer's DICOMweb door: QIDO-RS searches and WADO-RS retrievals, checked,
scoped and recorded as :class:`~nasindex.access.guard.Access`'s other reads are (this
mixin is part of it; it uses its ``_require`` and ``record``).

pydicom, numpy and Pillow come in only when a DICOMweb read runs: the CLI's everyday
commands import the access layer and must not pay for them."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from nasindex.access import audit
from nasindex.access.audit import Target
from nasindex.access.principal import CLINICIAN, Principal
from nasindex.errors import NotFound

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from nasindex.config import Settings
    from nasindex.search.dicom import DicomQuery, DicomResult
    from nasindex.search.dicom.files import StoredInstance
    from nasindex.wado.serve import Retrieval


class DicomwebAccess:
    """QIDO-RS and WADO-RS reads of :class:`~nasindex.access.guard.Access`."""

    settings: Settings
    engine: Engine

    def dicom_query(self, p: Principal, q: DicomQuery) -> DicomResult:
        """QIDO-RS: studies, series or instances matching DICOM attributes, recorded as a
        "query" with its level, keys and the number of results."""
        text = audit.query_text(level=q.level, study=q.study_uid, series=q.series_uid,
                                fuzzy=q.fuzzy or None, offset=q.offset or None, **q.keys)
        self._require(p, CLINICIAN, "query", Target(query=text))
        from nasindex.search import dicom

        result = dicom.find(self.engine, q, scope=p.scope)
        self.record(p, "query", Target(query=text, study_uid=q.study_uid,
                                       series_uid=q.series_uid, results=len(result.rows)))
        return result

    def dicom_instances(self, p: Principal, study_uid: str, series_uid: str | None = None,
                        sop_uid: str | None = None) -> list[StoredInstance]:
        """WADO-RS: the copy to serve of each SOP instance asked for, recorded as a
        "retrieve" of its patient and study. NotFound (recorded too) when nothing the
        principal may see is indexed, or when every copy is tombstoned (with since when)."""
        target = Target(study_uid=study_uid, series_uid=series_uid)
        self._require(p, CLINICIAN, "retrieve", target)
        from nasindex.search.dicom import files as dicom_files

        found = dicom_files.stored_instances(self.engine, study_uid, series_uid, sop_uid,
                                             scope=p.scope)
        if not isinstance(found, list):
            what = "instance" if sop_uid else "series" if series_uid else "study"
            why = (f"every file of this {what} is gone from its NAS (tombstoned since "
                   f"{found.since:%Y-%m-%d %H:%M} UTC)" if found is not None else
                   f"this {what} is not in the index (or not on a NAS you may see)")
            self.record(p, "retrieve", replace(target, results=0, detail=why))
            raise NotFound(f"Not found: {why}.")
        first = found[0]
        others = sorted({f.nas for f in found} - {first.nas})
        self.record(p, "retrieve", replace(
            target, nas=first.nas, patient_id=first.patient_id, results=len(found),
            detail=f"also from NAS {', '.join(others)}" if others else None))
        return found

    def dicom_rendered(self, p: Principal, study_uid: str, series_uid: str, sop_uid: str,
                       preset: str, size: int) -> bytes:
        """One instance drawn as the patient page draws it (windowed JPEG), recorded as a
        "retrieve" like the instance itself."""
        from nasindex import preview  # numpy, Pillow and the NAS types: only when drawing

        item = self.dicom_instances(p, study_uid, series_uid, sop_uid)[0]
        return preview.render(self.settings, self.engine, item.nas, item.rel_path, preset,
                              size)

    def dicom_retrieve(self, p: Principal, study_uid: str, series_uid: str | None = None,
                       sop_uid: str | None = None) -> Retrieval:
        """WADO-RS: what :meth:`dicom_instances` finds (checked and recorded), ready to
        be read one file at a time as the answer is sent."""
        items = self.dicom_instances(p, study_uid, series_uid, sop_uid)
        from nasindex.wado.serve import Retrieval

        return Retrieval(self.settings, self.engine, items)
