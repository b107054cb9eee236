"""SQLite: names through the rank-ordered FTS5 trigram table ``patient_rank_fts``
(migration 0005). Its rowid is ``latest study (YYYYMMDD) << 32 | patient id``: read
backwards, the matches of a name come latest first, so the best page of a name matching
thousands is the first rows of the index; its ``tags`` column (``N<nas id>N``, ``LNK``)
lets the index alone count a name's matches per NAS and without the records that may
link."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, String, and_, bindparam, column, func, literal, select, table, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql import ColumnElement, TextClause

from nasindex.index.models import Patient
from nasindex.search.backends.base import Backend
from nasindex.search.limits import COUNT_LIMIT, FLAGGED_LIMIT, Deadline
from nasindex.search.people import Candidate
from nasindex.search.terms import NameTerm, any_part_matches, folded_match, glob_escape

if TYPE_CHECKING:
    from nasindex.search.plan import Plan

WILDCARD_FUNCTION = "nasindex_wildcard"  # any_part_matches, registered per search
DICOM_FUNCTION = "nasindex_dicom_match"  # folded_match, registered per search
PROGRESS_STEPS = 5000  # SQLite virtual machine steps between two looks at the clock
ID_BITS = 32  # the low bits of a rowid: the patient id; above them the latest study
ID_MASK = (1 << ID_BITS) - 1
LONE = ' NOT tags : "LNK"'  # records that may not link
LINKED = ' AND tags : "LNK"'
_FTS = table("patient_rank_fts", column("rowid"), column("patient_rank_fts"))
# A NAS filter as tags, from the NAS names inside the statement (no extra round trip).
_NAS_TAGS = ("coalesce((SELECT ' AND tags : (' || group_concat('\"N' || id || 'N\"', ' OR ')"
             " || ')' FROM nas WHERE name IN :nas), ' AND tags : \"N0N\"')")


def phrase(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def name_match(terms: list[NameTerm]) -> str:
    """The FTS5 query that every match of ``terms`` meets; empty if the index cannot
    narrow them (no run of three characters)."""
    phrases = [p for t in terms for p in t.fts_phrases()]
    return f"name_key : ({' AND '.join(map(phrase, phrases))})" if phrases else ""


def score_classes(term: NameTerm) -> list[tuple[int, str]]:
    """(score, FTS5 query) of each score class of one term the index matches exactly,
    best first; the classes do not overlap and together are the term's matches."""
    if term.kind == "wildcard":
        return [(2, name_match([term]))]
    whole, start = phrase(f" {term.word} "), phrase(f" {term.word}")
    classes = [(3, f"name_key : {whole}"), (2, f"name_key : ({start} NOT {whole})")]
    if term.kind == "fragment":
        classes.append((1, f"name_key : ({phrase(term.word)} NOT {start})"))
    return classes


def fts_ids(match: ColumnElement[str]) -> ColumnElement[bool]:
    """Patients whose name the FTS5 query ``match`` finds."""
    ids = select(_FTS.c.rowid.op("&")(ID_MASK)).where(_FTS.c.patient_rank_fts.op("MATCH")(match))
    return Patient.id.in_(ids)


class SqliteBackend(Backend):
    dialect = "sqlite"

    @contextmanager
    def bounded(self, conn: Connection, deadline: Deadline) -> Iterator[None]:
        raw = conn.connection.driver_connection
        raw.create_function(WILDCARD_FUNCTION, 2, any_part_matches, deterministic=True)
        raw.create_function(DICOM_FUNCTION, 2, folded_match, deterministic=True)
        # A progress handler that answers true interrupts the statement running.
        raw.set_progress_handler(deadline.passed, PROGRESS_STEPS)
        try:
            yield
        except OperationalError as exc:
            if isinstance(exc.orig, sqlite3.OperationalError) and deadline.passed():
                raise deadline.error() from None
            raise
        finally:
            raw.set_progress_handler(None, 0)

    def wildcard_part(self, value: ColumnElement[str]) -> ColumnElement[bool]:
        return getattr(func, WILDCARD_FUNCTION)(Patient.name_key, value, type_=Boolean)

    def wildcard_value(self, word: str) -> str:
        return word

    def id_prefix(self, name: str) -> ColumnElement[bool]:
        # A range on the B-tree: every string that starts with the value.
        return and_(Patient.patient_id >= bindparam(f"{name}_lo"),
                    Patient.patient_id < bindparam(f"{name}_hi"))

    def id_prefix_params(self, name: str, value: str) -> dict[str, str]:
        return {f"{name}_lo": value, f"{name}_hi": value + "\U0010ffff"}

    def prefix(self, expr: ColumnElement[str], value: str) -> ColumnElement[bool]:
        # A range on the B-tree: every string that starts with value.
        return and_(expr >= value, expr < value + "\U0010ffff")

    def dicom_wildcard(self, expr: ColumnElement[str], pattern: str, fold_case: bool
                       ) -> ColumnElement[bool]:
        if fold_case:  # SQLite's own upper() and NOCASE know ASCII only
            return getattr(func, DICOM_FUNCTION)(expr, literal(pattern), type_=Boolean)
        return expr.op("GLOB")(glob_escape(pattern))

    def name_conditions(self, terms: list[NameTerm]) -> list[ColumnElement[bool]]:
        indexed = bool(name_match(terms))
        conds = [fts_ids(bindparam("fts", type_=String))] if indexed else []
        # A word with '?' inside is a GLOB (in C) that is the rule itself. With a '*'
        # inside, the GLOB is a superset (its * may span parts): the wildcard function,
        # in Python, then checks only the rows that nearly match.
        conds += [Patient.name_key.op("GLOB")(bindparam(f"t{i}_glob"))
                  for i, t in enumerate(terms) if t.inner_wildcard]
        # Where the FTS5 phrases or the GLOB are the rule, a check per row would only
        # repeat them.
        return conds + [t.condition(self, f"t{i}") for i, t in enumerate(terms)
                        if not (indexed and t.fts_exact())
                        and not (t.inner_wildcard and not t.inner_star)]

    def name_params(self, terms: list[NameTerm]) -> dict[str, str]:
        params = {"fts": name_match(terms)}
        return params | {f"t{i}_glob": f"* {glob_escape(t.word)} *"
                         for i, t in enumerate(terms) if t.inner_wildcard}

    def any_trigram(self, groups: list[list[str]]) -> list[ColumnElement[bool]]:
        match = " AND ".join("(" + " OR ".join(map(phrase, g)) + ")" for g in groups)
        return [fts_ids(literal(f"name_key : ({match})"))]

    # -- one name word, counted and ranked by the index alone ---------------------------

    def native_people(self, conn: Connection, plan: Plan, first: int
                      ) -> tuple[list[Candidate], list[Candidate], int] | None:
        if not _native(plan):
            return None
        count = _run(conn, plan, "count", plan.params["fts"], LONE, limit=COUNT_LIMIT + 1
                     ).scalar()
        flagged = _candidates(_run(conn, plan, "rows", plan.params["fts"], LINKED,
                                   limit=FLAGGED_LIMIT + 1))
        for c in flagged:  # the same score as the classes give, from the same rule
            c.score = plan.terms[0].score(c.name_key.split())
        top: list[Candidate] = []
        for score, match in score_classes(plan.terms[0]):
            top += _best_of_class(conn, plan, match, score, first - len(top))
            if len(top) >= first:
                break
        return top, flagged, count


def _native(plan: Plan) -> bool:
    """One name word the index matches exactly, and no filter but the NAS."""
    q = plan.q
    return (len(plan.terms) == 1 and plan.terms[0].fts_exact() and not plan.ident
            and not (q.patient_id or q.birth_date or plan.by_study))


_ROWS = ("SELECT p.id, nas.name, p.patient_id, p.name_key, p.birth_date, p.latest_study, "
         "0, p.patient_name, p.sex, p.may_link, f.r FROM ({}) AS f "
         "JOIN patient AS p ON p.id = f.r & " + str(ID_MASK) + " JOIN nas ON nas.id = p.nas_id")
_SHAPES = {  # {} is the index query, which selects ``rowid AS r``
    "count": ("SELECT count(*) FROM ({})", " LIMIT :limit"),
    "rows": (_ROWS, " LIMIT :limit"),  # in no order
    "walk": (_ROWS + " ORDER BY f.r DESC", " ORDER BY rowid DESC LIMIT :limit"),
    "tied": (_ROWS + " ORDER BY nas.name, p.patient_id LIMIT :limit",
             " AND rowid BETWEEN :lo AND :hi"),
}


@cache
def _statement(shape: str, nas: bool) -> TextClause:
    """A statement over the rank index, whose MATCH is ``:name`` + the NAS tags (when
    the plan has a NAS filter) + ``:tail``."""
    outer, rest = _SHAPES[shape]
    match = f":name || {_NAS_TAGS} || :tail" if nas else ":name || :tail"
    inner = ("SELECT rowid AS r FROM patient_rank_fts "
             f"WHERE patient_rank_fts MATCH ({match}){rest}")
    stmt = text(outer.format(inner))
    return stmt.bindparams(bindparam("nas", expanding=True)) if nas else stmt


def _run(conn: Connection, plan: Plan, shape: str, name: str, tail: str, **params):
    values = {"name": name, "tail": tail, **params}
    if plan.q.nas:
        values["nas"] = list(plan.q.nas)
    return conn.execute(_statement(shape, bool(plan.q.nas)), values)


def _candidates(rows, score: int | None = None) -> list[Candidate]:
    return [Candidate.from_row(r, score) for r in rows]


def _best_of_class(conn: Connection, plan: Plan, match: str, score: int, need: int
                   ) -> list[Candidate]:
    """The ``need`` best lone records of one score class, in rank order."""
    rows = _run(conn, plan, "walk", match, LONE, limit=need + 1).all()
    if len(rows) > need and rows[need].r >> ID_BITS == rows[need - 1].r >> ID_BITS:
        # The page ends among records of one latest date: those are ranked by NAS and
        # Patient ID, which the rowid does not know.
        day = rows[need - 1].r >> ID_BITS
        before = [r for r in rows if r.r >> ID_BITS > day]
        tied = _run(conn, plan, "tied", match, LONE, lo=day << ID_BITS,
                    hi=(day << ID_BITS) | ID_MASK, limit=need - len(before))
        return _candidates(before, score) + _candidates(tied, score)
    return _candidates(rows[:need], score)
