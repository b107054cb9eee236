"""Where a JPEG 2000 file's codestream lies, and what its main header says.

A ``.jp2`` file wraps the codestream in boxes (ISO/IEC 15444-1 Annex I): the contiguous
codestream box ``jp2c`` holds it byte for byte. A ``.j2k`` file is the codestream. Only
the box headers and the codestream's SIZ and COD markers are read, never the pixels.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
SOC, SIZ, COD = b"\xff\x4f", 0xFF51, 0xFF52
MAIN_HEADER_MAX = 1 << 16  # SIZ and COD come first, well inside this


class NotJpeg2000(ValueError):
    """The stored file is not a JPEG 2000 file this module can wrap."""


@dataclass(frozen=True)
class Codestream:
    offset: int  # of the codestream in its file
    length: int
    rows: int
    columns: int
    samples: int
    bits: int  # bits per sample (component 0; DICOM wants them equal)
    signed: bool
    reversible: bool  # 5-3 wavelet: lossless
    colour_transform: bool  # the multi-component transform (RCT/ICT) is used


def locate(f: BinaryIO) -> Codestream:
    """The codestream of a JP2 file or a raw codestream, with its main header read."""
    size = os.fstat(f.fileno()).st_size
    f.seek(0)
    head = f.read(12)
    if head.startswith(SOC):
        return _parse(f, 0, size)
    if head != JP2_SIGNATURE:
        raise NotJpeg2000("neither a JP2 file nor a JPEG 2000 codestream")
    pos = len(JP2_SIGNATURE)
    while pos + 8 <= size:
        f.seek(pos)
        box = f.read(16)
        length, kind = struct.unpack_from(">I4s", box)
        header = 8
        if length == 1:
            length, header = struct.unpack_from(">Q", box, 8)[0], 16
        elif length == 0:
            length = size - pos  # the last box runs to the end of the file
        if length < header:
            break
        if kind == b"jp2c":
            return _parse(f, pos + header, length - header)
        pos += length
    raise NotJpeg2000("JP2 file without a codestream box")


def _parse(f: BinaryIO, offset: int, length: int) -> Codestream:
    f.seek(offset)
    data = f.read(min(length, MAIN_HEADER_MAX))
    if not data.startswith(SOC):
        raise NotJpeg2000("the codestream does not start with SOC")
    pos, siz, cod = 2, None, None
    while pos + 4 <= len(data) and (siz is None or cod is None):
        marker, seg = struct.unpack_from(">HH", data, pos)
        body = data[pos + 4:pos + 2 + seg]
        if marker == SIZ:
            siz = body
        elif marker == COD:
            cod = body
        elif marker in (0xFF90, 0xFF93):  # SOT/SOD: the main header is over
            break
        pos += 2 + seg
    if siz is None or cod is None or len(siz) < 39 or len(cod) < 10:
        raise NotJpeg2000("codestream without SIZ or COD marker")
    xsiz, ysiz, xo, yo = struct.unpack_from(">IIII", siz, 2)
    samples = struct.unpack_from(">H", siz, 34)[0]
    depth = siz[36]
    return Codestream(offset, length, rows=ysiz - yo, columns=xsiz - xo, samples=samples,
                      bits=(depth & 0x7F) + 1, signed=bool(depth & 0x80),
                      reversible=cod[9] == 1, colour_transform=cod[4] != 0)
