"""Typed name words (terms) and how each matches a stored name part, in SQL and in Python.

A stored name is folded into ``patient.name_key``: its parts between single spaces, with
a space at each end (nasindex.names). A typed word is folded the same way, then:

* with ``*`` (any run) or ``?`` (one character): a *wildcard* that matches one whole part;
* three or more characters: a *fragment*, found anywhere inside a part;
* one or two characters: a *prefix* of a part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from sqlalchemy import String, and_, bindparam, case, literal, true
from sqlalchemy.sql import ColumnElement

from nasindex.index.models import Patient
from nasindex.names import name_words

if TYPE_CHECKING:
    from nasindex.search.backends import Backend

MIN_FRAGMENT = 3  # a plain word this long matches inside a name part
WILDCARDS = re.compile(r"[*?]")


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

    @property
    def inner_wildcard(self) -> bool:
        """A wildcard inside the word (not only at its ends): a LIKE cannot keep it in
        one part."""
        return self.kind == "wildcard" and bool(WILDCARDS.search(self.word.strip("*")))

    @property
    def inner_star(self) -> bool:
        """A ``*`` inside the word: a pattern language without "any run but a space"
        (GLOB) cannot keep it in one part."""
        return self.kind == "wildcard" and "*" in self.word.strip("*")

    @property
    def shape(self) -> tuple[str, bool, bool, int]:
        """What its SQL looks like (its values are bound): statements are built once per
        shape."""
        return self.kind, self.inner_wildcard, self.inner_star, len(self.fts_phrases())

    def condition(self, db: Backend, name: str) -> ColumnElement[bool]:
        """The exact rule on ``patient.name_key`` (parts between single spaces), with
        its values bound as ``{name}_*`` (:meth:`params`)."""
        if self.inner_wildcard:  # a LIKE's '%' could run over a space
            return db.wildcard_part(bindparam(f"{name}_rule", type_=String))
        return _like(f"{name}_rule")

    def params(self, db: Backend, name: str) -> dict[str, str]:
        w = escape_like(self.word)
        if self.inner_wildcard:
            rule = db.wildcard_value(self.word)
        elif self.kind == "wildcard":  # only leading/trailing '*': the rule is a LIKE
            core = escape_like(self.word.strip("*"))
            rule = (("%" if self.word.startswith("*") else "% ") + core
                    + ("%" if self.word.endswith("*") else " %"))
        else:
            rule = ("%" if self.kind == "fragment" else "% ") + w + "%"
        values = {f"{name}_rule": rule}
        if self.kind != "wildcard":
            values |= {f"{name}_whole": f"% {w} %", f"{name}_start": f"% {w}%"}
        return values

    def score_expr(self, name: str) -> ColumnElement[int]:
        """:meth:`score` in SQL, for a name that is known to match this term."""
        if self.kind == "wildcard":
            return literal(2)
        if self.kind == "prefix":
            return case((_like(f"{name}_whole"), 3), else_=2)
        return case((_like(f"{name}_whole"), 3), (_like(f"{name}_start"), 2), else_=1)

    def scores(self) -> tuple[int, ...]:
        """The scores it can give a match, best first."""
        return {"wildcard": (2,), "prefix": (3, 2), "fragment": (3, 2, 1)}[self.kind]

    def class_condition(self, name: str, score: int) -> ColumnElement[bool]:
        """The matches that score ``score``, as LIKEs a planner can estimate (a CASE it
        cannot: PostgreSQL took a dense class for a rare one and sorted all of it)."""
        if self.kind == "wildcard":
            return true()
        whole, start = _like(f"{name}_whole"), _like(f"{name}_start")
        return {3: whole, 2: and_(start, ~whole), 1: ~start}[score]

    def fts_exact(self) -> bool:
        """True when the trigram index's match is the rule itself (a substring of the
        name key): a fragment, a two-letter prefix, a wildcard with '*' only at its ends."""
        return bool(self.fts_phrases()) and not self.inner_wildcard

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
            return 2 if any(wildcard_match(self.word, p) for p in parts) else 0
        best = 0
        for p in parts:
            if p == self.word:
                return 3
            if p.startswith(self.word):
                best = 2
            elif self.kind == "fragment" and self.word in p:
                best = max(best, 1)
        return best


def parse_terms(text: str) -> list[NameTerm]:
    """The name terms of typed text. A word of ``*`` alone matches any part, so it is
    left out; ``?`` stays: ``??`` is a part of exactly two characters."""
    return [NameTerm.parse(w) for w in name_words(text) if w.strip("*")]


def _like(param: str) -> ColumnElement[bool]:
    return Patient.name_key.like(bindparam(param), escape="\\")


def escape_like(word: str, escape: str = "\\") -> str:
    for ch in (escape, "%", "_"):
        word = word.replace(ch, escape + ch)
    return word


def glob_escape(word: str) -> str:
    """A typed wildcard word as a SQLite GLOB: ``?`` is one character but a space (so
    it stays in the part), ``*`` stays, ``[`` and ``]`` become literal."""
    return "".join(f"[{ch}]" if ch in "[]" else "[^ ]" if ch == "?" else ch for ch in word)


def wildcard_match(pattern: str, part: str) -> bool:
    """``part`` matches ``pattern`` (``*`` any run, ``?`` one character) as a whole, in
    at most len(pattern) * len(part) steps: on a mismatch only the last ``*`` takes one
    more character, which is enough for these two wildcards. (A backtracking regular
    expression took 20 s for 'a*a*a*a*a*a*a*a*n' against 64 letters.)"""
    if "?" not in pattern:
        return _stars_match(pattern, part)
    p = s = 0
    star, resume = -1, 0
    while s < len(part):
        if p < len(pattern) and pattern[p] == "*":
            star, resume = p, s
            p += 1
        elif p < len(pattern) and pattern[p] in ("?", part[s]):
            p += 1
            s += 1
        elif star >= 0:
            p, resume = star + 1, resume + 1
            s = resume
        else:
            return False
    return pattern[p:].strip("*") == ""


def _stars_match(pattern: str, part: str) -> bool:
    """:func:`wildcard_match` for a pattern whose only wildcard is ``*``, with string
    searches in C: the fixed start and end, and each run between stars at its leftmost
    place after the previous one (leftmost is never worse for ``*``)."""
    runs = pattern.split("*")
    if len(runs) == 1:
        return pattern == part
    head, tail = runs[0], runs[-1]
    end = len(part) - len(tail)
    if end < len(head) or not (part.startswith(head) and part.endswith(tail)):
        return False
    at = len(head)
    for run in runs[1:-1]:
        found = part.find(run, at, end)
        if found < 0:
            return False
        at = found + len(run)
    return True


def any_part_matches(name_key: str, pattern: str) -> bool:
    """Some part of a stored name key matches ``pattern`` (SQLite calls this per row)."""
    return any(wildcard_match(pattern, part) for part in name_key.split())


def folded_match(value: str | None, pattern: str) -> bool:
    """``value`` matches the DICOM wildcard ``pattern`` as a whole, case folded (SQLite
    calls this per row for person names: PS3.4 lets PN matching ignore case)."""
    return value is not None and wildcard_match(pattern.casefold(), value.casefold())


def wildcard_regex(word: str) -> str:
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
