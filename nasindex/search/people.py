"""People: which patient records are one person, and in which order people are shown.

The rule that links records across NAS devices is written here once (:data:`LINK_KEYS`):
search groups by it, the patient page looks partners up by it, the reasons shown name
it, and a test holds the index's ``may_link`` triggers (migration 0003) to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import and_, or_
from sqlalchemy.sql import ColumnElement

from nasindex.index.models import Nas, Patient


@dataclass(slots=True)
class Candidate:
    """A patient record as search ranks and groups it."""

    pk: int
    nas: str
    patient_id: str
    name_key: str
    birth_date: str | None
    latest: str | None
    score: int = 0
    distance: int = 0
    patient_name: str = ""
    sex: str | None = None
    may_link: bool = False  # kept by the index: it may have a partner on another NAS

    @classmethod
    def from_row(cls, row: Sequence, score: int | None = None) -> Candidate:
        """From a row (id, nas name, patient_id, name_key, birth_date, latest, score,
        patient_name, sex, may_link, ...), with ``score`` instead of the row's if given."""
        pk, nas, pid, key, birth, latest, row_score, name, sex, flag = row[:10]
        return cls(pk, nas, pid, key, birth, latest, row_score if score is None else score,
                   patient_name=name, sex=sex, may_link=bool(flag))


# The columns of a candidate row, as Candidate.from_row reads them: these, the latest
# study and the score, then SHOWN (``nas`` is joined as Nas).
KEYS = (Patient.id, Nas.name, Patient.patient_id, Patient.name_key, Patient.birth_date)
SHOWN = (Patient.patient_name, Patient.sex, Patient.may_link)

Day = TypeVar("Day")  # a walk's day: YYYYMMDD text, or the high bits of a rowid
Found = tuple[list[Candidate], list[Candidate], int]  # best lone, flagged, lone count


def candidate_columns(latest: ColumnElement, score: ColumnElement) -> tuple:
    """Every column of a candidate row, in Candidate.from_row's order."""
    return (*KEYS, latest, score, *SHOWN)


def tied_day(days: Sequence[Day], n: int) -> Day | None:
    """The day the first ``n`` of a walk latest first end on, when the next one has that
    day too: the page ends among records of one day, which rank by NAS and Patient ID,
    an order the walk does not know. None when the page ends cleanly."""
    return days[n - 1] if len(days) > n and days[n] == days[n - 1] else None


@dataclass(frozen=True)
class LinkKey:
    """Records on different NAS devices that agree on all of ``columns`` (of
    ``patient``) are one person. ``blank_links``: whether empty values count."""

    columns: tuple[str, ...]
    blank_links: bool

    def of(self, record: Candidate) -> tuple[str, ...] | None:
        """The record's value of this key, or None where it links nothing."""
        values = tuple(getattr(record, c) for c in self.columns)
        if not self.blank_links and not all(values):
            return None
        return values

    def condition(self, values: tuple[str, ...]) -> ColumnElement[bool]:
        """``patient`` rows holding ``values`` (a value from :meth:`of`)."""
        return and_(*(getattr(Patient, c) == v for c, v in zip(self.columns, values,
                                                               strict=True)))


# One person across NAS devices: the same Patient ID, or the same folded name and birth
# date (both known). Only a partner on another NAS links; the index never merges them.
LINK_KEYS = (LinkKey(("patient_id",), blank_links=True),
             LinkKey(("name_key", "birth_date"), blank_links=False))


def partner_condition(record: Candidate) -> ColumnElement[bool]:
    """``patient`` rows that share a link key with ``record`` (on any NAS)."""
    return or_(*(key.condition(v) for key in LINK_KEYS if (v := key.of(record)) is not None))


def group(cands: list[Candidate]) -> list[list[Candidate]]:
    """People: records that share a link key with a record on another NAS, joined
    transitively (union-find). Every record holding a key found on two NAS devices or
    more joins it, so the answer does not depend on the order of ``cands``."""
    parent = list(range(len(cands)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for key in LINK_KEYS:
        holders: dict[tuple[str, ...], list[int]] = {}
        for i, c in enumerate(cands):
            value = key.of(c)
            if value is not None:
                holders.setdefault(value, []).append(i)
        for same in holders.values():
            if len({cands[i].nas for i in same}) > 1:
                for i in same[1:]:
                    parent[find(i)] = find(same[0])
    groups: dict[int, list[Candidate]] = {}
    for i, c in enumerate(cands):
        groups.setdefault(find(i), []).append(c)
    return [g if len(g) == 1 else sorted(g, key=lambda c: (c.nas, c.patient_id))
            for g in groups.values()]


def rank(groups: list[list[Candidate]], similar: bool) -> list[list[Candidate]]:
    """Relevance first (fewest edits for similar ones), then the latest study, then the
    first record's NAS and ID so that the order is total and the same on every database."""
    def latest(g: list[Candidate]) -> str:
        if len(g) == 1:
            return g[0].latest or ""
        return max((c.latest for c in g if c.latest), default="")

    out = sorted(groups, key=lambda g: (g[0].nas, g[0].patient_id))
    if similar:
        out.sort(key=latest, reverse=True)
        out.sort(key=lambda g: min(c.distance for c in g))
    else:
        out.sort(key=lambda g: (max(c.score for c in g), latest(g)), reverse=True)
    return out


def link_reason(records: Iterable[Candidate]) -> str | None:
    """Why ``records`` (one group) are one person, or None for a single record."""
    records = list(records)
    if len(records) < 2:
        return None
    where = ", ".join(r.nas for r in records)
    if len({r.patient_id for r in records}) == 1:
        return f"Same Patient ID on {where}."
    ids = "; ".join(f"{r.nas}: {r.patient_id}" for r in records)
    return (f"Same name and birth date on {where} (Patient IDs differ: {ids}). "
            "Shown together for convenience; check before treating them as one person.")
