"""Person-name folding shared by indexing and search, so both sides agree exactly.

DICOM PN values look like ``DOE^JANE^^DR=ドウ^ジェーン=...``. For matching, a name is
folded to lower case, accents are dropped (``MÜLLER`` -> ``muller``), and every
component of every group becomes one space-separated word.
"""

from __future__ import annotations

import re
import unicodedata

_SEPARATORS = re.compile(r"[\^=,\s]+")


def fold(text: str) -> str:
    """Lower-case, accent-free form of ``text`` (ß -> ss, Ø -> o where NFKD allows)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def name_words(name: str) -> list[str]:
    """The folded words of a person name (or of what a user typed for one)."""
    return [w for w in _SEPARATORS.split(fold(name)) if w]


def name_key(name: str) -> str:
    """The stored search form: folded words between single spaces, padded with one space
    at each end so that a word boundary is always ``' '``."""
    words = name_words(name)
    return f" {' '.join(words)} " if words else ""
