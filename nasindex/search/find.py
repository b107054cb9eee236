"""The search itself: people matching a query, best first, one page of them."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.engine import Engine

from nasindex.index.db import for_search
from nasindex.search.backends import backend
from nasindex.search.candidates import exact_people
from nasindex.search.limits import COUNT_LIMIT, TIME_LIMIT, Deadline, check_query
from nasindex.search.people import Candidate, group, link_reason, rank
from nasindex.search.plan import Plan
from nasindex.search.query import (
    PatientHit,
    PersonHit,
    SearchQuery,
    SearchResult,
    looks_like_identifier,
)
from nasindex.search.records import load_patients
from nasindex.search.scope import Scope, visible_nas
from nasindex.search.similar import similar
from nasindex.search.terms import MIN_FRAGMENT, NameTerm, parse_terms


def search(engine: Engine, q: SearchQuery, *, scope: Scope,
           time_limit: float = TIME_LIMIT) -> SearchResult:
    """People matching ``q`` on the NAS devices of ``scope`` (None: all), best first, one
    page of them (``limit``/``offset``). People are ranked and counted up to
    COUNT_LIMIT; ``total_exact`` is false when more match.

    QueryError if the query cannot be run as asked (limits.py says what is refused),
    SearchTimeout if it runs longer than ``time_limit`` seconds."""
    check_query(q)
    deadline = Deadline.after(time_limit)
    visible = visible_nas(scope, q.nas)
    text = (q.text or "").strip()
    ident = text if looks_like_identifier(text) else None
    terms = [] if ident else parse_terms(text)
    if visible is not None and not visible:  # nothing the caller may see
        return SearchResult([], 0, notes=_notes(q, terms, 0, 0))
    first = min(q.offset + q.limit, COUNT_LIMIT)
    with for_search(engine).connect() as conn:
        db = backend(conn)
        # The scope narrows the NAS filter: the rest of the search sees one NAS filter.
        plan = Plan(db, replace(q, nas=sorted(visible or ())), terms, ident)
        with db.bounded(conn, deadline):
            exact, n_exact, counted = exact_people(conn, plan, first)
            found: list[list[Candidate]] = []
            if q.fuzzy and terms and not n_exact:  # a fallback: only when nothing matched
                deadline.check()
                found = rank(group(similar(conn, plan, deadline)), similar=True)
            page = (exact + found)[q.offset:first]
            deadline.check()
            hits = load_patients(conn, [c for g in page for c in g], plan)
    persons = [_person(g, hits, n, n_exact) for n, g in enumerate(page, q.offset)]
    total = min(n_exact + len(found), COUNT_LIMIT)
    exact_total = counted and n_exact + len(found) <= COUNT_LIMIT
    return SearchResult([r for p in persons for r in p.records], total, persons, len(found),
                        _notes(q, terms, n_exact, len(found), exact_total), exact_total)


def _person(group_: list[Candidate], hits: dict[int, PatientHit], n: int, n_exact: int
            ) -> PersonHit:
    records = [hits[c.pk] for c in group_]
    reason = link_reason(group_)
    match = "similar" if n >= n_exact else "exact"
    for r in records:
        r.match, r.person, r.linked_because = match, n, reason
    return PersonHit(records, match, reason)


def _notes(q: SearchQuery, terms: list[NameTerm], exact: int, similar: int,
           counted: bool = True) -> list[str]:
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
    if not counted:
        notes.append(f"More than {COUNT_LIMIT:,} people match: the best {COUNT_LIMIT:,} are "
                     "listed. Type more of the name, or add a filter.")
    return notes
