"""The search page's state lives in the URL, so that a search can be bookmarked, shared
with a colleague, opened in a new tab, reloaded, and gone back to with the browser's
Back button: ``/?q=jane+doe&modality=CT&from=2024-01-01&page=2``.

Plain Python (no Streamlit): the page reads the URL through :func:`from_url` and writes
it with :func:`to_url`; tests check the round trip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from urllib.parse import urlencode

from nasindex.search import SearchQuery, normalize_date

PAGE_SIZE = 25  # patients (people) per page
EARLIEST = date(1900, 1, 1)  # study dates the date pickers offer
SHOWN_KEY = "search_url_shown"  # session key: the URL parameters of the search last shown

# URL parameter -> SearchQuery field; the repeated ones (modality=CT&modality=MR) are lists.
TEXT_PARAMS = {"q": "text", "patient_id": "patient_id", "accession": "accession",
               "from": "date_from", "to": "date_to", "born": "birth_date"}
LIST_PARAMS = {"modality": "modalities", "nas": "nas"}
DATE_PARAMS = {"from": "study date 'from'", "to": "study date 'to'", "born": "birth date"}

Params = dict[str, list[str]]


@dataclass(frozen=True)
class SearchState:
    """One search as the URL holds it: the query, the page, and what in the URL could
    not be used (then nothing is searched and the page says why)."""

    query: SearchQuery = field(default_factory=SearchQuery)
    page: int = 1
    problems: tuple[str, ...] = ()

    def searched(self) -> SearchQuery:
        """The query with this page's window."""
        return replace(self.query, limit=PAGE_SIZE, offset=(self.page - 1) * PAGE_SIZE)

    def at_page(self, page: int) -> SearchState:
        return replace(self, page=max(page, 1))


def from_url(params: Mapping[str, Sequence[str]]) -> SearchState:
    """The state of a URL's query parameters (each a list of values, as repeated)."""
    def first(key: str) -> str | None:
        values = [v.strip() for v in params.get(key, ()) if v.strip()]
        return values[0] if values else None

    fields: dict[str, object] = {f: first(p) for p, f in TEXT_PARAMS.items()}
    fields.update({f: _unique(params.get(p, ())) for p, f in LIST_PARAMS.items()})
    problems = []
    for param, what in DATE_PARAMS.items():
        try:
            normalize_date(first(param))
        except ValueError:
            problems.append(f"The link's {what} ({param}=…) is not a date: use YYYY-MM-DD.")
    page = first("page") or "1"
    return SearchState(SearchQuery(**fields), int(page) if page.isdigit() else 1,
                       tuple(problems))


def to_url(state: SearchState) -> Params:
    """The query parameters of ``state``: only what is set, dates as YYYY-MM-DD, the
    page only past the first."""
    q = state.query
    params: Params = {}
    for param, name in TEXT_PARAMS.items():
        value = getattr(q, name)
        if value:
            params[param] = [iso_date(value) if param in DATE_PARAMS else value]
    for param, name in LIST_PARAMS.items():
        if getattr(q, name):
            params[param] = list(getattr(q, name))
    if state.page > 1:
        params["page"] = [str(state.page)]
    return params


def query_string(state: SearchState) -> str:
    """``q=jane+doe&modality=CT...``: the part of the URL after the ``?``."""
    return urlencode(to_url(state), doseq=True)


def iso_date(value: str) -> str:
    """A valid YYYYMMDD or YYYY-MM-DD as YYYY-MM-DD; anything else as it is."""
    try:
        digits = normalize_date(value)
    except ValueError:
        return value
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:]}" if digits else value


def as_date(value: str | None) -> date | None:
    """A date filter for a date widget (None when unset or not a date)."""
    try:
        digits = normalize_date(value)
    except ValueError:
        return None
    return date(int(digits[:4]), int(digits[4:6]), int(digits[6:])) if digits else None


def _unique(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in values if v.strip()))
