"""Reading one DICOM file's header into an :class:`InstanceRecord`.

The usual files are read by :mod:`~nasindex_dicom_folder.fastheader`, everything else by
pydicom (:mod:`~nasindex_dicom_folder.pydicomheader`, imported only then); both hand
over the same accessors, and one function here makes the record. Imported by the
processes that read files, not by every CLI run (see the package).
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO

from nasindex.plugin import InstanceRecord
from nasindex_dicom_folder import fastheader
from nasindex_dicom_folder.values import NotDicom, as_int

SOP_UID, STUDY_UID, SERIES_UID = 0x00080018, 0x0020000D, 0x0020000E
DIRECTORY_RECORDS = 0x00041220
LOSSLESS_SYNTAXES = {
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.1.99",
}


# A header is read through a window that refuses reads past this offset: no real header
# comes near, and a bogus element length can never make a large file be read whole.
HEADER_MAX = 64 * 2**20


def read_file(key: str, rel_path: str, f: BinaryIO) -> InstanceRecord:
    """The record of an open DICOM file: its header only, never more than
    ``HEADER_MAX`` bytes of it (the engine hashes the file in a later pass)."""
    st = os.fstat(f.fileno())
    return read_record(key, rel_path, HeaderWindow(f, st.st_size, HEADER_MAX), st.st_size,
                       st.st_mtime_ns)


def read_record(key: str, rel_path: str, f: BinaryIO, size: int, mtime_ns: int,
                fast: bool = True) -> InstanceRecord:
    """Read the DICOM header of the open file ``f`` (``size`` bytes; reading stops before
    the pixels) into a record. The usual files go through :mod:`fastheader` unless
    ``fast`` is False; pydicom reads everything else, and the two give equal records."""
    header = fastheader.read_header(f, size) if fast else None
    if header is None:
        from nasindex_dicom_folder.pydicomheader import read_header

        header = read_header(f, size)
    if header.has(DIRECTORY_RECORDS):
        raise NotDicom("DICOMDIR (a directory of other files)")
    _check_pixel_data_complete(header, size)
    sop, study, series = (header.ascii(tag) for tag in (SOP_UID, STUDY_UID, SERIES_UID))
    if not sop:
        raise ValueError("no SOP Instance UID")
    for value, attr in ((study, "StudyInstanceUID"), (series, "SeriesInstanceUID")):
        if not value:
            raise ValueError(f"no {attr}")
    tsyntax = header.transfer_syntax
    return InstanceRecord(
        key=key, rel_path=rel_path, size=size, mtime_ns=mtime_ns,
        sop_instance_uid=sop, study_uid=study, series_uid=series,
        patient_id=str(header.text(0x00100020) or ""),
        patient_name=str(header.text(0x00100010) or ""),
        birth_date=header.ascii(0x00100030), sex=header.ascii(0x00100040),
        study_date=header.ascii(0x00080020), study_time=header.ascii(0x00080030),
        study_description=_text(header.text(0x00081030)),
        accession_number=_text(header.text(0x00080050)),
        series_number=as_int(header.ascii(0x00200011)),
        series_description=_text(header.text(0x0008103E)),
        modality=header.ascii(0x00080060), instance_number=as_int(header.ascii(0x00200013)),
        file_format="dicom", transfer_syntax=tsyntax,
        rows=header.us(0x00280010), columns=header.us(0x00280011),
        lossless=(tsyntax in LOSSLESS_SYNTAXES) if tsyntax else None,
        sop_class_uid=header.ascii(0x00080016), bits_allocated=header.us(0x00280100),
        frames=as_int(header.ascii(0x00280008)),
    )


class HeaderWindow:
    """A file seen by the header parser: reads past ``limit`` bytes are refused, so a
    bogus element length can never make it read a whole large file."""

    def __init__(self, f: BinaryIO, size: int, limit: int) -> None:
        self._f = f
        self._size = size
        self._limit = limit

    def read(self, size: int = -1) -> bytes:
        at = self._f.tell()
        if size is None or size < 0:  # the rest (a deflated dataset is read so)
            size = self._size - at
        if at + size > self._limit:
            raise ValueError(f"DICOM header larger than {self._limit // 2**20} MiB (or a "
                             "bogus element length): not indexed")
        return self._f.read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        """The caller owns the file."""


def _check_pixel_data_complete(header, size: int) -> None:
    """Refuse a file cut off inside its pixel data (the header alone would look fine)."""
    pixels = header.pixels(size)
    if pixels is None:
        return
    pos, length, element = pixels
    if length != 0xFFFFFFFF and pos + element + length > size:
        raise ValueError(f"truncated file: pixel data needs {length} bytes, "
                         f"{size - pos - element} present")


def _text(value) -> str | None:
    if value is None or value == "":
        return None
    return str(value).strip() or None
