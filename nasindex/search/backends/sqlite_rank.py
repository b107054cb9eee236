"""SQLite: one name word counted and ranked by the rank-ordered name index.

``patient_rank_fts`` (migration 0005) holds each patient under the rowid ``latest study
(YYYYMMDD) << 32 | patient id``: read backwards, the matches of a name come latest
first, so the best page of a name matching thousands is the first rows of the index.
Its ``tags`` column (``N<nas id>N``, ``LNK``) lets the index alone count a name's
matches per NAS and without the records that may link.

The first statement reads the index only: the lone records that match (up to
COUNT_LIMIT + 1) and the records that may link, each FTS5 query read once, in the
index's own order. Up to RANKED_AMONG lone ones: the second statement ranks them (with
the flagged ones, for the caller's grouping) and reads only the best page. More: the
index is read backwards class by class (the rowid says the order but for records of one
day: NAS, then Patient ID, read when the page ends among them), and then the page's
records. A word with a wildcard inside is not what the index holds: each row it finds
is checked against the patient record (the backend's rule for the word) in the same
statements.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, func, literal_column, select, text, union_all
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from nasindex.index.db import NAME_INDEX as FTS
from nasindex.index.models import Nas, Patient
from nasindex.search.limits import COUNT_LIMIT, FLAGGED_LIMIT
from nasindex.search.people import Candidate, Found, candidate_columns, tied_day
from nasindex.search.terms import NameTerm

if TYPE_CHECKING:
    from nasindex.search.plan import Plan

ID_BITS = 32  # the low bits of a rowid: the patient id; above them the latest study
ID_MASK = (1 << ID_BITS) - 1
LONE = ' NOT tags : "LNK"'  # records that may not link
LINKED = ' AND tags : "LNK"'
# Lone matches ranked by reading each record (about 2 us each); past this many, reading
# the index backwards class by class, which stops after a page, costs less.
RANKED_AMONG = 250
_NAMED = SQLiteDialect_pysqlite(paramstyle="named")
# A candidate row's columns, for the statements written as SQL text below.
COLUMNS = ", ".join(str(c.compile(dialect=_NAMED))
                    for c in candidate_columns(Patient.latest_study, literal_column("0")))
_CHECKS: dict[tuple, str] = {}  # per plan shape, compiled once



def phrase(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def name_match(terms: list[NameTerm]) -> str:
    """The FTS5 query that every match of ``terms`` meets; empty if the index cannot
    narrow them (no run of three characters)."""
    phrases = [p for t in terms for p in t.fts_phrases()]
    return f"name_key : ({' AND '.join(map(phrase, phrases))})" if phrases else ""


def score_classes(term: NameTerm) -> list[tuple[int, str]]:
    """(score, FTS5 query) of each score class of one term, best first; the classes do
    not overlap and together hold the term's matches (a superset of them for a word
    with a wildcard inside)."""
    if term.kind == "wildcard":
        return [(2, name_match([term]))]
    whole, start = phrase(f" {term.word} "), phrase(f" {term.word}")
    classes = [(3, f"name_key : {whole}"), (2, f"name_key : ({start} NOT {whole})")]
    if term.kind == "fragment":
        classes.append((1, f"name_key : ({phrase(term.word)} NOT {start})"))
    return classes


def ranks_by_index(plan: Plan) -> bool:
    """One name word the index narrows, and no filter but the NAS."""
    q = plan.q
    return (len(plan.terms) == 1 and bool(plan.terms[0].fts_phrases()) and not plan.ident
            and not (q.patient_id or q.birth_date or plan.by_study))


def people(conn: Connection, plan: Plan, first: int) -> Found:
    """The best ``first`` lone records of the plan's one word (at least; ranked by the
    caller), every record that may link, and how many lone ones match."""
    raw = conn.connection.driver_connection
    check = _check(plan)
    tags = _nas_tags(raw, plan.q.nas)
    values = {**plan.params, "lone": plan.params["fts"] + tags + LONE,
              "linked": plan.params["fts"] + tags + LINKED,
              "count_limit": COUNT_LIMIT + 1, "flagged_limit": FLAGGED_LIMIT + 1}
    # Lone, then flagged: how many, and their patient ids as a JSON list (passed on).
    (_, n_lone, lone), (_, n_linked, linked) = sorted(raw.execute(_matches_sql(check),
                                                                  values))
    if n_lone > RANKED_AMONG:  # many: the best of each class, read latest first
        top, tie = _walk(raw, plan, first, values, check, tags)
        values |= {"ids": json.dumps([r & ID_MASK for r in top]), "linked_ids": linked}
        cands = [Candidate.from_row(r) for r in raw.execute(_rows_sql(tie, check), values)]
        for c in cands:  # the score the classes give, from the same rule
            c.score = plan.terms[0].score(c.name_key.split())
    else:  # few: the flagged ones and the best lone ones, ranked among them
        cands = [Candidate.from_row(r) for r in conn.execute(
            plan.statement("ranked", _ranked),
            plan.params | {"ids": lone, "linked_ids": linked, "n": first + n_linked})]
    return [c for c in cands if not c.may_link], [c for c in cands if c.may_link], n_lone


def _ranked(plan: Plan) -> Select:
    """The records ``:ids`` and ``:linked_ids`` (JSON lists of patient ids): those that
    may link, then the best ``:n`` in all, in rank order."""
    score = plan.score().label("score")
    return (select(*candidate_columns(Patient.latest_study, score))
            .join(Nas, Nas.id == Patient.nas_id)
            .where(Patient.id.in_(union_all(*(select(text("value")).select_from(
                func.json_each(bindparam(ids))) for ids in ("ids", "linked_ids")))))
            .order_by(Patient.may_link.desc(), score.desc(),
                      func.coalesce(Patient.latest_study, "").desc(), Nas.name,
                      Patient.patient_id)
            .limit(bindparam("n")))


def _walk(raw: sqlite3.Connection, plan: Plan, first: int, values: dict, check: str,
          tags: str) -> tuple[list[int], bool]:
    """The rowids of the best ``first`` lone records, class by class (each read latest
    first, until the page is full), and whether the page ends among records of one day
    (``values`` then say which)."""
    top: list[int] = []
    for i, (_, match) in enumerate(score_classes(plan.terms[0])):
        need = first - len(top)
        values[f"c{i}"] = match + tags + LONE
        rowids = [r for (r,) in raw.execute(_walk_sql(i, check), values | {"n": need + 1})]
        day = tied_day([r >> ID_BITS for r in rowids], need)
        if day is not None:
            before = [r for r in rowids if r >> ID_BITS > day]
            values |= {"tie": values[f"c{i}"], "lo": day << ID_BITS,
                       "hi": day << ID_BITS | ID_MASK, "tie_n": need - len(before)}
            return top + before, True
        top += rowids[:need]
        if len(top) >= first:
            break
    return top, False


def _nas_tags(raw: sqlite3.Connection, nas: Sequence[str]) -> str:
    """The FTS5 condition of a NAS filter on the ``tags`` column ("" for none)."""
    if not nas:
        return ""
    marks = ", ".join("?" * len(nas))
    ids = [i for (i,) in raw.execute(f"SELECT id FROM nas WHERE name IN ({marks})", list(nas))]
    return f" AND tags : ({' OR '.join(phrase(f'N{i}N') for i in ids) or phrase('N0N')})"


def _check(plan: Plan) -> str:
    """The word's own rule on the patient row, as SQL (named parameters of the plan),
    where the index alone is not the rule; else ""."""
    term = plan.terms[0]
    if term.fts_exact():
        return ""
    if plan.shape not in _CHECKS:
        rule = plan.db.inner_wildcard("t0", term)
        _CHECKS[plan.shape] = str(rule.compile(dialect=_NAMED))
    return _CHECKS[plan.shape]


def _hits(match: str, check: str, tail: str) -> str:
    """Rowids that the FTS5 query ``:match`` finds (and ``check`` keeps)."""
    join = f" JOIN patient ON patient.id = {FTS}.rowid & {ID_MASK}" if check else ""
    where = f" AND {check}" if check else ""
    return (f"SELECT {FTS}.rowid AS r FROM {FTS}{join} WHERE {FTS} MATCH :{match}{where}"
            f"{tail}")


@cache
def _matches_sql(check: str) -> str:
    """(0, how many, their patient ids) of the lone matches (up to ``:count_limit``),
    (1, ...) of the matches that may link (up to ``:flagged_limit``)."""
    return " UNION ALL ".join(
        f"SELECT {kind}, count(*), json_group_array(r & {ID_MASK}) FROM "
        f"({_hits(match, check, f' LIMIT :{limit}')})"
        for kind, match, limit in ((0, "lone", "count_limit"), (1, "linked", "flagged_limit")))


@cache
def _walk_sql(i: int, check: str) -> str:
    """The first ``:n`` rowids of class ``i`` (FTS5 query ``:c<i>``), latest first."""
    return _hits(f"c{i}", check, f" ORDER BY {FTS}.rowid DESC LIMIT :n")


@cache
def _rows_sql(tie: bool, check: str) -> str:
    """The records ``:ids`` and ``:linked_ids`` (JSON lists); with ``tie``, the first
    ``:tie_n`` of one day of a class (rowids ``:lo``-``:hi``) by NAS and Patient ID."""
    sql = (f"SELECT {COLUMNS} FROM patient JOIN nas ON nas.id = patient.nas_id "
           "WHERE patient.id IN (SELECT value FROM json_each(:ids) "
           "UNION ALL SELECT value FROM json_each(:linked_ids))")
    if not tie:
        return sql
    day = _hits("tie", check, f" AND {FTS}.rowid BETWEEN :lo AND :hi")
    return (f"{sql} UNION ALL SELECT * FROM (SELECT {COLUMNS} FROM ({day}) AS f "
            f"JOIN patient ON patient.id = f.r & {ID_MASK} JOIN nas ON nas.id = patient.nas_id "
            "ORDER BY nas.name, patient.patient_id LIMIT :tie_n)")
