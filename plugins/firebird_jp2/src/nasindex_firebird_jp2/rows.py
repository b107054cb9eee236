"""From one joined database row to an InstanceRecord: value cleaning and required fields.

Vendors store dates as DATE, TIMESTAMP or text, names as Latin-1 or UTF-8, keys as
integers or strings; everything is normalised here, and a row that lacks something
required is refused with a reason that names the column (never the value).
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, time
from typing import Any

from nasindex.plugin import InstanceRecord
from nasindex_firebird_jp2.mapping import LEVELS, Mapping, Query

# Fixed namespace: the same (NAS, level, key) gives the same UID in every process and run.
UID_NAMESPACE = uuid.UUID("6b1e1b7e-7c1a-5d0e-9a51-6e6173696e64")
_DIGITS = re.compile(r"\D")


class BadRow(ValueError):
    """The row cannot be indexed; the message names the column, never the value."""


def derived_uid(nas_id: str, level: str, key: str) -> str:
    """A DICOM UID (2.25 form) from a UUIDv5 of (NAS, level, source key)."""
    return f"2.25.{uuid.uuid5(UID_NAMESPACE, f'{nas_id}/{level}/{key}').int}"


def key_text(value: Any) -> str | None:
    if value is None:
        return None
    text = (value.decode("latin-1") if isinstance(value, bytes) else str(value)).strip()
    return text or None


def text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):  # a charset NONE column: try UTF-8, else Latin-1
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            value = value.decode("latin-1")
    value = str(value).strip()
    return value or None


def dicom_date(value: Any) -> str | None:
    if isinstance(value, datetime | date):
        return value.strftime("%Y%m%d")
    digits = _DIGITS.sub("", text(value) or "")
    return digits[:8] if len(digits) >= 8 else None


def dicom_time(value: Any) -> str | None:
    if isinstance(value, datetime | time):
        return value.strftime("%H%M%S")
    digits = _DIGITS.sub("", text(value) or "")
    return digits[:6] or None


def integer(value: Any) -> int | None:
    try:
        return int(str(value).strip()) if value is not None else None
    except ValueError:
        return None


def sex(value: Any) -> str | None:
    v = (text(value) or "").upper()[:1]
    return v if v in ("M", "F", "O") else None


class RowReader:
    """Reads fields out of result rows by their position in the listing query."""

    def __init__(self, nas_id: str, mapping: Mapping, query: Query) -> None:
        self.nas_id = nas_id
        self.mapping = mapping
        self.pos = query.positions
        self.fields = {lvl: mapping.level(lvl).fields() for lvl in LEVELS}  # asked per row

    def get(self, row: tuple, name: str) -> Any:
        i = self.pos.get(name)
        return None if i is None else row[i]

    def required(self, row: tuple, level: str, field: str) -> str:
        value = key_text(self.get(row, f"{level}.{field}"))
        if value is None:
            column = self.fields[level][field]
            raise BadRow(f"NULL in required column {level}.{column}")
        return value

    def _parent_key(self, row: tuple, level: str) -> str:
        key = key_text(self.get(row, f"{level}.key"))
        if key is None:
            raise BadRow(f"no {level} row for this image (the join on "
                         f"{level}.{self.mapping.level(level).key} found nothing)")
        return key

    def _uid(self, row: tuple, level: str, field: str) -> str:
        key = self._parent_key(row, level)
        if field in self.fields[level]:
            return self.required(row, level, field)
        return derived_uid(self.nas_id, level, key)

    def record(self, row: tuple, key: str, rel_path: str, size: int, mtime_ns: int,
               version: str) -> InstanceRecord:
        """The record of one row (file facts are added by the caller)."""
        for level in ("series", "study", "patient"):  # the nearest missing parent first
            self._parent_key(row, level)
        g = self.get
        return InstanceRecord(
            key=key, rel_path=rel_path, size=size, mtime_ns=mtime_ns, version=version,
            sop_instance_uid=key_text(g(row, "image.sop_instance_uid")) or "",
            study_uid=self._uid(row, "study", "study_uid"),
            series_uid=self._uid(row, "series", "series_uid"),
            patient_id=self.required(row, "patient", "patient_id"),
            patient_name=text(g(row, "patient.name")) or "",
            birth_date=dicom_date(g(row, "patient.birth_date")),
            sex=sex(g(row, "patient.sex")),
            study_date=dicom_date(g(row, "study.date")),
            study_time=dicom_time(g(row, "study.time")),
            study_description=text(g(row, "study.description")),
            accession_number=text(g(row, "study.accession")),
            series_number=integer(g(row, "series.number")),
            series_description=text(g(row, "series.description")),
            modality=text(g(row, "series.modality")) or text(g(row, "study.modality")),
            instance_number=integer(g(row, "image.instance_number")),
        )
