"""Standard DICOM attribute matching at study, series and instance level (QIDO-RS).

| module | job |
|---|---|
| ``attributes`` | the attributes the index answers for: keyword, tag, VR, level, matching |
| ``matching`` | one query key's value as SQL (PS3.4 C.2.2.2: wildcards, ranges, lists) |
| ``qido`` | :func:`find`: the query, one result per UID across NAS copies, paging |
| ``details`` | the values of a page of results: counts and modalities over the copies |
"""

from nasindex.search.dicom.attributes import ATTRIBUTES, Attribute, Level, lookup
from nasindex.search.dicom.qido import MAX_RESULTS, DicomQuery, DicomResult, find

__all__ = ["ATTRIBUTES", "MAX_RESULTS", "Attribute", "DicomQuery", "DicomResult", "Level",
           "find", "lookup"]
