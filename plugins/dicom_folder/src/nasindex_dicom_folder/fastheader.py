"""A fast reader for the header of the usual DICOM file, and nothing else.

Most files on a CT share are alike: a 128-byte preamble, ``DICM``, a meta group, then a
dataset in explicit or implicit VR little endian (or a compressed transfer syntax, whose
header is explicit VR little endian too). For those, the index needs a dozen top-level
values and where the pixel data starts. This module walks the element headers with
``struct`` and keeps the raw bytes of the wanted elements: several times faster than
pydicom's reader, which builds an element object for every element it meets.

Anything it is not sure about makes :func:`read_header` answer ``None``: big endian,
deflate and private transfer syntaxes, files without preamble or meta group, unknown VRs,
undefined lengths other than sequences, a DICOMDIR, values that run past the file's end,
text that needs a character set other than ASCII, Latin-1 or UTF-8. The reader then uses
pydicom, exactly as before. The plugin's ``tests/test_fastheader.py`` holds the two to
the same records on every file of the test corpus.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from nasindex_dicom_folder.values import (
    EXPLICIT_LE,
    IMPLICIT_LE,
    PIXEL_TAGS,
    TRANSFER_SYNTAX,
    WHITE_OR_NUL,
)

HEAD = 32 * 1024  # first read: a CT header is 2-20 KB
MAX_HEAD = 4 * 1024 * 1024  # a longer header is left to pydicom (it reads as it goes)
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010
CHARSET = 0x00080005
# The top-level elements a record is made of (see reader.read_record).
WANTED = frozenset({
    CHARSET, 0x00080018, 0x00080020, 0x00080030, 0x00080050, 0x00080060, 0x00081030,
    0x0008103E, 0x00100010, 0x00100020, 0x00100030, 0x00100040, 0x0020000D, 0x0020000E,
    0x00200011, 0x00200013, 0x00280010, 0x00280011,
    0x00080016, 0x00280100, 0x00280008,  # SOP Class, Bits Allocated, frames: DICOMweb
})
# Text decoded with the character set: the VR each must have (explicit VR files).
TEXT_VRS = {0x00100010: b"PN", 0x00100020: b"LO", 0x00080050: b"SH", 0x00081030: b"LO",
            0x0008103E: b"LO"}
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN",
                      b"UR", b"UT", b"UV"})
SHORT_VRS = frozenset({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS",
                       b"LO", b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL",
                       b"US"})
ENCAPSULATED = ("1.2.840.10008.1.2.4.", "1.2.840.10008.1.2.5")  # header: explicit VR LE
# Character sets whose text needs no code extensions: one Python codec for the value.
CODECS = {"": "ascii", "ISO_IR 6": "ascii", "ISO_IR 100": "latin_1", "ISO_IR 192": "utf_8"}

_EXPLICIT = struct.Struct("<HH2sH")
_IMPLICIT = struct.Struct("<HHI")
_U32 = struct.Struct("<I")


class Declined(Exception):
    """Not a file this module reads: pydicom reads it."""


class _Short(Exception):
    """The header goes on past the bytes read so far; ``need`` bytes would do."""

    def __init__(self, need: int) -> None:
        self.need = need


@dataclass(slots=True)
class FastHeader:
    """The raw values of the wanted elements, and what the record needs besides.
    Its three accessors decode exactly as the reader's pydicom path does."""

    values: dict[int, tuple[bytes | None, bytes]]  # tag -> (VR or None if implicit, raw)
    transfer_syntax: str
    pixels_at: int | None  # where the pixel data element starts, None if there is none
    pixel_length: int | None  # its value length (UNDEFINED if encapsulated)
    pixel_header: int  # bytes of its element header (8 implicit, 12 explicit)
    texts: dict[int, str]  # the names and descriptions, decoded

    def ascii(self, tag: int) -> str | None:
        """A value of DICOM's default repertoire (UID, date, code...), stripped."""
        found = self.values.get(tag)
        if found is None:
            return None
        return found[1].decode("latin-1").strip(WHITE_OR_NUL) or None

    def text(self, tag: int) -> str | None:
        """A name or description in the file's character set, trailing padding removed."""
        return self.texts.get(tag)

    def has(self, tag: int) -> bool:
        return tag in self.values

    def pixels(self, size: int) -> tuple[int, int, int] | None:
        """(offset, value length, element header length) of the pixel data, if any."""
        if self.pixels_at is None or self.pixel_length is None:
            return None
        return self.pixels_at, self.pixel_length, self.pixel_header

    def us(self, tag: int) -> int | None:
        """An unsigned short (Rows, Columns)."""
        found = self.values.get(tag)
        if found is None or not found[1]:
            return None
        return int.from_bytes(found[1], "little")


def read_header(f: BinaryIO, size: int) -> FastHeader | None:
    """The header of the open file ``f`` of ``size`` bytes, reading from its start only
    what the header needs (never the pixel data); None if this is not a file for the
    fast path (then nothing is decided about it: pydicom reads it)."""
    f.seek(0)
    head = f.read(min(HEAD, size))
    while True:
        try:
            return parse(head, size)
        except Declined:
            return None
        except _Short as short:
            want = min(max(short.need, 4 * len(head)), size)
            if want > MAX_HEAD or want <= len(head):
                return None
            head += f.read(want - len(head))


def parse(head: bytes, size: int) -> FastHeader:
    """Parse the first bytes ``head`` of a file of ``size`` bytes. Raises Declined, or
    _Short when the header goes on beyond ``head``."""
    if head[128:134] != b"DICM\x02\x00":
        raise Declined("no preamble and meta group")
    meta: dict[int, tuple[bytes | None, bytes]] = {}
    start, _ = _walk(head, size, 132, meta, explicit=True, meta_only=True)
    found = meta.get(TRANSFER_SYNTAX)
    tsyntax = found[1].decode("latin-1").strip(WHITE_OR_NUL) if found else ""
    explicit = _explicit_vr(tsyntax)
    if head[start:start + 2] == b"\x00\x00":
        raise Declined("a dataset that starts with group 0")
    values: dict[int, tuple[bytes | None, bytes]] = {}
    pos, pixel_length = _walk(head, size, start, values, explicit)
    header = 12 if explicit else 8
    return FastHeader(values, tsyntax, pos if pixel_length is not None else None,
                      pixel_length, header, _texts(values, explicit))


def _texts(values: dict[int, tuple[bytes | None, bytes]], explicit: bool) -> dict[int, str]:
    """The text values decoded, as pydicom decodes them: plain ASCII in any character
    set; other text only in a character set without code extensions, single-valued and
    under its own VR (else Declined: pydicom decodes it)."""
    charset = values.get(CHARSET)
    codec = CODECS.get(charset[1].decode("latin-1").strip(WHITE_OR_NUL)) if charset else "ascii"
    texts = {}
    for tag, vr in TEXT_VRS.items():
        if tag not in values:
            continue
        own_vr, raw = values[tag]
        raw = raw.rstrip(b"\x00 ")
        if b"\\" in raw or b"\x1b" in raw:
            raise Declined("several values, or code extensions")
        if raw.isascii():
            texts[tag] = raw.decode("ascii")
            continue
        if codec is None or (explicit and own_vr != vr):
            raise Declined("text in a character set or VR this reader does not decode")
        if vr == b"PN" and b"=" in raw:
            raise Declined("a name in several groups (pydicom normalises those)")
        try:
            texts[tag] = raw.decode(codec)
        except UnicodeDecodeError:  # pydicom decodes it with replacement characters
            raise Declined("text that does not decode in its character set") from None
    return texts


def _explicit_vr(tsyntax: str) -> bool:
    if tsyntax == IMPLICIT_LE:
        return False
    if tsyntax == EXPLICIT_LE or tsyntax.startswith(ENCAPSULATED):
        return True
    raise Declined(f"transfer syntax {tsyntax or '(none)'}")


def _walk(buf: bytes, size: int, pos: int, values: dict, explicit: bool,
          meta_only: bool = False) -> tuple[int, int | None]:
    """Walk top-level elements from ``pos``: keep the wanted ones, skip the rest. Ends at
    the pixel data (returns its offset and value length), at the end of the file
    (offset, None) or, for the meta group, at the first element of another group.
    The hot loop of a full index: the usual element is decoded inline."""
    n = len(buf)
    unpack, u32 = (_EXPLICIT if explicit else _IMPLICIT).unpack_from, _U32.unpack_from
    while True:
        if pos == size:
            return pos, None
        head = buf if pos + 12 <= n else _need(buf, size, pos)
        if meta_only and head[pos:pos + 2] != b"\x02\x00":
            return pos, None  # the dataset starts, in its own encoding
        if explicit:
            group, elem, vr, length = unpack(head, pos)
            if vr in SHORT_VRS:
                at = pos + 8
            elif vr in LONG_VRS:
                length, at = u32(head, pos + 8)[0], pos + 12
            else:
                raise Declined(f"VR {vr!r} at the top level")
        else:
            group, elem, length = unpack(head, pos)
            vr, at = None, pos + 8
        tag = group << 16 | elem
        if group >= 0x7FE0 and tag in PIXEL_TAGS:  # only Pixel Data is checked for length
            return pos, length if tag == PIXEL_DATA else None
        if group in (0x0004, 0xFFFE):
            raise Declined("a directory record or a delimiter at the top level")
        if length == UNDEFINED:
            if explicit and vr != b"SQ":
                raise Declined("undefined length outside a sequence")
            pos = _skip_items(buf, size, at, explicit)
            continue
        end = at + length
        if end > size:
            raise Declined("a value runs past the end of the file")
        if tag in WANTED or meta_only:
            if end > n:
                raise _Short(end)
            values[tag] = (vr, buf[at:end])
        pos = end


def _element(buf: bytes, pos: int, explicit: bool) -> tuple[int, bytes | None, int, int]:
    """(tag, VR, value length, where the value starts) of the element at ``pos``."""
    if not explicit:
        group, elem, length = _IMPLICIT.unpack_from(buf, pos)
        return group << 16 | elem, None, length, pos + 8
    group, elem, vr, length = _EXPLICIT.unpack_from(buf, pos)
    if vr in LONG_VRS:
        return group << 16 | elem, vr, _U32.unpack_from(buf, pos + 8)[0], pos + 12
    if vr in SHORT_VRS:
        return group << 16 | elem, vr, length, pos + 8
    if group == 0xFFFE:  # item delimiters carry no VR
        return group << 16 | elem, None, _U32.unpack_from(buf, pos + 4)[0], pos + 8
    raise Declined(f"VR {vr!r}")


def _skip_items(buf: bytes, size: int, pos: int, explicit: bool) -> int:
    """Skip a sequence of undefined length whose items start at ``pos``; returns the
    offset after its delimiter."""
    while True:
        tag, _, length, pos = _element(_need(buf, size, pos), pos, explicit=False)
        if tag == SEQUENCE_END:
            return pos
        if tag != ITEM:
            raise Declined("a sequence holding something other than items")
        pos = pos + length if length != UNDEFINED else _skip_item(buf, size, pos, explicit)


def _skip_item(buf: bytes, size: int, pos: int, explicit: bool) -> int:
    """Skip the elements of an item of undefined length, and its delimiter."""
    while True:
        tag, vr, length, at = _element(_need(buf, size, pos), pos, explicit)
        if tag == ITEM_END:
            return at
        if length == UNDEFINED:
            if explicit and vr != b"SQ":
                raise Declined("undefined length outside a sequence")
            pos = _skip_items(buf, size, at, explicit)
        else:
            pos = at + length


def _need(buf: bytes, size: int, pos: int) -> bytes:
    """``buf`` if it holds the longest element header at ``pos`` (12 bytes), else a copy
    padded with zeros at the end of the file. The padding is never a length that
    counts: a header cut by the end of the file is refused."""
    if pos + 12 <= len(buf):
        return buf
    if pos + 8 > size:
        raise Declined("the file ends inside an element header")
    if size > len(buf):
        raise _Short(min(pos + 12, size))
    return buf + bytes(12)
