"""What a search asks for and what it answers: the query and result types."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from nasindex.errors import QueryError

_DATE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")


@dataclass
class SearchQuery:
    text: str | None = None  # a name, or one word with a digit: an identifier
    patient_id: str | None = None  # exact or prefix
    accession: str | None = None  # exact
    modalities: list[str] = field(default_factory=list)  # any of these
    date_from: str | None = None  # study date, YYYYMMDD or YYYY-MM-DD, inclusive
    date_to: str | None = None
    birth_date: str | None = None
    nas: list[str] = field(default_factory=list)
    limit: int = 50
    offset: int = 0
    fuzzy: bool = True

    def is_empty(self) -> bool:
        return not any((self.text and self.text.strip(), self.patient_id, self.accession,
                        self.modalities, self.date_from, self.date_to, self.birth_date,
                        self.nas))


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
    """One patient record: one NAS's view of a person."""

    nas: str
    patient_id: str
    patient_name: str
    birth_date: str | None
    sex: str | None
    studies: list[StudyHit] = field(default_factory=list)
    match: str = "exact"  # exact | similar (typo-tolerant pass)
    person: int = 0  # position of its person in the whole result (0-based)
    linked_because: str | None = None  # why it is shown together with other records

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PersonHit:
    """One person: the records of one or more NAS devices, shown together."""

    records: list[PatientHit]
    match: str = "exact"
    linked_because: str | None = None

    @property
    def latest_study(self) -> str | None:
        dates = [s.date for r in self.records for s in r.studies if s.date]
        return max(dates) if dates else None


@dataclass
class SearchResult:
    patients: list[PatientHit]  # the page's records, person by person (CLI JSON shape)
    total: int  # people matching, exact and similar, counted up to limits.COUNT_LIMIT
    persons: list[PersonHit] = field(default_factory=list)
    similar_total: int = 0  # of ``total``, people found only by the typo-tolerant pass
    notes: list[str] = field(default_factory=list)  # what the user should know
    total_exact: bool = True  # false: more than ``total`` match (show "1,000+")


def normalize_date(value: str | date | None, what: str = "date") -> str | None:
    """``YYYYMMDD`` from ``YYYYMMDD``, ``YYYY-MM-DD`` or a date; QueryError (a
    ValueError) naming ``what`` otherwise (not the value: a birth date is PHI)."""
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value.strftime("%Y%m%d")
    m = _DATE.match(value.strip()) if isinstance(value, str) else None
    try:
        if not m:
            raise ValueError
        date(int(m[1]), int(m[2]), int(m[3]))  # rejects 2024-02-30
    except ValueError:
        raise QueryError(f"The {what} is not a valid date: use YYYYMMDD or YYYY-MM-DD "
                         "(e.g. 2024-03-01).") from None
    return m[1] + m[2] + m[3]


def looks_like_identifier(text_: str) -> bool:
    """One word with a digit in it: a Patient ID or Accession Number, not a name."""
    word = text_.strip()
    return bool(word) and " " not in word and any(ch.isdigit() for ch in word)
