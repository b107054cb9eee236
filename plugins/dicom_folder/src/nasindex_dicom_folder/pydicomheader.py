"""The general path of the header reader: pydicom, for every file the fast path
(:mod:`~nasindex_dicom_folder.fastheader`) leaves to it. Imported only when such a file
comes: an index of usual files never loads pydicom (~0.3 s a process, more without
bytecode caches)."""

from __future__ import annotations

import struct
from typing import BinaryIO

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset
from pydicom.tag import BaseTag
from pydicom.uid import DeflatedExplicitVRLittleEndian, PrivateTransferSyntaxes

from nasindex_dicom_folder.values import (
    EXPLICIT_BE,
    EXPLICIT_LE,
    IMPLICIT_LE,
    PIXEL_TAGS,
    TRANSFER_SYNTAX,
    WHITE_OR_NUL,
    NotDicom,
    as_int,
)

PIXEL_DATA = (0x7FE0, 0x0010)
KNOWN_ENCODINGS = {IMPLICIT_LE: (True, True), EXPLICIT_LE: (False, True),
                   EXPLICIT_BE: (False, False)}
UNUSUAL_SYNTAXES = {DeflatedExplicitVRLittleEndian, *PrivateTransferSyntaxes}


def read_header(f: BinaryIO, size: int) -> PydicomHeader:
    """The header of any DICOM file pydicom reads (NotDicom if it is not DICOM)."""
    return PydicomHeader(*(_read_common(f) or _read_any(f, size)), f)


class PydicomHeader:
    """A header read by pydicom, with the accessors of :class:`fastheader.FastHeader`."""

    def __init__(self, ds: pydicom.Dataset, tsyntax: str | None, pixels_at: int,
                 f: BinaryIO) -> None:
        self.ds = ds
        self.transfer_syntax = tsyntax or _syntax_from_encoding(ds)
        self._pixels_at = pixels_at
        self._f = f

    def ascii(self, tag: int) -> str | None:
        return _ascii(self.ds, tag)

    def text(self, tag: int):
        return _decoded(self.ds, tag)

    def us(self, tag: int) -> int | None:
        return _us(self.ds, tag)

    def has(self, tag: int) -> bool:
        return tag in self.ds

    def pixels(self, size: int) -> tuple[int, int, int] | None:
        """(offset, value length, element header length) of the pixel data, if there is
        one; ValueError if the file ends inside its element header."""
        pos = self._pixels_at
        if pos >= size:
            return None
        if size - pos < 8:
            raise ValueError("truncated file (ends inside an element header)")
        implicit, little = self.ds.original_encoding
        fmt = "<" if little is not False else ">"
        self._f.seek(pos)
        head = self._f.read(12).ljust(12, b"\0")
        if struct.unpack_from(fmt + "HH", head, 0) != PIXEL_DATA:
            return None
        element = 8 if implicit else 12
        return pos, struct.unpack_from(fmt + "I", head, element - 4)[0], element


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
    return as_int(ds[tag].value)  # anything unusual: pydicom's own conversion


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


def _syntax_from_encoding(ds: pydicom.Dataset) -> str | None:
    """Files without meta information still tell their encoding by how they parsed."""
    implicit, little = ds.original_encoding
    if implicit is None:
        return None
    if implicit:
        return IMPLICIT_LE
    return EXPLICIT_LE if little else EXPLICIT_BE
