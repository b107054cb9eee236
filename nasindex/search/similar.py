"""The similar-names pass: when nothing matches exactly, people whose name parts are
within a small edit distance of the typed words (README "Similar names")."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from nasindex.names import edit_distance, typo_budget, word_trigrams
from nasindex.search.backends import Backend
from nasindex.search.candidates import candidates
from nasindex.search.limits import Deadline
from nasindex.search.people import Candidate
from nasindex.search.query import SearchQuery
from nasindex.search.terms import NameTerm


def similar(conn: Connection, db: Backend, q: SearchQuery, terms: list[NameTerm],
            deadline: Deadline) -> list[Candidate]:
    """Names sharing a trigram with each typed word that may have a typo, kept only if
    every word matches exactly or within its edit budget."""
    fuzzy = [t for t in terms if t.kind != "wildcard" and typo_budget(t.word)]
    if not fuzzy:
        return []
    conds = [t.condition(db) for t in terms if t not in fuzzy]
    conds += db.any_trigram([sorted(fuzzy_trigrams(t.word)) for t in fuzzy])
    found = []
    memo: dict[tuple[str, str], int] = {}
    for n, c in enumerate(candidates(conn, db, q, conds)):
        if n % 256 == 0:
            deadline.check()
        parts = c.name_key.split()
        total = 0
        for t in terms:
            if t.score(parts):
                continue
            d = distance(t, parts, memo)
            if d is None:
                break
            total += d
        else:
            if total:
                c.distance = total
                found.append(c)
    return found


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
