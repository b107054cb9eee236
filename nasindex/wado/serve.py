"""The bytes, metadata and frames of indexed SOP instances, read through their NAS type.

Files are streamed in chunks, one file open at a time, so a 700-slice series never sits
in memory whole. DICOM files are served byte for byte as stored; JPEG 2000 files as
the Part 10 file :mod:`.part10` makes around their codestream.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import pydicom
from sqlalchemy.engine import Engine

from nasindex.config import Settings
from nasindex.contract import NasType
from nasindex.errors import NasUnavailable, NotFound
from nasindex.preview import nas_object
from nasindex.search.dicom.files import JPEG_2000_FILES, StoredInstance
from nasindex.wado.codestream import locate
from nasindex.wado.part10 import Wrapped, dataset, wrap

CHUNK = 1 << 20


@dataclass(frozen=True)
class Part:
    """One instance as a Part 10 file: its size (as indexed, for a stored DICOM file),
    and its bytes when iterated."""

    item: StoredInstance
    size: int
    nas: NasType
    wrapped: Wrapped | None  # None: the stored file is DICOM, served as it is

    def chunks(self) -> Iterator[bytes]:
        with _open(self.nas, self.item) as f:
            if self.wrapped is None:
                yield from iter(lambda: f.read(CHUNK), b"")
                return
            yield self.wrapped.prefix
            f.seek(self.wrapped.codestream.offset)
            yield from _copy(f, self.wrapped.codestream.length)
            yield self.wrapped.suffix


def part(settings: Settings, engine: Engine, item: StoredInstance) -> Part:
    """The Part 10 file of ``item``; its header is read now (to know the size), the rest
    when the part is iterated."""
    nas = nas_object(settings, engine, item.nas)
    if item.file_format not in JPEG_2000_FILES:
        return Part(item, item.size, nas, None)
    wrapped = wrap(*_wrapped_dataset(nas, item))
    return Part(item, wrapped.size, nas, wrapped)


def metadata(settings: Settings, engine: Engine, item: StoredInstance) -> dict[str, Any]:
    """The instance's attributes as DICOM JSON (PS3.18 F.2), without its pixel data."""
    nas = nas_object(settings, engine, item.nas)
    if item.file_format in JPEG_2000_FILES:
        ds, _cs = _wrapped_dataset(nas, item)
    else:
        with _open(nas, item) as f:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
    return ds.to_json_dict(bulk_data_threshold=1 << 16)


def frames(settings: Settings, engine: Engine, item: StoredInstance, numbers: list[int]
           ) -> list[bytes]:
    """Frames ``numbers`` (1-based) as uncompressed little-endian pixels (stored values);
    the file is read and decoded once for all of them."""
    whole = b"".join(part(settings, engine, item).chunks())
    ds = pydicom.dcmread(io.BytesIO(whole))
    count = int(ds.get("NumberOfFrames", 1) or 1)
    for number in numbers:
        if not 1 <= number <= count:
            raise NotFound(f"Instance {item.sop_instance_uid} has {count} frame(s); there "
                           f"is no frame {number}.")
    array = ds.pixel_array
    chosen = [array if count == 1 else array[n - 1] for n in numbers]
    return [np.ascontiguousarray(p).astype(p.dtype.newbyteorder("<")).tobytes()
            for p in chosen]


def frame(settings: Settings, engine: Engine, item: StoredInstance, number: int) -> bytes:
    """Frame ``number`` (1-based), as :func:`frames`."""
    return frames(settings, engine, item, [number])[0]


def stored_codestream(settings: Settings, engine: Engine, item: StoredInstance) -> bytes:
    """The JPEG 2000 codestream of a JPEG 2000 file, as stored."""
    nas = nas_object(settings, engine, item.nas)
    with _open(nas, item) as f:
        cs = locate(f)
        f.seek(cs.offset)
        return f.read(cs.length)


def _wrapped_dataset(nas: NasType, item: StoredInstance):
    with _open(nas, item) as f:
        cs = locate(f)
    return dataset(item, cs, nas.modality_rescale(item.rel_path)), cs


def _open(nas: NasType, item: StoredInstance) -> BinaryIO:
    try:
        return nas.open_stored(item.rel_path)
    except FileNotFoundError:
        if not nas.root.is_dir():
            raise NasUnavailable(f"NAS {item.nas!r} is not reachable (its root is not "
                                 "there): is the share mounted?") from None
        raise NotFound(f"The file of instance {item.sop_instance_uid} is no longer on NAS "
                       f"{item.nas!r} ({item.rel_path}); the next sync will tombstone it."
                       ) from None
    except PermissionError:
        raise NasUnavailable(f"NAS {item.nas!r}: {item.rel_path} cannot be read "
                             "(permission denied).") from None


def _copy(f: BinaryIO, length: int) -> Iterator[bytes]:
    left = length
    while left > 0:
        data = f.read(min(CHUNK, left))
        if not data:  # cut short since it was indexed: end the part, not the process
            raise NotFound("A JPEG 2000 file ended early (changed since it was indexed).")
        left -= len(data)
        yield data


@dataclass(frozen=True)
class Retrieval:
    """The instances one WADO-RS request may read, handed out by the access layer once
    it has checked the caller and recorded the retrieval: their bytes, metadata and
    frames are read through it, one file at a time, when the answer is sent."""

    settings: Settings
    engine: Engine
    items: list[StoredInstance]

    def part(self, item: StoredInstance) -> Part:
        return part(self.settings, self.engine, item)

    def metadata(self, item: StoredInstance) -> dict[str, Any]:
        return metadata(self.settings, self.engine, item)

    def frames(self, item: StoredInstance, numbers: list[int]) -> list[bytes]:
        return frames(self.settings, self.engine, item, numbers)

    def codestream(self, item: StoredInstance) -> bytes:
        return stored_codestream(self.settings, self.engine, item)
