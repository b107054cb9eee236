"""JPEG 2000 files: headers for indexing (never pixels), pixels for previews.

Handles JP2 files (``.jp2``), raw codestreams (``.j2k``, ``.j2c``, ``.jpc``) and DICOM
files whose transfer syntax is JPEG 2000. Headers are read with glymur in pure Python;
previews decode with glymur when OpenJPEG is on the system, else with Pillow (its wheel
carries OpenJPEG); both are bit-exact for lossless files.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import glymur
import numpy as np

JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
SOC_SIZ = b"\xff\x4f\xff\x51"  # a raw codestream starts with SOC then SIZ
DICM_AT = 128
HEAD_BYTES = 4096
PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff"  # encapsulated
ITEM_TAG = b"\xfe\xff\x00\xe0"
J2K_SYNTAXES = {  # DICOM transfer syntax -> whether it can only be lossless
    "1.2.840.10008.1.2.4.90": True,  # JPEG 2000 Lossless Only
    "1.2.840.10008.1.2.4.91": False,  # JPEG 2000 (lossless or lossy: see the wavelet)
    "1.2.840.10008.1.2.4.201": True,  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202": True,  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203": False,  # HTJ2K
}


class NotJpeg2000(ValueError):
    """The file is not JPEG 2000 (nor DICOM holding JPEG 2000)."""


@dataclass(frozen=True, slots=True)
class Header:
    file_format: str  # jp2 | j2k | dicom
    rows: int
    columns: int
    components: int
    bits: int
    signed: bool
    lossless: bool  # reversible (5-3) wavelet, or a lossless-only transfer syntax
    transfer_syntax: str | None = None
    sop_instance_uid: str | None = None  # DICOM files carry their own
    sop_class_uid: str | None = None


def read_header(path: Path) -> Header:
    """The header of one file, reading only its first bytes and boxes."""
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
        if head.startswith(JP2_SIGNATURE):
            return _jp2_header(f, head)
        if head.startswith(SOC_SIZ):
            f.seek(0)
            return _codestream_header(f, "j2k")
        if head[DICM_AT:DICM_AT + 4] == b"DICM":
            return _dicom_header(f)
    raise NotJpeg2000("not JPEG 2000 (no JP2 signature, codestream or DICOM preamble)")


def _jp2_header(f: BinaryIO, head: bytes) -> Header:
    """Walk the top-level JP2 boxes to the contiguous codestream box (jp2c) and let
    glymur parse that codestream's main header; no other box is needed."""
    size = os.fstat(f.fileno()).st_size
    pos = len(JP2_SIGNATURE)
    while pos + 8 <= size:
        box = head[pos:pos + 16] if pos + 16 <= len(head) else _read_at(f, pos, 16)
        length, kind = struct.unpack_from(">I4s", box)
        header = 8
        if length == 1 and len(box) >= 16:
            length, header = struct.unpack_from(">Q", box, 8)[0], 16
        elif length == 0:
            length = size - pos  # the last box runs to the end of the file
        if kind == b"jp2c":
            start = pos + header
            if start + 8 < len(head):  # parse from the bytes in hand: far fewer reads
                try:
                    return _codestream_header(io.BytesIO(head[start:]), "jp2",
                                              len(head) - start)
                except NotJpeg2000:
                    pass  # a main header longer than the bytes read: parse from the file
            f.seek(start)
            return _codestream_header(f, "jp2", length - header)
        if length < header:
            break
        pos += length
    raise NotJpeg2000("broken JP2 file (no codestream box)")


def _read_at(f: BinaryIO, pos: int, count: int) -> bytes:
    f.seek(pos)
    return f.read(count).ljust(8, b"\0")


def _codestream_header(f: BinaryIO, fmt: str, length: int | None = None) -> Header:
    start = f.tell()
    if length is None:
        f.seek(0, 2)
        length = f.tell() - start
        f.seek(start)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            cs = glymur.codestream.Codestream(f, length, header_only=True)
        except Exception as exc:
            raise NotJpeg2000(f"broken JPEG 2000 codestream ({_short(exc)})") from None
    return _from_codestream(cs, fmt)


def _from_codestream(cs, fmt: str) -> Header:
    siz = next((s for s in cs.segment if s.marker_id == "SIZ"), None)
    cod = next((s for s in cs.segment if s.marker_id == "COD"), None)
    if siz is None or cod is None:
        raise NotJpeg2000("JPEG 2000 codestream without SIZ or COD marker")
    return Header(file_format=fmt, rows=siz.ysiz - siz.yosiz, columns=siz.xsiz - siz.xosiz,
                  components=siz.Csiz, bits=int(siz.bitdepth[0]), signed=bool(siz.signed[0]),
                  lossless=cod.xform == 1)  # 1: 5-3 reversible wavelet; 0: 9-7 irreversible


def _dicom_header(f: BinaryIO) -> Header:
    """A DICOM file: its transfer syntax must be JPEG 2000; the wavelet is read from the
    first fragment's codestream header, not decoded."""
    import pydicom

    f.seek(0)
    ds = pydicom.dcmread(f, stop_before_pixels=True)
    ts = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if ts not in J2K_SYNTAXES:
        raise NotJpeg2000(f"DICOM file, but its transfer syntax {ts or '(none)'} "
                          "is not JPEG 2000")
    sop = str(ds.get("SOPInstanceUID", "") or "") or None
    sop_class = str(ds.get("SOPClassUID", "") or "") or None
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    lossless = J2K_SYNTAXES[ts]
    fragment = _first_fragment(f, ds)
    if fragment is not None:
        cs = _codestream_header(f, "dicom", fragment)
        lossless = lossless or cs.lossless
    return Header(file_format="dicom", rows=rows, columns=cols,
                  components=int(ds.get("SamplesPerPixel", 1) or 1),
                  bits=int(ds.get("BitsStored", 0) or 0),
                  signed=bool(ds.get("PixelRepresentation", 0)), lossless=lossless,
                  transfer_syntax=ts, sop_instance_uid=sop, sop_class_uid=sop_class)


def _first_fragment(f: BinaryIO, ds) -> int | None:
    """Position ``f`` at the first fragment of encapsulated pixel data; its length."""
    start = max(f.tell() - 16, 0)  # pydicom may stop just before or after the tag
    f.seek(start)
    window = f.read(64)
    at = window.find(PIXEL_DATA_TAG)
    if at < 0:
        return None
    f.seek(start + at + len(PIXEL_DATA_TAG))
    lengths = []
    for _item in range(2):  # the basic offset table item, then the first fragment
        item = f.read(8)
        if len(item) < 8 or item[:4] != ITEM_TAG:
            return None
        lengths.append(struct.unpack("<I", item[4:])[0])
        if len(lengths) == 1:
            f.seek(lengths[0], 1)
    return lengths[1]


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__


def openjpeg_available() -> bool:
    return bool(getattr(glymur.version, "openjpeg_version", "")) and \
        glymur.lib.openjp2.OPENJP2 is not None


def decode(path: Path) -> np.ndarray:
    """Pixels of one file: glymur/OpenJPEG when present, else Pillow."""
    with open(path, "rb") as f:
        head = f.read(132)
    if head[DICM_AT:DICM_AT + 4] == b"DICM":
        import pydicom

        return np.asarray(pydicom.dcmread(path).pixel_array)
    if openjpeg_available():
        try:
            return np.asarray(glymur.Jp2k(str(path))[:])
        except Exception:  # noqa: BLE001 - an OpenJPEG quirk: Pillow may still read it
            pass
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im)
