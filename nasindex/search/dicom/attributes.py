"""The DICOM attributes the index can answer for, per query level (PS3.18 QIDO-RS).

Each :class:`Attribute` names its keyword, tag, VR and level, where the index keeps it
(a column, or a count or list the finder computes) and whether it is returned by
default at its level or only when asked for (``includefield``). A key a client sends is
its keyword or its tag (``PatientName`` or ``00100010``): :func:`lookup` resolves both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from nasindex.errors import QueryError

Level = Literal["study", "series", "instance"]
LEVELS: tuple[Level, ...] = ("study", "series", "instance")
# What an attribute's value is matched as (PS3.4 C.2.2.2).
Matching = Literal["pn", "text", "uid", "date", "time", "code", "number", "none"]


@dataclass(frozen=True)
class Attribute:
    keyword: str
    tag: int
    vr: str
    level: Level | Literal["patient"]
    matching: Matching  # "none": returned, never a query key
    default: bool = True  # returned without includefield

    @property
    def tag_hex(self) -> str:
        return f"{self.tag:08X}"


def _a(keyword: str, level: str, matching: Matching, default: bool = True) -> Attribute:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return Attribute(keyword, tag, dictionary_VR(tag), level, matching, default)  # type: ignore[arg-type]


ATTRIBUTES: dict[str, Attribute] = {a.keyword: a for a in (
    _a("PatientName", "patient", "pn"),
    _a("PatientID", "patient", "text"),
    _a("PatientBirthDate", "patient", "date"),
    _a("PatientSex", "patient", "code"),
    _a("StudyInstanceUID", "study", "uid"),
    _a("StudyDate", "study", "date"),
    _a("StudyTime", "study", "time"),
    _a("AccessionNumber", "study", "text"),
    _a("StudyDescription", "study", "text", default=False),
    _a("ModalitiesInStudy", "study", "code"),
    _a("NumberOfStudyRelatedSeries", "study", "none"),
    _a("NumberOfStudyRelatedInstances", "study", "none"),
    _a("SeriesInstanceUID", "series", "uid"),
    _a("Modality", "series", "code"),
    _a("SeriesNumber", "series", "number"),
    _a("SeriesDescription", "series", "text"),
    _a("NumberOfSeriesRelatedInstances", "series", "none"),
    _a("SOPClassUID", "instance", "uid"),
    _a("SOPInstanceUID", "instance", "uid"),
    _a("InstanceNumber", "instance", "number"),
    _a("Rows", "instance", "number"),
    _a("Columns", "instance", "number"),
    _a("BitsAllocated", "instance", "number"),
    _a("NumberOfFrames", "instance", "number", default=False),
)}
_BY_TAG = {a.tag: a for a in ATTRIBUTES.values()}
# Returned at a level only where they summarise it: a series result does not count the
# study's other series.
_STUDY_ONLY = {"ModalitiesInStudy", "NumberOfStudyRelatedSeries",
               "NumberOfStudyRelatedInstances"}
_SERIES_ONLY = {"NumberOfSeriesRelatedInstances"}


def lookup(key: str) -> Attribute | None:
    """The supported attribute a query key names (keyword or 8-digit tag), None when it
    is a DICOM attribute the index does not hold; QueryError when it is no attribute."""
    tag = _tag_of(key)
    if tag is None:
        raise QueryError(f"Unknown query key {key[:64]!r}: use a DICOM keyword "
                         "(e.g. PatientName) or a tag (e.g. 00100010).")
    return _BY_TAG.get(tag)


def _tag_of(key: str) -> int | None:
    if len(key) == 8 and all(c in "0123456789abcdefABCDEF" for c in key):
        tag = int(key, 16)
        return tag if keyword_for_tag(tag) else None
    return tag_for_keyword(key)


def returned(level: Level, scope_levels: tuple[str, ...]) -> list[Attribute]:
    """Every attribute a result of ``level`` can carry: its own level's and those of the
    levels above it (a series result names its study and patient, as Orthanc does)."""
    keep = {"study": _STUDY_ONLY, "series": _SERIES_ONLY, "instance": set()}[level]
    drop = (_STUDY_ONLY | _SERIES_ONLY) - keep
    return [a for a in ATTRIBUTES.values()
            if a.level in scope_levels and a.keyword not in drop]


def levels_up_to(level: Level) -> tuple[str, ...]:
    """The levels whose attributes a result of ``level`` holds (patient included)."""
    return ("patient",) + LEVELS[:LEVELS.index(level) + 1]
