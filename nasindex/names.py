"""Person-name folding shared by indexing and search, so both sides agree exactly.

DICOM PN values look like ``DOE^JANE^^DR=ドウ^ジェーン=...``: up to three groups
(alphabetic, ideographic, phonetic) of five components each. For matching, a name is
folded to lower case, accents are dropped (``MÜLLER`` -> ``muller``), and every
component of every group becomes one space-separated word. A group written in a script
that puts no space between family and given name (CJK, kana, Hangul) also contributes
its components joined together, so ``山田太郎`` finds ``山田^太郎``.
"""

from __future__ import annotations

import re
import unicodedata

_SEPARATORS = re.compile(r"[\^=,\s]+")
_COMPONENTS = re.compile(r"[\^,\s]+")
# Scripts written without spaces between name parts.
_UNSPACED = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf"
                       r"\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f]")


def fold(text: str) -> str:
    """Lower-case, accent-free form of ``text`` (ß -> ss, Ø -> o where NFKD allows)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def name_words(name: str) -> list[str]:
    """The folded words of a person name (or of what a user typed for one)."""
    return [w for w in _SEPARATORS.split(fold(name)) if w]


def stored_words(name: str) -> list[str]:
    """The words a stored name is searchable by: :func:`name_words`, plus the joined
    components of each group written in an unspaced script."""
    words = name_words(name)
    for group in fold(name).split("="):
        parts = [p for p in _COMPONENTS.split(group) if p]
        if len(parts) > 1 and _UNSPACED.search(group):
            joined = "".join(parts)
            if joined not in words:
                words.append(joined)
    return words


def name_key(name: str) -> str:
    """The stored search form: folded words between single spaces, padded with one space
    at each end so that a word boundary is always ``' '``."""
    words = stored_words(name)
    return f" {' '.join(words)} " if words else ""


def word_trigrams(word: str) -> set[str]:
    """Trigrams of ``' word '`` (boundary spaces included), as the trigram indexes see it."""
    padded = f" {word} "
    return {padded[i:i + 3] for i in range(len(padded) - 2)}


def typo_budget(word: str) -> int:
    """Edits tolerated in a typed word: none below 3 letters, one up to 5, then two."""
    return 0 if len(word) < 3 else 1 if len(word) <= 5 else 2


VARIANT_PREFIX = 7  # letters of a word its deletion variants are made of


def deletion_variants(word: str, deletions: int) -> set[str]:
    """The word's first VARIANT_PREFIX letters with up to ``deletions`` (at most two) of
    them deleted; one deletion only from 3 letters on, two only from 6.

    Two words within the typo budget ``deletions`` of each other (optimal string
    alignment: insert, delete, substitute, swap neighbours) always share a variant when
    the stored one has up to two deletions: each edit costs at most one deletion on
    either side, and cutting both at the same length keeps that true. The similar-names
    pass looks a typed word's variants up among those of every stored name part (table
    ``name_part_variant``, whose triggers make the same variants in SQL: migration 0010)
    instead of reading every name that shares a trigram with it."""
    head = word[:VARIANT_PREFIX]
    out = {head}
    if deletions >= 1 and len(head) >= 3:
        out |= {head[:i] + head[i + 1:] for i in range(len(head))}
    if deletions >= 2 and len(head) >= 6:
        out |= {head[:i] + head[i + 1:j] + head[j + 1:]
                for j in range(len(head)) for i in range(j)}
    return out
