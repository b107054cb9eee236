"""The search itself: people matching a query, best first, one page of them."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.engine import Connection, Engine

from nasindex.search.backends import Backend, backend
from nasindex.search.candidates import (
    exact_people,
    id_condition,
    name_only,
    score_expr,
    study_conditions,
)
from nasindex.search.limits import TIME_LIMIT, Deadline, check_query
from nasindex.search.people import Candidate, group, link_reason, rank
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
    page of them (``limit``/``offset``).

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
    # The scope narrows the NAS filter; the rest of the search sees one NAS filter.
    inside = replace(q, nas=sorted(visible or ()))
    with engine.connect() as conn:
        db = backend(conn)
        with db.bounded(conn, deadline):
            exact, n_exact = _exact(conn, db, inside, terms, ident)
            similar_people: list[list[Candidate]] = []
            if q.fuzzy and terms and not n_exact:  # a fallback: only when nothing matched
                deadline.check()
                similar_people = rank(group(similar(conn, db, inside, terms, deadline)),
                                      similar=True)
            page = (exact + similar_people)[q.offset:q.offset + q.limit]
            deadline.check()
            hits = load_patients(conn, [c.pk for g in page for c in g],
                                 study_conditions(inside))
    persons = [_person(g, hits, n, n_exact) for n, g in enumerate(page, q.offset)]
    return SearchResult([r for p in persons for r in p.records],
                        n_exact + len(similar_people), persons, len(similar_people),
                        _notes(q, terms, n_exact, len(similar_people)))


def _exact(conn: Connection, db: Backend, q: SearchQuery, terms: list[NameTerm],
           ident: str | None) -> tuple[list[list[Candidate]], int]:
    """The best offset + limit people matching exactly, ranked; and how many match."""
    conds = ([id_condition(db, ident, with_accession=True)] if ident
             else db.name_conditions(terms))
    names = db.name_index(terms, name_only(q)) if terms else None
    return exact_people(conn, db, q, conds, score_expr(db, q, terms, ident),
                        q.offset + q.limit, names)


def _person(group_: list[Candidate], hits: dict[int, PatientHit], n: int, n_exact: int
            ) -> PersonHit:
    records = [hits[c.pk] for c in group_]
    reason = link_reason(group_)
    match = "similar" if n >= n_exact else "exact"
    for r in records:
        r.match, r.person, r.linked_because = match, n, reason
    return PersonHit(records, match, reason)


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
