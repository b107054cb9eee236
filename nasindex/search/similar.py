"""The similar-names pass: when nothing matches exactly, people whose name parts are
within a small edit distance of the typed words (README "Similar names")."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import bindparam, column, select, table
from sqlalchemy.engine import Connection

from nasindex.names import deletion_variants, typo_budget, word_trigrams
from nasindex.search.candidates import candidate_select
from nasindex.search.limits import Deadline
from nasindex.search.people import Candidate
from nasindex.search.plan import Plan
from nasindex.search.terms import NameTerm

# Every distinct name part under each of its deletion variants (migration 0010).
_VARIANTS = table("name_part_variant", column("variant"), column("part"))
_PARTS = (select(_VARIANTS.c.part).distinct()
          .where(_VARIANTS.c.variant.in_(bindparam("variants", expanding=True))))


def similar(conn: Connection, plan: Plan, deadline: Deadline) -> list[Candidate]:
    """People every typed word of whom matches a part exactly or within its edit budget
    (the edits summed), and who share a trigram with each word that may have a typo.

    The parts within a word's budget are found among the distinct parts of all names
    (:func:`near_parts`). A similar name needs at least one edit, so it holds one of
    those parts whole: only the names holding one are read (and, per word, only those
    holding the word or a part near it), however many share a trigram with the word."""
    terms = plan.terms
    fuzzy = [t for t in terms if t.kind != "wildcard" and typo_budget(t.word)]
    if not fuzzy:
        return []
    held = [(t.word, near) for t, near in near_parts(conn, fuzzy)]
    if not any(near for _, near in held):
        return []
    strict = Plan(plan.db, plan.q, [t for t in terms if t not in fuzzy], None, narrowed=True)
    stmt = strict.statement(f"similar{len(held)}", lambda p: candidate_select(
        p, *p.db.holding(len(held))))
    found = [Candidate.from_row(r) for r in conn.execute(
        stmt, strict.params | plan.db.holding_params(held))]
    deadline.check()
    trigrams = [fuzzy_trigrams(t.word) for t in fuzzy]
    names = [(c.pk, c.name_key) for c in found if shares_trigrams(c.name_key, trigrams)]
    edits = {pk: total for pk, total in edits_to_names(terms, names) if total}
    kept = [c for c in found if c.pk in edits]
    for c in kept:
        c.distance = edits[c.pk]
    return kept


def near_parts(conn: Connection, fuzzy: list[NameTerm]) -> list[tuple[NameTerm, list[str]]]:
    """Each word with the stored name parts within its typo budget that do not hold it
    (those the exact rule finds): the parts sharing one of its deletion variants, then
    measured (one look-up for all words)."""
    from rapidfuzz.distance import OSA  # only a search that found no one pays for it

    variants = set().union(*(deletion_variants(t.word, typo_budget(t.word)) for t in fuzzy))
    parts = conn.execute(_PARTS, {"variants": sorted(variants)}).scalars().all()
    return [(t, [p for p in parts if t.word not in p
                 and distance(t, p, OSA.distance) is not None]) for t in fuzzy]


def shares_trigrams(name_key: str, trigrams: list[set[str]]) -> bool:
    """The README's rule: the name shares three consecutive characters with each word
    that may have a typo, or with it missing one letter (``trigrams``: their
    :func:`fuzzy_trigrams`)."""
    return all(any(g in name_key for g in word) for word in trigrams)


def edits_to_names(terms: list[NameTerm], names: list[tuple[int, str]]
                   ) -> list[tuple[int, int]]:
    """(pk, edits) of each name (pk, name key) whose parts every typed word matches
    exactly (0) or within its typo budget (the edits summed over the words; 0: every
    word matched exactly). Names share parts, so each distinct part is compared with
    each word once, and a name costs a few look-ups."""
    # Imported here: only a search that found no one pays for it (0.1 s).
    from rapidfuzz.distance import OSA

    parts = {p for _, key in names for p in key.split()}
    # Per word: the parts it reaches, and at what cost.
    reach = [{p: d for p in parts
              if (d := 0 if t.score([p]) else distance(t, p, OSA.distance)) is not None}
             for t in terms]
    out = []
    for pk, key in names:
        own = key.split()
        total = 0
        for near in reach:
            costs = [near[p] for p in own if p in near]
            if not costs:
                break
            total += min(costs)
        else:
            out.append((pk, total))
    return out


def distance(term: NameTerm, part: str, osa: Callable[..., int]) -> int | None:
    """Edits from ``term`` to ``part`` (insert, delete, substitute, swap neighbours:
    the optimal string alignment distance ``osa``), within its typo budget; None if
    too far."""
    budget = typo_budget(term.word) if term.kind != "wildcard" else 0
    if budget == 0:
        return None
    d = osa(term.word, part, score_cutoff=budget)
    return d if d <= budget else None


def fuzzy_trigrams(word: str) -> set[str]:
    """Trigrams of the word and of each one-letter deletion of it: a swapped or wrong
    letter in a short word changes all its own trigrams, but rarely those of the
    deletions too ('jhon' -> 'jon' shares ' jo' with 'john')."""
    variants = {word} | {word[:i] + word[i + 1:] for i in range(len(word))}
    return {t for v in variants if len(v) >= 2 for t in word_trigrams(v)}
