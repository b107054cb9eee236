"""The similar-names pass: when nothing matches exactly, people whose name parts are
within a small edit distance of the typed words (README "Similar names")."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import bindparam
from sqlalchemy.engine import Connection

from nasindex.index.models import Patient
from nasindex.names import typo_budget, word_trigrams
from nasindex.search.candidates import candidate_select
from nasindex.search.limits import Deadline
from nasindex.search.people import Candidate
from nasindex.search.plan import Plan
from nasindex.search.terms import NameTerm


def similar(conn: Connection, plan: Plan, deadline: Deadline) -> list[Candidate]:
    """Names sharing a trigram with each typed word that may have a typo, kept only if
    every word matches exactly or within its edit budget."""
    terms = plan.terms
    fuzzy = [t for t in terms if t.kind != "wildcard" and typo_budget(t.word)]
    if not fuzzy:
        return []
    strict = Plan(plan.db, plan.q, [t for t in terms if t not in fuzzy], None)
    near = plan.db.any_trigram([sorted(fuzzy_trigrams(t.word)) for t in fuzzy])
    # Thousands may share a trigram: read their names only, then the few kept whole.
    names = conn.execute(candidate_select(strict, *near)
                         .with_only_columns(Patient.id, Patient.name_key), strict.params).all()
    deadline.check()
    edits = {pk: total for pk, total in edits_to_names(terms, names) if total}
    if not edits:
        return []
    kept = candidate_select(strict, Patient.id.in_(bindparam("pks", expanding=True)))
    found = [Candidate.from_row(r) for r in conn.execute(kept, strict.params | {
        "pks": list(edits)})]
    for c in found:
        c.distance = edits[c.pk]
    return found


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
