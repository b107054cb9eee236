"""DICOM JSON (PS3.18 F.2) of QIDO results, and the multipart bodies of WADO-RS."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from typing import Any

from nasindex.search.dicom import Attribute

DICOM_JSON = "application/dicom+json"  # the media type of QIDO results and metadata
RETRIEVE_URL = "00081190"
NUMBERS = {"IS", "US", "UL", "SS", "SL", "DS", "FL", "FD"}


def dataset(row: dict[str, Any], attributes: list[Attribute], base: str) -> dict[str, Any]:
    """One result as a DICOM JSON object: every attribute of ``attributes`` (empty ones
    without a Value, as type 2 attributes are), and its Retrieve URL under ``base``."""
    out: dict[str, Any] = {}
    for attr in attributes:
        value = row.get(attr.keyword)
        element: dict[str, Any] = {"vr": attr.vr}
        values = _values(attr.vr, value)
        if values:
            element["Value"] = values
        out[attr.tag_hex] = element
    out[RETRIEVE_URL] = {"vr": "UR", "Value": [base + _resource(row)]}
    return dict(sorted(out.items()))


def _values(vr: str, value: Any) -> list[Any]:
    if value is None or value == "" or value == []:
        return []
    if vr == "PN":
        groups = str(value).split("=")
        names = dict(zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False))
        return [{k: v for k, v in names.items() if v}]
    items = value if isinstance(value, list) else [value]
    return [int(v) if vr in NUMBERS else str(v) for v in items]


def _resource(row: dict[str, Any]) -> str:
    path = f"/studies/{row['StudyInstanceUID']}"
    if "SeriesInstanceUID" in row:
        path += f"/series/{row['SeriesInstanceUID']}"
    if "SOPInstanceUID" in row:
        path += f"/instances/{row['SOPInstanceUID']}"
    return path


def boundary() -> str:
    return "nasindex-" + secrets.token_hex(12)


def multipart(parts: Iterable[tuple[str, Iterable[bytes]]], mark: str) -> Iterator[bytes]:
    """A multipart/related body: each part's content type, then its chunks as they
    come (nothing is gathered in memory)."""
    for content_type, chunks in parts:
        yield f"--{mark}\r\nContent-Type: {content_type}\r\n\r\n".encode()
        yield from chunks
        yield b"\r\n"
    yield f"--{mark}--\r\n".encode()
