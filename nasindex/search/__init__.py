"""Search the index: patients by name, ID, accession, modality, dates, birth date and
NAS; their studies, series and files.

Read-only. The CLI and the dashboard both call these functions. The rules are written
down in the README ("Matching rules"); in short:

* The search text is a name, unless it is one word containing a digit: then it is an
  identifier (Patient ID exactly or as a prefix, or Accession Number exactly).
* Name words match in any order, case- and accent-insensitively, against the folded
  name parts of every PN group (alphabetic, ideographic, phonetic). ``*`` and ``?`` are
  wildcards within one part; a plain word of three or more characters matches inside a
  part; a shorter word only at the start of a part.
* When no patient matches exactly, a typo-tolerant pass adds patients whose name parts
  are within a small edit distance, marked "similar" (they would rank after exact ones).
* Records of one person on several NAS devices (same Patient ID, or same name and birth
  date) are grouped into one result with a row per NAS and the reason; the index itself
  keeps them apart.

The modules, one job each:

| module | job |
|---|---|
| ``query`` | the query and result types |
| ``limits`` | what a query may ask (length, words, characters, paging) and for how long |
| ``scope`` | the NAS scope every read function takes |
| ``terms`` | typed name words and wildcards: how each matches a name part |
| ``plan`` | a query as SQL with bound values, statements built once per shape |
| ``backends`` | one object per database (SQLite, PostgreSQL): its indexes, orderings, timeouts |
| ``candidates`` | candidate SQL: matching records counted, ranked and paged, bounded work |
| ``people`` | the cross-NAS link rule, grouping records into people, their order |
| ``similar`` | the typo-tolerant pass |
| ``records`` | the page's records and studies |
| ``find`` | :func:`search`, putting them together |
| ``browse`` | look-ups: one person, study tree, series files, images, an instance, facets |
"""

from nasindex.search.browse import (
    SeriesNode,
    StudyNode,
    facets,
    images,
    instance,
    nas_roots,
    patient,
    series_files,
    study_tree,
)
from nasindex.search.find import search
from nasindex.search.people import LINK_KEYS, link_reason
from nasindex.search.query import (
    PatientHit,
    PersonHit,
    SearchQuery,
    SearchResult,
    StudyHit,
    looks_like_identifier,
    normalize_date,
)
from nasindex.search.terms import NameTerm

__all__ = [
    "LINK_KEYS", "NameTerm", "PatientHit", "PersonHit", "SearchQuery", "SearchResult",
    "SeriesNode", "StudyHit", "StudyNode", "facets", "images", "instance", "link_reason",
    "looks_like_identifier", "nas_roots", "normalize_date", "patient", "search",
    "series_files", "study_tree",
]
