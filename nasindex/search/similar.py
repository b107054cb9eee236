"""The similar-names pass: when nothing matches exactly, people whose name parts are
within a small edit distance of the typed words (README "Similar names")."""

from __future__ import annotations

from sqlalchemy import bindparam
from sqlalchemy.engine import Connection

from nasindex.index.models import Patient
from nasindex.names import edit_distance, typo_budget, word_trigrams
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
                         .with_only_columns(Patient.id, Patient.name_key), strict.params)
    edits = {}
    memo: dict[tuple[str, str], int] = {}
    for n, (pk, key) in enumerate(names):
        if n % 256 == 0:
            deadline.check()
        total = _edits(terms, key.split(), memo)
        if total:
            edits[pk] = total
    if not edits:
        return []
    kept = candidate_select(strict, Patient.id.in_(bindparam("pks", expanding=True)))
    found = [Candidate.from_row(r) for r in conn.execute(kept, strict.params | {
        "pks": list(edits)})]
    for c in found:
        c.distance = edits[c.pk]
    return found


def _edits(terms: list[NameTerm], parts: list[str], memo: dict[tuple[str, str], int]
           ) -> int | None:
    """Edits from the typed words to the name's parts; None if a word is too far, 0 if
    every word matches exactly."""
    total = 0
    for t in terms:
        if t.score(parts):
            continue
        d = distance(t, parts, memo)
        if d is None:
            return None
        total += d
    return total


def distance(term: NameTerm, parts: list[str], memo: dict[tuple[str, str], int]
             ) -> int | None:
    """Edits from ``term`` to the nearest part, within its typo budget; None if too far.
    ``memo`` remembers word/part distances across the candidates of one search (names
    share parts: many candidates are 'maria' or 'john')."""
    budget = typo_budget(term.word) if term.kind != "wildcard" else 0
    if budget == 0:
        return None
    best = budget + 1
    for part in parts:
        d = memo.get((term.word, part))
        if d is None:
            # Each letter of the word that the part lacks costs at least one edit.
            cheap = len(set(term.word) - set(part)) > budget
            d = budget + 1 if cheap else edit_distance(term.word, part, budget)
            memo[(term.word, part)] = d
        best = min(best, d)
    return best if best <= budget else None


def fuzzy_trigrams(word: str) -> set[str]:
    """Trigrams of the word and of each one-letter deletion of it: a swapped or wrong
    letter in a short word changes all its own trigrams, but rarely those of the
    deletions too ('jhon' -> 'jon' shares ' jo' with 'john')."""
    variants = {word} | {word[:i] + word[i + 1:] for i in range(len(word))}
    return {t for v in variants if len(v) >= 2 for t in word_trigrams(v)}
