"""What a NAS type hands over is made fit for the index, in the worker that read it.

* Text is kept at DICOM's length limits (PS3.5, table 6.2-1): 64 characters a Person
  Name component group (at most three groups: alphabetic, ideographic, phonetic), LO 64,
  SH 16, CS 16, DA 8, TM 14. A longer value is cut, and the item is indexed with a note
  in the error table naming the field and its length (never its content: PHI).
* Identifiers are never cut: a UID (UI, 64) or Patient ID (LO, 64) beyond its limit
  makes the item an error row, because a cut identifier could file its images under
  another patient, study or series.
* Dates and times written in the old ACR-NEMA way (``1961.02.03``, ``1961-02-03``,
  ``10:15:00``) are stored as DICOM writes them (``19610203``, ``101500``): cut at 8
  characters they would be wrong dates that no search finds.
* Every text value, key and path is made storable in any database (undecodable bytes
  and NUL escaped, see :func:`nasindex.paths.storable`); error reasons are kept short.
"""

from __future__ import annotations

import re
from dataclasses import replace

from nasindex.contract import InstanceRecord, ItemFailure
from nasindex.paths import storable

PN_GROUP, PN_GROUPS = 64, 3
_LEGACY = {"DA": re.compile(r"(\d{4})[.\-/](\d{2})[.\-/](\d{2})"),
           "TM": re.compile(r"(\d{2}):(\d{2})(?::(\d{2}(?:\.\d{1,6})?))?")}
REASON_MAX = 500
# InstanceRecord field -> (DICOM keyword, VR, maximum characters)
IDENTIFIERS = {
    "sop_instance_uid": ("SOPInstanceUID", "UI", 64),
    "study_uid": ("StudyInstanceUID", "UI", 64),
    "series_uid": ("SeriesInstanceUID", "UI", 64),
    "patient_id": ("PatientID", "LO", 64),
}
TEXT = {
    "birth_date": ("PatientBirthDate", "DA", 8),
    "sex": ("PatientSex", "CS", 16),
    "study_date": ("StudyDate", "DA", 8),
    "study_time": ("StudyTime", "TM", 14),
    "study_description": ("StudyDescription", "LO", 64),
    "accession_number": ("AccessionNumber", "SH", 16),
    "series_description": ("SeriesDescription", "LO", 64),
    "modality": ("Modality", "CS", 16),
    "transfer_syntax": ("TransferSyntaxUID", "UI", 64),
}


def fit(outcome: InstanceRecord | ItemFailure) -> InstanceRecord | ItemFailure:
    """The outcome as the index may store it (see the module's rules)."""
    if isinstance(outcome, ItemFailure):
        return _fit_failure(outcome)
    r = outcome
    r.key, r.rel_path = storable(r.key), storable(r.rel_path)
    for name, (keyword, vr, limit) in IDENTIFIERS.items():
        value = storable(getattr(r, name) or "")
        if len(value) > limit:
            return ItemFailure(r.key, r.rel_path, f"{keyword} is {len(value)} characters, "
                               f"more than DICOM's {limit} for {vr}: not indexed (a cut "
                               "identifier could file it under another record)")
        setattr(r, name, value)
    cut = []
    name, was = _person_name(storable(r.patient_name))
    if was:
        cut.append(f"PatientName ({was} characters; {PN_GROUP} a component group)")
    r.patient_name = name
    for field, (keyword, vr, limit) in TEXT.items():
        value = getattr(r, field)
        if value is None:
            continue
        value = _modern(storable(value), vr)
        if len(value) > limit:
            cut.append(f"{keyword} ({len(value)} characters; {limit} at most)")
            value = value[:limit]
        setattr(r, field, value)
    if cut:
        note = "indexed with values cut at DICOM's length limits: " + ", ".join(cut)
        r.note = f"{r.note}; {note}" if r.note else note
    if r.note:
        r.note = _short(storable(r.note))
    return r


def _person_name(value: str) -> tuple[str, int]:
    """A PN value within its limits, and its original length if it had to be cut."""
    groups = value.split("=")
    if len(groups) <= PN_GROUPS and all(len(g) <= PN_GROUP for g in groups):
        return value, 0
    return "=".join(g[:PN_GROUP] for g in groups[:PN_GROUPS]), len(value)


def _modern(value: str, vr: str) -> str:
    """A DA or TM value in today's form if it is in the ACR-NEMA one; else as it is."""
    legacy = _LEGACY.get(vr)
    match = legacy.fullmatch(value.strip()) if legacy else None
    return "".join(part or "" for part in match.groups()) if match else value


def _fit_failure(f: ItemFailure) -> ItemFailure:
    key, rel_path, reason = storable(f.key), storable(f.rel_path), _short(storable(f.reason))
    if (key, rel_path, reason) == (f.key, f.rel_path, f.reason):
        return f
    return replace(f, key=key, rel_path=rel_path, reason=reason)


def _short(text: str) -> str:
    return text if len(text) <= REASON_MAX else text[:REASON_MAX - 1] + "…"
