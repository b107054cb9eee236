"""What a search may ask, and for how long it may run (issue 9's hostile-input rules).

A query is checked before any SQL is built: its length, its number of name words, its
characters, its wildcards and its paging. A refused query raises :class:`QueryError`
with a message that says what to type instead and never repeats the text (a name or a
birth date is PHI). A search that runs past :data:`TIME_LIMIT` is stopped by the
database (see the backends) and raises :class:`SearchTimeout`.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from nasindex.errors import QueryError, SearchTimeout
from nasindex.names import name_words
from nasindex.search.query import SearchQuery, normalize_date

MAX_TEXT = 256  # characters of search text: a long DICOM name is well under it
MAX_WORDS = 12  # name words ("maria del carmen garcia lopez" is five)
MAX_VALUE = 64  # a Patient ID or accession number (DICOM LO: 64 characters)
MAX_CHOICES = 32  # modalities or NAS devices in one filter
COUNT_LIMIT = 1000  # people ranked and counted; past it ``total`` says "at least"
FLAGGED_LIMIT = 3000  # records that may link, read whole; past it every match is read
MAX_LIMIT = 500  # people on one page
MAX_OFFSET = COUNT_LIMIT - 1  # pages start within the people ranked
TIME_LIMIT = 3.0  # seconds a search may run
_TYPED_WHITESPACE = "\t\n\r"  # pasted text: separators like a space


def check_query(q: SearchQuery) -> None:
    """Raise QueryError if ``q`` cannot be run as asked; its ``field`` names the query
    field at fault."""
    for what, value in (("limit", q.limit), ("offset", q.offset)):
        with _about(what):
            _check_whole(what, value)
    with _about("limit"):
        if not 1 <= q.limit <= MAX_LIMIT:
            raise QueryError(f"The limit (people per page) must be between 1 and {MAX_LIMIT}.")
    with _about("offset"):
        if not 0 <= q.offset <= MAX_OFFSET:
            raise QueryError(f"The offset must be between 0 and {MAX_OFFSET:,}: a search "
                             f"lists its best {COUNT_LIMIT:,} people; narrow it to see others.")
    if q.is_empty():
        raise QueryError("Type a name, Patient ID or accession number, or choose a filter.")
    if q.text is not None:
        with _about("text"):
            _check_text(q.text)
    for field, what, value in (("patient_id", "Patient ID", q.patient_id),
                               ("accession", "accession number", q.accession)):
        if value is not None:
            with _about(field):
                _check_value(what, value)
    for field, what, values in (("modalities", "modalities", q.modalities),
                                ("nas", "NAS devices", q.nas)):
        with _about(field):
            if len(values) > MAX_CHOICES:
                raise QueryError(f"Too many {what} chosen ({len(values)}); at most "
                                 f"{MAX_CHOICES}.")
            for value in values:
                _check_value(f"{what} filter", value)
    for field, what, value in (("date_from", "study date 'from'", q.date_from),
                               ("date_to", "study date 'to'", q.date_to),
                               ("birth_date", "birth date", q.birth_date)):
        with _about(field):
            if isinstance(value, str):
                _check_value(what, value)
            normalize_date(value, what)


@contextmanager
def _about(field: str) -> Iterator[None]:
    """A QueryError raised inside is about ``field``."""
    try:
        yield
    except QueryError as exc:
        exc.field = exc.field or field
        raise


def _check_whole(what: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise QueryError(f"The {what} must be a whole number, not {type(value).__name__}.")


def _check_text(text: str) -> None:
    _check_chars("search text", text, allowed=_TYPED_WHITESPACE)
    if len(text) > MAX_TEXT:
        raise QueryError(f"The search text is {len(text):,} characters long; at most "
                         f"{MAX_TEXT} are allowed. Type the main parts of the name.")
    if not text.strip():
        return
    if not any(ch.isalnum() for ch in text):
        raise QueryError("The search text has no letter or digit: '*', '?' and '??' alone "
                         "would match (nearly) every patient. Type part of a name with them "
                         "(e.g. 'mül*', 'm?ller'), an ID, or use the filters.")
    words = len(name_words(text))
    if words > MAX_WORDS:
        raise QueryError(f"The search text has {words:,} words; at most {MAX_WORDS} are "
                         "allowed. Type the main parts of the name.")


def _check_value(what: str, value: str) -> None:
    if not isinstance(value, str):
        raise QueryError(f"The {what} must be text, not {type(value).__name__}.")
    _check_chars(what, value)
    if len(value) > MAX_VALUE:
        raise QueryError(f"The {what} is {len(value):,} characters long; at most "
                         f"{MAX_VALUE} are allowed.")


def _check_chars(what: str, text: str, allowed: str = "") -> None:
    for ch in text:
        kind = unicodedata.category(ch)
        if kind == "Cs" or (kind == "Cc" and ch not in allowed):
            raise QueryError(f"The {what} contains a control character (U+{ord(ch):04X}); "
                             "type letters, digits, spaces, '*' and '?' only.")


@dataclass(frozen=True)
class Deadline:
    """When a search must stop: the database is told (see the backends), and
    Python-side loops call :meth:`check`."""

    seconds: float
    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        if not seconds > 0:
            raise ValueError("a time limit must be positive")
        return cls(seconds, time.monotonic() + seconds)

    def left(self) -> float:
        return self.at - time.monotonic()

    def passed(self) -> bool:
        return self.left() < 0

    def check(self) -> None:
        if self.passed():
            raise self.error()

    def error(self) -> SearchTimeout:
        return SearchTimeout(f"The search took longer than {self.seconds:g} s and was "
                             "stopped. Type more of the name, or add a filter (modality, "
                             "dates, NAS).")
