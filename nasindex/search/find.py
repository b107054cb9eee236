"""The search itself: people matching a query, best first, one page of them."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from nasindex.names import name_words
from nasindex.search.backends import backend
from nasindex.search.candidates import (
    exact_people,
    id_condition,
    name_only,
    score_expr,
    study_conditions,
)
from nasindex.search.people import group, link_reason, rank
from nasindex.search.query import (
    PersonHit,
    SearchQuery,
    SearchResult,
    looks_like_identifier,
)
from nasindex.search.records import load_patients
from nasindex.search.similar import similar
from nasindex.search.terms import MIN_FRAGMENT, WILDCARDS, NameTerm


def search(engine: Engine, q: SearchQuery) -> SearchResult:
    """People matching ``q``, best first, one page of them (``limit``/``offset``)."""
    text_ = (q.text or "").strip()
    ident = text_ if looks_like_identifier(text_) else None
    terms = [] if ident else [NameTerm.parse(w) for w in name_words(text_)
                              if WILDCARDS.sub("", w)]
    with engine.connect() as conn:
        db = backend(conn)
        conds = ([id_condition(db, ident, with_accession=True)] if ident
                 else db.name_conditions(terms))
        names = db.name_index(terms, name_only(q)) if terms else None
        # ``people`` holds the best offset + limit people only; ``n_exact`` counts all.
        people, n_exact = exact_people(conn, db, q, conds, score_expr(db, q, terms, ident),
                                       q.offset + q.limit, names)
        found_similar: list[list] = []
        if q.fuzzy and terms and not n_exact:  # a fallback: only when nothing matched
            found_similar = rank(group(similar(conn, db, q, terms)), similar=True)
        page = (people + found_similar)[q.offset:q.offset + q.limit]
        hits = load_patients(conn, [c.pk for g in page for c in g], study_conditions(q))
    persons = []
    for n, grp in enumerate(page, q.offset):
        records = [hits[c.pk] for c in grp]
        reason = link_reason(grp)
        match = "similar" if n >= n_exact else "exact"
        for r in records:
            r.match, r.person, r.linked_because = match, n, reason
        persons.append(PersonHit(records, match, reason))
    notes = _notes(q, terms, n_exact, len(found_similar))
    return SearchResult([r for p in persons for r in p.records], n_exact + len(found_similar),
                        persons, len(found_similar), notes)


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
