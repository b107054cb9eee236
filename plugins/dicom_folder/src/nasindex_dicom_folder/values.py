"""What the record builder (:mod:`reader`) and pydicom's header path
(:mod:`pydicomheader`) share."""

from __future__ import annotations


class NotDicom(ValueError):
    """The bytes are not DICOM at all (a text file, a thumbnail database...)."""


def as_int(value) -> int | None:
    """An IS value as an int; None when empty or not a single integer."""
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
