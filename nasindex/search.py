"""Search the index: patients by name, ID, accession, modality, dates, birth date and
NAS; their studies, series and files.

Read-only. The CLI and the dashboard both call these functions. The rules are written
down in the README ("Matching rules"); in short:

* The search text is a name, unless it is one word containing a digit: then it is an
  identifier (Patient ID exactly or as a prefix, or Accession Number exactly).
* Name words match in any order, case- and accent-insensitively, against the folded
  name parts of every PN group (alphabetic, ideographic, phonetic). ``*`` and ``?`` are
  wildcards within one part; a plain word of three or more characters matches inside a
  part; a shorter word only at the start of a part.
* When no patient matches exactly, a typo-tolerant pass adds patients whose name parts
  are within a small edit distance, marked "similar" (they would rank after exact ones).
* Records of one person on several NAS devices (same Patient ID, or same name and birth
  date) are grouped into one result with a row per NAS and the reason; the index itself
  keeps them apart.

The SQL narrows candidates with an index (SQLite FTS5 trigram, PostgreSQL pg_trgm, see
migration 0002) and applies the exact rule and the scores, so both databases return the
same rows. The database ranks and pages the records that stand alone (most of them);
records that may belong with one on another NAS are grouped in Python, and the two are
merged in the same order on both databases.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from functools import cache
from typing import Any, Literal

from sqlalchemy import and_, bindparam, case, func, literal, or_, select, text, union
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import ColumnElement, Select, column

from nasindex.index.models import Instance, Nas, Patient, Series, Study
from nasindex.names import edit_distance, name_words, typo_budget, word_trigrams
from nasindex.paths import display_path, host_path

MIN_FRAGMENT = 3  # a plain word this long matches inside a name part
WILDCARDS = re.compile(r"[*?]")
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
    total: int  # people matching, exact and similar
    persons: list[PersonHit] = field(default_factory=list)
    similar_total: int = 0  # of ``total``, people found only by the typo-tolerant pass
    notes: list[str] = field(default_factory=list)  # what the user should know


# -- the parts of a query --------------------------------------------------------------

@dataclass(frozen=True)
class NameTerm:
    """One typed name word and how it matches a stored name part."""

    word: str
    kind: Literal["wildcard", "fragment", "prefix"]

    @classmethod
    def parse(cls, word: str) -> NameTerm:
        if WILDCARDS.search(word):
            return cls(word, "wildcard")
        return cls(word, "fragment" if len(word) >= MIN_FRAGMENT else "prefix")

    def condition(self) -> ColumnElement[bool]:
        """The exact rule on ``patient.name_key`` (parts between single spaces)."""
        if self.kind == "wildcard":
            core = self.word.strip("*")
            if WILDCARDS.search(core):  # inside the word: only a regex keeps it in one part
                return Patient.name_key.regexp_match(f" {_wildcard_regex(self.word)} ")
            # Only leading/trailing '*': the same rule as a LIKE, no regex per row.
            lead = "%" if self.word.startswith("*") else "% "
            trail = "%" if self.word.endswith("*") else " %"
            return Patient.name_key.like(f"{lead}{_escape_like(core)}{trail}", escape="\\")
        lead = "%" if self.kind == "fragment" else "% "
        return Patient.name_key.like(f"{lead}{_escape_like(self.word)}%", escape="\\")

    def score_expr(self) -> ColumnElement[int]:
        """:meth:`score` in SQL, for a name that is known to match this term."""
        if self.kind == "wildcard":
            return literal(2)
        w = _escape_like(self.word)
        whole = Patient.name_key.like(f"% {w} %", escape="\\")
        if self.kind == "prefix":
            return case((whole, 3), else_=2)
        return case((whole, 3), (Patient.name_key.like(f"% {w}%", escape="\\"), 2), else_=1)

    def fts_exact(self) -> bool:
        """True when the trigram index's match is the rule itself (a substring of the
        name key): a fragment, a two-letter prefix, a wildcard with '*' only at its ends."""
        return bool(self.fts_phrases()) and (self.kind != "wildcard"
                                             or not WILDCARDS.search(self.word.strip("*")))

    def fts_phrases(self) -> list[str]:
        """Substrings of the name key (3+ characters) that a match must contain: what the
        trigram index can look up. Empty when the term gives it nothing to go on."""
        if self.kind == "fragment":
            return [self.word]
        if self.kind == "prefix":
            return [f" {self.word}"] if len(self.word) == 2 else []
        return [run for run in WILDCARDS.split(f" {self.word} ") if len(run) >= 3]

    def score(self, parts: list[str]) -> int:
        """3 for a whole part, 2 for the start of a part, 1 inside a part, 0 for none."""
        if self.kind == "wildcard":
            rx = re.compile(_wildcard_regex(self.word))
            return 2 if any(rx.fullmatch(p) for p in parts) else 0
        best = 0
        for p in parts:
            if p == self.word:
                return 3
            if p.startswith(self.word):
                best = 2
            elif self.kind == "fragment" and self.word in p:
                best = max(best, 1)
        return best

    def distance(self, parts: list[str], memo: dict[tuple[str, str], int] | None = None
                 ) -> int | None:
        """Edits to the nearest part, within this word's typo budget; None if too far.
        ``memo`` remembers word/part distances across the candidates of one search
        (names share parts: many candidates are 'maria' or 'john')."""
        budget = typo_budget(self.word) if self.kind != "wildcard" else 0
        if budget == 0:
            return None
        memo = {} if memo is None else memo
        best = budget + 1
        for part in parts:
            d = memo.get((self.word, part))
            if d is None:
                # Each letter of the word that the part lacks costs at least one edit.
                cheap = len(set(self.word) - set(part)) > budget
                d = budget + 1 if cheap else edit_distance(self.word, part, budget)
                memo[(self.word, part)] = d
            best = min(best, d)
        return best if best <= budget else None


def _escape_like(word: str, escape: str = "\\") -> str:
    for ch in (escape, "%", "_"):
        word = word.replace(ch, escape + ch)
    return word


def _glob_escape(word: str) -> str:
    """A typed wildcard word as a SQLite GLOB: * and ? stay, [ and ] become literal."""
    return "".join(f"[{ch}]" if ch in "[]" else ch for ch in word)


def _wildcard_regex(word: str) -> str:
    """``*``/``?`` to a regex confined to one part; the same syntax in Python and PostgreSQL."""
    out = []
    for ch in word:
        if ch == "*":
            out.append("[^ ]*")
        elif ch == "?":
            out.append("[^ ]")
        elif ch.isalnum() or ch in " '-":
            out.append(ch)
        else:
            out.append("\\" + ch)
    return "".join(out)


def normalize_date(value: str | date | None) -> str | None:
    """``YYYYMMDD`` from ``YYYYMMDD``, ``YYYY-MM-DD`` or a date; ValueError otherwise."""
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value.strftime("%Y%m%d")
    m = _DATE.match(value.strip())
    if not m:
        raise ValueError(f"{value!r} is not a date; use YYYYMMDD or YYYY-MM-DD")
    date(int(m[1]), int(m[2]), int(m[3]))  # rejects 2024-02-30
    return m[1] + m[2] + m[3]


def looks_like_identifier(text_: str) -> bool:
    """One word with a digit in it: a Patient ID or Accession Number, not a name."""
    word = text_.strip()
    return bool(word) and " " not in word and any(ch.isdigit() for ch in word)


def _spellings(value: str) -> list[str]:
    value = value.strip()
    return list(dict.fromkeys([value, value.upper()]))


def _id_prefix(conn: Connection, value: str) -> ColumnElement[bool]:
    """Patient ID starts with one of the spellings of ``value`` (exact included)."""
    conds: list[ColumnElement[bool]] = []
    for v in _spellings(value):
        if conn.dialect.name == "postgresql":  # served by the text_pattern_ops index
            conds.append(Patient.patient_id.like(f"{_escape_like(v)}%", escape="\\"))
        else:  # a range on the B-tree: every string that starts with v
            conds.append(and_(Patient.patient_id >= v, Patient.patient_id < v + "\U0010ffff"))
    return or_(*conds)


def _id_condition(conn: Connection, value: str, with_accession: bool) -> ColumnElement[bool]:
    if not with_accession:
        return _id_prefix(conn, value)
    # A union, not an OR: each branch keeps its own index on both databases.
    return Patient.id.in_(union(
        select(Patient.id).where(_id_prefix(conn, value)),
        select(Study.patient_pk).where(Study.accession_number.in_(_spellings(value)))))


def _id_score(conn: Connection, value: str) -> ColumnElement[int]:
    """100 for the exact Patient ID, 60 for a prefix (an accession match scores 0)."""
    return case((Patient.patient_id.in_(_spellings(value)), 100),
                (_id_prefix(conn, value), 60), else_=0)


def _score_expr(conn: Connection, q: SearchQuery, terms: list[NameTerm], ident: str | None
                ) -> ColumnElement[int]:
    parts = [t.score_expr() for t in terms]
    parts += [_id_score(conn, v) for v in (ident, q.patient_id) if v]
    total: ColumnElement[int] = literal(0)
    for part in parts:
        total = total + part
    return total


# -- candidates ------------------------------------------------------------------------

@dataclass(slots=True)
class Candidate:
    pk: int
    nas: str
    patient_id: str
    name_key: str
    birth_date: str | None
    latest: str | None
    score: int = 0
    distance: int = 0


def _study_conditions(q: SearchQuery) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if q.modalities:
        # Study.modalities holds its series' modalities as "CT\\SR" (kept by the store):
        # matching it avoids a series lookup per study.
        mods = sorted({m.strip().upper() for m in q.modalities if m.strip()})
        padded = literal("\\") + Study.modalities + literal("\\")
        conds.append(or_(*(padded.like(f"%\\{_escape_like(m, '!')}\\%", escape="!")
                           for m in mods)))
    if q.date_from:
        conds.append(Study.study_date >= normalize_date(q.date_from))
    if q.date_to:
        conds.append(Study.study_date <= normalize_date(q.date_to))
    if q.accession:
        conds.append(Study.accession_number.in_(_spellings(q.accession)))
    return conds


def _fts_condition(conn: Connection, match: str) -> ColumnElement[bool]:
    """SQLite: patients whose name key the FTS5 trigram index matches."""
    sub = text("SELECT rowid FROM patient_fts WHERE patient_fts MATCH :fts").bindparams(
        fts=match).columns(column("rowid"))
    return Patient.id.in_(sub)


def _phrase(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def _name_conditions(conn: Connection, terms: list[NameTerm]) -> list[ColumnElement[bool]]:
    phrases = [p for t in terms for p in t.fts_phrases()]
    if conn.dialect.name != "sqlite":
        # PostgreSQL: a LIKE on the literal runs of a wildcard lets the planner pick the
        # trigram index, which it does not for the regular expression alone
        return [t.condition() for t in terms] + [
            Patient.name_key.like(f"%{_escape_like(p)}%", escape="\\")
            for t in terms if t.kind == "wildcard" for p in t.fts_phrases()]
    conds: list[ColumnElement[bool]] = []
    if phrases:
        conds.append(_fts_condition(conn, " AND ".join(map(_phrase, phrases))))
    # SQLite runs REGEXP as a Python call per row: a GLOB (C, a superset: its * may span
    # parts) first leaves the regex only the rows that nearly match.
    conds += [Patient.name_key.op("GLOB")(f"* {_glob_escape(t.word)} *")
              for t in terms if t.kind == "wildcard" and WILDCARDS.search(t.word.strip("*"))]
    # FTS5 phrases are case-sensitive substrings of the folded key: where they are the
    # rule itself, a LIKE on every candidate would only repeat them.
    return conds + [t.condition() for t in terms if not (phrases and t.fts_exact())]


@dataclass(frozen=True)
class _Stmt:
    """A candidate query, the expressions that rank it, and a count of its lone records."""

    select: Select
    latest: ColumnElement[str | None]
    score: ColumnElement[int]
    count_alone: Select
    grouped: bool  # driven by studies: rows come only once all are read


@dataclass(frozen=True)
class _FtsQuery:
    """SQLite, a name: the FTS5 query its candidates all match, which the index counts
    without reading a patient row. ``exact``: they are exactly its matches (the name is
    the whole filter and its phrases are its rule); then for one plain word the index
    also finds its score classes, each a subset of the next: whole part (3), start of a
    part (2 or more), anywhere (all)."""

    match: str
    exact: bool
    several: bool  # more than one phrase
    classes: tuple[str, ...] = ()  # substrings of the name key, best class first

    def best_class(self, conn: Connection, flagged: list[Candidate], first: int) -> str:
        """The FTS5 query of the best class holding ``first`` lone records: every lone
        record in it outranks every one outside it, so the page is ranked from it."""
        for sub in self.classes:
            n = _fts_count(conn, _phrase(sub)) - sum(sub in f.name_key for f in flagged)
            if n >= first:
                return _phrase(sub)
        return self.match


def _fts_query(conn: Connection, q: SearchQuery, terms: list[NameTerm]) -> _FtsQuery | None:
    phrases = [p for t in terms for p in t.fts_phrases()]
    if conn.dialect.name != "sqlite" or not phrases:
        return None
    match = " AND ".join(map(_phrase, phrases))
    exact = all(t.fts_exact() for t in terms) and not (
        q.patient_id or q.birth_date or q.nas or _study_conditions(q))
    several = len(phrases) > 1
    if not exact or len(terms) > 1 or terms[0].kind == "wildcard":
        return _FtsQuery(match, exact, several)  # classes of several words: not worth it
    word = terms[0].word
    classes = (f" {word} ", f" {word}") if terms[0].kind == "fragment" else (f" {word} ",)
    return _FtsQuery(match, exact, several, classes)


def _candidate_stmt(conn: Connection, q: SearchQuery, conds: list[ColumnElement[bool]],
                    score: ColumnElement[int] | None = None) -> _Stmt:
    """Patient records meeting ``conds`` and the query's other filters, with their score
    and the date of their latest study among those meeting the study filters."""
    study_conds = _study_conditions(q)
    where = list(conds)
    if q.patient_id:
        where.append(_id_condition(conn, q.patient_id, with_accession=False))
    if q.birth_date:
        where.append(Patient.birth_date == normalize_date(q.birth_date))
    if q.nas:
        where.append(Nas.name.in_(q.nas))
    cols = (Patient.id, Nas.name, Patient.patient_id, Patient.name_key, Patient.birth_date)
    # Labelled: ORDER BY names it instead of computing it again.
    score = (literal(0) if score is None else score).label("score")
    alone = ~Patient.may_link
    if study_conds:  # driven by the studies that qualify
        joined = (select(*cols).join(Nas, Nas.id == Patient.nas_id)
                  .join(Study, and_(Study.patient_pk == Patient.id, *study_conds))
                  .where(*where))
        latest = func.max(Study.study_date)
        stmt = joined.add_columns(latest, score, Patient.may_link).group_by(
            *cols, Patient.may_link)
        count = joined.with_only_columns(func.count(Patient.id.distinct())).where(alone)
        return _Stmt(stmt, latest, score, count, True)
    # The patient's latest study is kept in its row (migration 0003): no seek per candidate.
    stmt = (select(*cols, Patient.latest_study, score, Patient.may_link)
            .join(Nas, Nas.id == Patient.nas_id).where(*where))
    count = stmt.with_only_columns(func.count()).where(alone)
    return _Stmt(stmt, Patient.latest_study, score, count, False)


def _candidates(conn: Connection, q: SearchQuery, conds: list[ColumnElement[bool]],
                score: ColumnElement[int] | None = None) -> list[Candidate]:
    """Every candidate (the typo-tolerant pass filters them in Python)."""
    stmt = _candidate_stmt(conn, q, conds, score).select
    return [Candidate(*row[:7]) for row in conn.execute(stmt).all()]


def _bytes_order(conn: Connection, expr: ColumnElement) -> ColumnElement:
    """Strings compared by code point, as Python does: SQLite's BINARY collation already
    does; PostgreSQL needs "C" (its default collation orders by language rules)."""
    return expr.collate("C") if conn.dialect.name == "postgresql" else expr


SMALL = 300  # candidates fetched whole and ranked in Python, as one query


def _exact_people(conn: Connection, q: SearchQuery, conds: list[ColumnElement[bool]],
                  score: ColumnElement[int], first: int, fts: _FtsQuery | None = None
                  ) -> tuple[list[list[Candidate]], int]:
    """The best ``first`` people (at least), ranked, and the number of people matching.

    Few candidates (at most SMALL) are read in one query. Else a record without
    ``may_link``, a person on its own, is ranked by the database (in the order of
    :func:`_rank`), which hands over the best ``first``, so a fragment matching
    thousands of patients sends a page, not thousands of rows; the flagged records come
    in full and are grouped in Python. The best ``first`` people are among those groups
    and the lone records read."""
    c = _candidate_stmt(conn, q, conds, score)
    order = [c.score.desc(), _bytes_order(conn, func.coalesce(c.latest, "")).desc(),
             _bytes_order(conn, Nas.name), _bytes_order(conn, Patient.patient_id)]
    # One word may match thousands (count first, in the index); several words together
    # rarely do (try the one query first, and spare the index a second AND of them).
    bound = _fts_count(conn, fts.match) if fts is not None and not fts.several else None
    # Unordered and ungrouped, the query stops after SMALL + 1 rows: cheap to try.
    if not c.grouped and (bound is None or bound <= SMALL):
        rows = conn.execute(c.select.limit(SMALL + 1)).all()
        if len(rows) <= SMALL:
            people = _group([Candidate(*row[:7]) for row in rows])
            return _rank(people, similar=False), len(people)
    if fts is not None and bound is None:
        bound = _fts_count(conn, fts.match)
    # Bare ``may_link`` (SQLite: "= 1") is the WHERE of ix_patient_flagged: a probe in
    # that small index, not a read of the row, tells whether a candidate is flagged.
    flagged = [Candidate(*row[:7]) for row in conn.execute(c.select.where(Patient.may_link))]
    n_alone = None
    if fts is not None and fts.exact:
        n_alone = bound - len(flagged)
        if n_alone > first:  # rank only the best score class that fills the page
            c = _candidate_stmt(conn, q, [_fts_condition(conn, fts.best_class(
                conn, flagged, first))], score)
    stmt = c.select.where(~Patient.may_link).order_by(*order).limit(first)
    # A name the index only narrows (an inner wildcard: a regex per row on SQLite) is
    # counted by the same scan that ranks it rather than by a second one.
    counted = fts is not None and n_alone is None
    rows = conn.execute(stmt.add_columns(func.count().over()) if counted else stmt).all()
    top = [Candidate(*row[:7]) for row in rows]
    if counted:
        n_alone = rows[0][-1] if rows else 0
    elif n_alone is None:
        n_alone = len(top) if len(top) < first else conn.scalar(c.count_alone)
    linked = _group(flagged)
    return _rank([[t] for t in top] + linked, similar=False), n_alone + len(linked)


_FTS_COUNT = text("SELECT count(*) FROM patient_fts WHERE patient_fts MATCH :m")


def _fts_count(conn: Connection, match: str) -> int:
    """Matches of an FTS5 query, counted in the index (no patient row is read)."""
    return conn.scalar(_FTS_COUNT, {"m": match})


# -- ranking and grouping --------------------------------------------------------------

def _group(cands: list[Candidate]) -> list[list[Candidate]]:
    """People: records on different NAS devices with the same Patient ID, or the same
    name and birth date, joined transitively (union-find)."""
    parent = list(range(len(cands)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_id: dict[str, int] = {}
    by_person: dict[tuple[str, str], int] = {}
    for i, c in enumerate(cands):
        for index, key in ((by_id, c.patient_id),
                           (by_person, (c.name_key, c.birth_date) if c.name_key and c.birth_date
                            else None)):
            if key is None:
                continue
            j = index.setdefault(key, i)
            if j != i and cands[j].nas != c.nas:
                parent[find(i)] = find(j)
    groups: dict[int, list[Candidate]] = {}
    for i, c in enumerate(cands):
        groups.setdefault(find(i), []).append(c)
    return [g if len(g) == 1 else sorted(g, key=lambda c: (c.nas, c.patient_id))
            for g in groups.values()]


def _rank(groups: list[list[Candidate]], similar: bool) -> list[list[Candidate]]:
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


def link_reason(records: list[tuple[str, str, str, str | None]]) -> str | None:
    """Why records ``(nas, patient_id, name_key, birth_date)`` are one person, or None
    for a single record."""
    if len(records) < 2:
        return None
    where = ", ".join(nas for nas, *_ in records)
    if len({pid for _, pid, *_ in records}) == 1:
        return f"Same Patient ID on {where}."
    ids = "; ".join(f"{nas}: {pid}" for nas, pid, *_ in records)
    return (f"Same name and birth date on {where} (Patient IDs differ: {ids}). "
            "Shown together for convenience; check before treating them as one person.")


# -- the search ------------------------------------------------------------------------

def search(engine: Engine, q: SearchQuery) -> SearchResult:
    """People matching ``q``, best first, one page of them (``limit``/``offset``)."""
    text_ = (q.text or "").strip()
    ident = text_ if looks_like_identifier(text_) else None
    terms = [] if ident else [NameTerm.parse(w) for w in name_words(text_)
                              if WILDCARDS.sub("", w)]
    with engine.connect() as conn:
        conds = ([_id_condition(conn, ident, with_accession=True)] if ident
                 else _name_conditions(conn, terms))
        # ``people`` holds the best offset + limit people only; ``n_exact`` counts all.
        people, n_exact = _exact_people(conn, q, conds, _score_expr(conn, q, terms, ident),
                                        q.offset + q.limit, _fts_query(conn, q, terms))
        similar: list[list[Candidate]] = []
        if q.fuzzy and terms and not n_exact:  # a fallback: only when nothing matched
            similar = _rank(_group(_similar(conn, q, terms, set())), similar=True)
        page = (people + similar)[q.offset:q.offset + q.limit]
        hits = _load_patients(conn, [c.pk for g in page for c in g], _study_conditions(q))
    persons = []
    for n, group in enumerate(page, q.offset):
        records = [hits[c.pk] for c in group]
        reason = link_reason([(c.nas, c.patient_id, c.name_key, c.birth_date) for c in group])
        match = "similar" if n >= n_exact else "exact"
        for r in records:
            r.match, r.person, r.linked_because = match, n, reason
        persons.append(PersonHit(records, match, reason))
    notes = _notes(q, terms, n_exact, len(similar))
    return SearchResult([r for p in persons for r in p.records], n_exact + len(similar),
                        persons, len(similar), notes)


def _similar(conn: Connection, q: SearchQuery, terms: list[NameTerm], exclude: set[int]
             ) -> list[Candidate]:
    """The typo-tolerant pass: names sharing a trigram with each typed word that may have
    a typo, then kept only if every word matches exactly or within its edit budget."""
    fuzzy = [t for t in terms if t.kind != "wildcard" and typo_budget(t.word)]
    if not fuzzy:
        return []
    strict = [t for t in terms if t not in fuzzy]
    conds = [t.condition() for t in strict]
    groups = [sorted(_fuzzy_trigrams(t.word)) for t in fuzzy]
    if conn.dialect.name == "sqlite":
        match = " AND ".join("(" + " OR ".join(map(_phrase, g)) + ")" for g in groups)
        conds.append(_fts_condition(conn, match))
    else:
        conds += [or_(*(Patient.name_key.like(f"%{_escape_like(t)}%", escape="\\")
                        for t in g)) for g in groups]
    found = []
    memo: dict[tuple[str, str], int] = {}
    for c in _candidates(conn, q, conds):
        if c.pk in exclude:
            continue
        parts = c.name_key.split()
        total = 0
        for t in terms:
            if t.score(parts):
                continue
            d = t.distance(parts, memo)
            if d is None:
                break
            total += d
        else:
            if total:
                c.distance = total
                found.append(c)
    return found


def _fuzzy_trigrams(word: str) -> set[str]:
    """Trigrams of the word and of each one-letter deletion of it: a swapped or wrong
    letter in a short word changes all its own trigrams, but rarely those of the
    deletions too ('jhon' -> 'jon' shares ' jo' with 'john')."""
    variants = {word} | {word[:i] + word[i + 1:] for i in range(len(word))}
    return {t for v in variants if len(v) >= 2 for t in word_trigrams(v)}


def _notes(q: SearchQuery, terms: list[NameTerm], exact: int, similar: int) -> list[str]:
    notes = []
    if similar:
        notes.append(f"{similar} similar name(s) added after the exact matches "
                     "(typo-tolerant; check the spelling).")
    if exact + similar == 0:
        tips = ["fewer words", "a '*' wildcard (e.g. 'mul*')"]
        if any(len(t.word) < MIN_FRAGMENT for t in terms):
            tips.append("at least three letters to match inside a name")
        if q.modalities or q.date_from or q.date_to or q.nas or q.birth_date:
            tips.append("fewer filters")
        notes.append("No patient matches. Try " + ", ".join(tips) + ".")
    return notes


def _load_patients(conn: Connection, pks: list[int], study_conds: list
                   ) -> dict[int, PatientHit]:
    if not pks:
        return {}
    hits = {}
    for pk, nas, pid, name, birth, sex in conn.execute(_patients_stmt(), {"pks": pks}):
        hits[pk] = PatientHit(nas, pid, name, birth, sex)
    for ppk, study in _studies(conn, pks, study_conds):
        hits[ppk].studies.append(study)
    return hits


@cache
def _patients_stmt() -> Select:
    """Built once: constructing a statement costs about as much as running this one."""
    return (select(Patient.id, Nas.name, Patient.patient_id, Patient.patient_name,
                   Patient.birth_date, Patient.sex)
            .join(Nas, Nas.id == Patient.nas_id)
            .where(Patient.id.in_(bindparam("pks", expanding=True))))


@cache
def _studies_stmt() -> Select:
    """The page's studies, built once (the study filters are added per search)."""
    # Correlated counts: a few index seeks per study, whatever the size of the index.
    n_series = (select(func.count()).select_from(Series).where(Series.study_pk == Study.id)
                .scalar_subquery())
    n_files = (select(func.count()).select_from(Instance)
               .join(Series, Series.id == Instance.series_pk)
               .where(Series.study_pk == Study.id, Instance.missing_since.is_(None))
               .scalar_subquery())
    return (select(Study.patient_pk, Study.study_uid, Study.study_date, Study.description,
                   Study.modalities, Study.accession_number, n_series, n_files)
            .where(Study.patient_pk.in_(bindparam("pks", expanding=True)))
            .order_by(Study.study_date.desc().nulls_last(), Study.study_uid))


def _studies(conn: Connection, patient_pks: list[int], study_conds: list
             ) -> Iterable[tuple[int, StudyHit]]:
    stmt = _studies_stmt().where(*study_conds) if study_conds else _studies_stmt()
    for ppk, uid, day, desc, mods, acc, series, files in conn.execute(
            stmt, {"pks": patient_pks}).all():
        yield ppk, StudyHit(uid, day, desc, [m for m in mods.split("\\") if m], acc,
                            series, files)


# -- one patient: the patient page -----------------------------------------------------

def patient(engine: Engine, nas: str, patient_id: str) -> PersonHit | None:
    """One patient record with every study, plus the records of the same person on other
    NAS devices (same Patient ID, or same name and birth date), each with its studies."""
    with engine.connect() as conn:
        row = conn.execute(select(Patient.id, Patient.name_key, Patient.birth_date)
                           .join(Nas, Nas.id == Patient.nas_id)
                           .where(Nas.name == nas, Patient.patient_id == patient_id)).first()
        if row is None:
            return None
        same_person = Patient.patient_id == patient_id
        if row.name_key and row.birth_date:
            same_person = or_(same_person, and_(Patient.name_key == row.name_key,
                                                Patient.birth_date == row.birth_date))
        others = conn.execute(select(Patient.id, Nas.name, Patient.patient_id,
                                     Patient.name_key, Patient.birth_date)
                              .join(Nas, Nas.id == Patient.nas_id)
                              .where(same_person, Nas.name != nas)).all()
        cands = [Candidate(row.id, nas, patient_id, row.name_key, row.birth_date, None)]
        cands += [Candidate(pk, n, pid, key, birth, None) for pk, n, pid, key, birth in others]
        hits = _load_patients(conn, [c.pk for c in cands], [])
    group = sorted(cands, key=lambda c: (c.nas != nas, c.nas, c.patient_id))
    reason = link_reason([(c.nas, c.patient_id, c.name_key, c.birth_date) for c in group])
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


def study_tree(engine: Engine, nas: str, patient_id: str) -> list[StudyNode]:
    """Studies (latest first) and series of one record, with the folder of each as the
    workstation sees it. A folder is the deepest one holding all of its present files."""
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
            .where(Nas.name == nas, Patient.patient_id == patient_id)
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
                studies[st_uid] = StudyNode(st_uid, day, desc, acc,
                                            [m for m in mods.split("\\") if m], "", "")
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


def series_files(engine: Engine, nas: str, series_uid: str) -> list[dict[str, Any]]:
    """The present files of one series in slice order, with their paths."""
    stmt = (select(Instance.sop_instance_uid, Instance.instance_number, Instance.rel_path,
                   Instance.file_format, Instance.size, Nas.root, Nas.display_root)
            .join(Series, Series.id == Instance.series_pk)
            .join(Nas, Nas.id == Instance.nas_id)
            .where(Nas.name == nas, Series.series_uid == series_uid,
                   Instance.missing_since.is_(None))
            .order_by(Instance.instance_number.nulls_last(), Instance.rel_path))
    with engine.connect() as conn:
        return [{"sop_instance_uid": r.sop_instance_uid, "instance_number": r.instance_number,
                 "rel_path": r.rel_path, "format": r.file_format, "size": r.size,
                 "display_path": display_path(r.display_root, r.root, r.rel_path)}
                for r in conn.execute(stmt)]


def nas_roots(engine: Engine) -> dict[str, str]:
    """Each NAS's root as recorded in the index: previews may read only below these."""
    with engine.connect() as conn:
        return dict(conn.execute(select(Nas.name, Nas.root)).all())


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


def facets(engine: Engine) -> dict[str, Any]:
    """What the filters can offer: the modalities and NAS devices in the index, and the
    number of patient records (0 means the index is empty)."""
    with engine.connect() as conn:
        modalities = [m for (m,) in conn.execute(
            select(Series.modality).distinct().where(Series.modality.is_not(None))
            .order_by(Series.modality))]
        nas = [n for (n,) in conn.execute(select(Nas.name).order_by(Nas.name))]
        records = conn.scalar(select(func.count()).select_from(Patient)) or 0
    return {"modalities": modalities, "nas": nas, "patients": records}
