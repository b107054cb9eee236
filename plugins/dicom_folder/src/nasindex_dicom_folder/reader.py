"""Reading one DICOM file's header into an :class:`InstanceRecord` (pydicom).

Imported by the processes that read files, not by every CLI run (see the package).
"""

from __future__ import annotations

import io
import os
import struct
from typing import BinaryIO

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset
from pydicom.tag import BaseTag
from pydicom.uid import DeflatedExplicitVRLittleEndian, PrivateTransferSyntaxes

from nasindex.plugin import InstanceRecord
from nasindex_dicom_folder import fastheader

PIXEL_DATA = (0x7FE0, 0x0010)
SOP_UID, STUDY_UID, SERIES_UID = 0x00080018, 0x0020000D, 0x0020000E
TRANSFER_SYNTAX, DIRECTORY_RECORDS = 0x00020010, 0x00041220
WHITE_OR_NUL = " \t\r\n\f\v\x00"
PIXEL_TAGS = {0x7FE00010, 0x7FE00009, 0x7FE00008}  # what stop_before_pixels stops at
KNOWN_ENCODINGS = {"1.2.840.10008.1.2": (True, True), "1.2.840.10008.1.2.1": (False, True),
                   "1.2.840.10008.1.2.2": (False, False)}
UNUSUAL_SYNTAXES = {DeflatedExplicitVRLittleEndian, *PrivateTransferSyntaxes}
LOSSLESS_SYNTAXES = {
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.1.99",
}


# A header is read through a window that refuses reads past this offset: no real header
# comes near, and a bogus element length can never make a large file be read whole.
HEADER_MAX = 64 * 2**20


class NotDicom(ValueError):
    """The bytes are not DICOM at all (a text file, a thumbnail database...)."""


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
    header = (fastheader.read_header(f, size) if fast else None) or _pydicom_header(f, size)
    if DIRECTORY_RECORDS in header.values:
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
        series_number=_int(header.ascii(0x00200011)),
        series_description=_text(header.text(0x0008103E)),
        modality=header.ascii(0x00080060), instance_number=_int(header.ascii(0x00200013)),
        file_format="dicom", transfer_syntax=tsyntax,
        rows=header.us(0x00280010), columns=header.us(0x00280011),
        lossless=(tsyntax in LOSSLESS_SYNTAXES) if tsyntax else None,
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


class _PydicomHeader:
    """A header read by pydicom, with the accessors of :class:`fastheader.FastHeader`."""

    def __init__(self, ds: pydicom.Dataset, tsyntax: str | None, pixels_at: int,
                 f: BinaryIO) -> None:
        self.ds = self.values = ds
        self.transfer_syntax = tsyntax or _syntax_from_encoding(ds)
        self._pixels_at = pixels_at
        self._f = f

    def ascii(self, tag: int) -> str | None:
        return _ascii(self.ds, tag)

    def text(self, tag: int):
        return _decoded(self.ds, tag)

    def us(self, tag: int) -> int | None:
        return _us(self.ds, tag)

    def pixels(self) -> tuple[int, bytes, bool, bool]:
        """Where reading stopped, the next 12 bytes there, implicit VR, little endian."""
        self._f.seek(self._pixels_at)
        implicit, little = self.ds.original_encoding
        return (self._pixels_at, self._f.read(12), bool(implicit),
                little if little is not None else True)


def _pydicom_header(f: BinaryIO, size: int) -> _PydicomHeader:
    return _PydicomHeader(*(_read_common(f) or _read_any(f, size)), f)


Header = tuple[pydicom.Dataset, str | None, int]  # dataset, transfer syntax, pixels offset


def _read_any(f: BinaryIO, size: int) -> Header:
    """Any DICOM stream pydicom reads: with or without preamble and meta information."""
    f.seek(0)
    start = f.read(132)
    has_preamble = start[128:132] == b"DICM"
    if not has_preamble and not _looks_like_raw_dataset(start):
        raise NotDicom("not DICOM (no preamble and no dataset at the start)")
    f.seek(0)
    try:
        ds = pydicom.dcmread(f, stop_before_pixels=True, force=not has_preamble)
    except InvalidDicomError as exc:
        raise NotDicom(f"not DICOM ({exc})") from None
    return ds, _ascii(ds.file_meta, TRANSFER_SYNTAX), f.tell()


def _read_common(f: BinaryIO) -> Header | None:
    """The usual file (preamble, meta information, an uncompressed-header transfer
    syntax) read with pydicom's ``read_dataset`` for the meta group and the dataset:
    what ``dcmread`` does, without building and validating a FileDataset, which was
    40% of its time. None for anything else (deflate, command sets, private syntaxes,
    odd bytes), which :func:`_read_any` reads exactly as before."""
    f.seek(0)
    if f.read(134)[128:134] != b"DICM\x02\x00":
        return None
    f.seek(132)
    try:
        meta = read_dataset(f, False, True, stop_when=_not_meta)
        tsyntax = _ascii(meta, TRANSFER_SYNTAX)
        encoding = _encoding(tsyntax)
        start = f.tell()
        if encoding is None or f.read(2) == b"\x00\x00":
            return None
        f.seek(start)
        ds = read_dataset(f, *encoding, stop_when=_at_pixels)
    except Exception:  # whatever it is, the general path reports it as it always did
        return None
    return ds, tsyntax, f.tell()


def _encoding(tsyntax: str | None) -> tuple[bool, bool] | None:
    """(implicit VR, little endian) of a transfer syntax, as ``read_partial`` decides."""
    if tsyntax is None or tsyntax in UNUSUAL_SYNTAXES:
        return None
    return KNOWN_ENCODINGS.get(tsyntax, (False, True))  # encapsulated: explicit LE


def _not_meta(tag: BaseTag, vr: str | None, length: int) -> bool:
    return tag >> 16 != 2


def _at_pixels(tag: BaseTag, vr: str | None, length: int) -> bool:
    return tag in PIXEL_TAGS


# Values in DICOM's default repertoire (UIDs, dates, times, codes, numbers) are decoded
# from the raw bytes here: pydicom's conversion costs ~10 us an element, which made the
# record cost as much as the header read itself. Names and descriptions, whose bytes
# depend on Specific Character Set, still go through pydicom (_decoded).
def _ascii(ds: pydicom.Dataset, tag: int) -> str | None:
    elem = ds.get_item(tag)
    if elem is None:
        return None
    value = elem.value
    if isinstance(elem, RawDataElement):
        text = value.decode("latin-1") if value else ""
    else:  # pydicom converted it already (it needed it while reading)
        text = "" if value is None else str(value)
    return text.strip(WHITE_OR_NUL) or None


def _us(ds: pydicom.Dataset, tag: int) -> int | None:
    """An unsigned short (Rows, Columns), unpacked from its two raw bytes."""
    elem = ds.get_item(tag)
    if elem is None:
        return None
    if isinstance(elem, RawDataElement) and elem.VR in (None, "US") and elem.value \
            and len(elem.value) == 2:
        return int.from_bytes(elem.value, "little" if elem.is_little_endian else "big")
    return _int(ds[tag].value)  # anything unusual: pydicom's own conversion


def _decoded(ds: pydicom.Dataset, tag: int):
    """A text value decoded with the file's character set. Plain ASCII (no escape
    sequence, no value separator) reads the same in every DICOM character set, so it
    skips pydicom's conversion (~15 us a value, most names and descriptions)."""
    elem = ds.get_item(tag)
    if elem is None:
        return None
    value = elem.value
    if (isinstance(elem, RawDataElement) and value is not None and value.isascii()
            and b"\x1b" not in value and b"\\" not in value):
        return value.decode("ascii").rstrip("\x00 ")
    return ds[tag].value


def _looks_like_raw_dataset(data: bytes) -> bool:
    """A DICOM stream without preamble starts with a group 0002 or 0008 tag."""
    if len(data) < 8:
        return False
    group_le, = struct.unpack_from("<H", data, 0)
    group_be, = struct.unpack_from(">H", data, 0)
    return group_le in (0x0002, 0x0008) or group_be == 0x0008


def _check_pixel_data_complete(header, size: int) -> None:
    """Refuse a file cut off inside its pixel data (the header alone would look fine)."""
    if isinstance(header, fastheader.FastHeader):
        pos, length, element = header.pixels_at, header.pixel_length, header.pixel_header
        if pos is None:
            return
    else:
        pos, head, implicit, little = header.pixels()
        if pos >= size:
            return
        if size - pos < 8:
            raise ValueError("truncated file (ends inside an element header)")
        fmt = "<" if little else ">"
        if struct.unpack_from(fmt + "HH", head, 0) != PIXEL_DATA:
            return
        element = 8 if implicit else 12
        length = struct.unpack_from(fmt + "I", head, element - 4)[0]
    if length != 0xFFFFFFFF and pos + element + length > size:
        raise ValueError(f"truncated file: pixel data needs {length} bytes, "
                         f"{size - pos - element} present")


def _syntax_from_encoding(ds: pydicom.Dataset) -> str | None:
    """Files without meta information still tell their encoding by how they parsed."""
    implicit, little = ds.original_encoding
    if implicit is None:
        return None
    if implicit:
        return "1.2.840.10008.1.2"
    return "1.2.840.10008.1.2.1" if little else "1.2.840.10008.1.2.2"


def _text(value) -> str | None:
    if value is None or value == "":
        return None
    return str(value).strip() or None


def _int(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
