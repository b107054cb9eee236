"""Standard DICOM matching (PS3.4 C.2.2.2) of one query key, as SQL on either database.

* Universal: an empty value, or ``*``, matches everything (the attribute is returned).
* Single value: exact; text and codes are case-sensitive; person names are not (PS3.4
  lets PN matching ignore case; accents and the order of name components still count).
* Wildcards ``*`` (any run, ``^`` included) and ``?`` (one character) in text, codes and
  person names, matching the whole value.
* Lists: UIDs and codes separated by ``\\`` or ``,`` match any of them.
* Ranges of dates and times: ``A-B``, ``A-``, ``-B``, inclusive.

``fuzzy`` person names (QIDO ``fuzzymatching=true``) use the project's own name rules
instead (:mod:`nasindex.search.terms`: words in any order, case and accents ignored),
with its typo-tolerant pass when nothing matches (see :mod:`.qido`).
"""

from __future__ import annotations

import re

from sqlalchemy import false, or_
from sqlalchemy.sql import ColumnElement

from nasindex.errors import QueryError
from nasindex.index.models import Instance, Patient, Series, Study
from nasindex.names import name_words
from nasindex.search.backends import Backend
from nasindex.search.dicom.attributes import Attribute
from nasindex.search.dicom.files import sop_class
from nasindex.search.plan import Plan, bound
from nasindex.search.query import SearchQuery
from nasindex.search.terms import MIN_FRAGMENT, NameTerm

MAX_LIST = 200  # values in one UID or code list
_WILDCARD = re.compile(r"[*?]")
_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")

COLUMNS: dict[str, ColumnElement] = {
    "PatientName": Patient.patient_name, "PatientID": Patient.patient_id,
    "PatientBirthDate": Patient.birth_date, "PatientSex": Patient.sex,
    "StudyInstanceUID": Study.study_uid, "StudyDate": Study.study_date,
    "StudyTime": Study.study_time, "AccessionNumber": Study.accession_number,
    "StudyDescription": Study.description, "SeriesInstanceUID": Series.series_uid,
    "Modality": Series.modality, "SeriesNumber": Series.series_number,
    "SeriesDescription": Series.description, "SOPInstanceUID": Instance.sop_instance_uid,
    "InstanceNumber": Instance.instance_number, "Rows": Instance.rows,
    "Columns": Instance.columns, "SOPClassUID": sop_class(),
    "BitsAllocated": Instance.bits_allocated, "NumberOfFrames": Instance.frames,
}


def condition(db: Backend, attr: Attribute, value: str) -> list[ColumnElement[bool]]:
    """The WHERE conditions of ``attr`` = ``value`` (none for universal matching);
    QueryError naming the key when the value cannot be matched as its VR asks."""
    value = value.strip(" ")
    if value in ("", "*"):
        return []
    match attr.matching:
        case "pn":
            return standard_name(db, value)
        case "uid":
            return [COLUMNS[attr.keyword].in_(_list(attr, value))]
        case "code" if attr.keyword == "ModalitiesInStudy":
            plan = Plan(db, SearchQuery(modalities=_list(attr, value)), [], None)
            return bound(plan, plan.study_conditions())
        case "code":
            return [or_(*(_text(db, COLUMNS[attr.keyword], v) for v in _list(attr, value)))]
        case "text":
            return [_text(db, COLUMNS[attr.keyword], value)]
        case "date" | "time":
            return _range(attr, value)
        case "number":
            return [COLUMNS[attr.keyword] == _number(attr, value)]
    raise QueryError(f"{attr.keyword} is returned, but cannot be a query key.")


def _text(db: Backend, column: ColumnElement[str], value: str) -> ColumnElement[bool]:
    """Exact, or a wildcard; a literal start is looked up in the column's index first."""
    if not _WILDCARD.search(value):
        return column == value
    lead = _WILDCARD.split(value, 1)[0]
    pattern = db.dicom_wildcard(column, value, fold_case=False)
    return db.prefix(column, lead) & pattern if lead else pattern


def standard_name(db: Backend, pattern: str) -> list[ColumnElement[bool]]:
    """PN: the whole value matches ``pattern``, ignoring case. The folded name key
    (an index on both databases) narrows first: it starts with the pattern's literal
    start, and contains each longer literal word."""
    conds = []
    literal_runs = _WILDCARD.split(pattern)
    lead = " ".join(name_words(literal_runs[0]))
    if lead:
        conds.append(db.prefix(Patient.name_key, f" {lead}"))
    words = {w for run in literal_runs for w in name_words(run) if len(w) >= MIN_FRAGMENT}
    if words:
        terms = [NameTerm(w, "fragment") for w in sorted(words)]
        conds += bound(Plan(db, SearchQuery(), terms, None), db.name_conditions(terms))
    return conds + [db.dicom_wildcard(Patient.patient_name, pattern, fold_case=True)]


def _list(attr: Attribute, value: str) -> list[str]:
    items = [v.strip(" ") for v in re.split(r"[\\,]", value) if v.strip(" ")]
    if len(items) > MAX_LIST:
        raise QueryError(f"{attr.keyword}: at most {MAX_LIST} values in one list.")
    if attr.matching == "uid" and any(not re.fullmatch(r"[0-9.]{1,64}", v) for v in items):
        raise QueryError(f"{attr.keyword} must be UIDs (digits and dots, at most 64), "
                         "several separated by ',' or '\\'; wildcards are not allowed.")
    return items


def _range(attr: Attribute, value: str) -> list[ColumnElement[bool]]:
    column = COLUMNS[attr.keyword]
    shape = _DATE if attr.matching == "date" else _TIME
    low, dash, high = value.partition("-")
    what = "YYYYMMDD" if attr.matching == "date" else "HHMMSS"
    if any(v and not shape.match(v) for v in (low, high)) or not (low or high):
        raise QueryError(f"{attr.keyword} must be {what}, or a range {what}-{what} "
                         "(either end may be left open).")
    if not dash:
        # A time matches its stated precision: 1015 is every time from 10:15:00 on.
        return [column == low] if attr.matching == "date" else [column >= low,
                                                                 column <= low + "~"]
    conds = [column >= low] if low else []
    if high:  # "~" sorts after digits and ".": a time's fractions stay inside
        conds.append(column <= (high if attr.matching == "date" else high + "~"))
    if low and high and low > high:
        conds.append(false())
    return conds


def _number(attr: Attribute, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise QueryError(f"{attr.keyword} must be a whole number.") from None
