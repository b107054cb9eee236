"""What the record builder (:mod:`reader`) and the two header readers
(:mod:`fastheader`, :mod:`pydicomheader`) share."""

from __future__ import annotations

TRANSFER_SYNTAX = 0x00020010
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00009, 0x7FE00008})  # where stop_before_pixels stops
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
WHITE_OR_NUL = " \t\r\n\f\v\x00"  # stripped from values of the default repertoire


class NotDicom(ValueError):
    """The bytes are not DICOM at all (a text file, a thumbnail database...)."""


def as_int(value) -> int | None:
    """An IS value as an int; None when empty or not a single integer."""
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
