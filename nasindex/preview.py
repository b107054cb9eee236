"""Image previews: pixels through the NAS type's ``open_image``, windowed and encoded.

Only files below a NAS root that the index recorded are read: the NAS must be in the
config with the same root as in the index, and its type's ``inside_root`` must accept
the relative path. JPEG 2000 NAS types implement the same ``open_image``, so their
images take exactly this path (and so does :func:`stored_file`, which the HTTP API uses
to send a file as stored). Plain Python (no Streamlit): front ends reach it through
``nasindex.access`` (which checks the role and NAS scope and audits first), and the
benchmark times what the patient page does.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from pathlib import Path
from threading import Lock

import numpy as np
from PIL import Image
from sqlalchemy.engine import Engine

from nasindex.config import Settings
from nasindex.contract import NasType
from nasindex.errors import NasIndexError, NasUnavailable, NotFound
from nasindex.registry import open_nas
from nasindex.search import nas_roots

THUMBS_PER_PAGE = 12
THUMB_SIZE = 128
VIEW_SIZE = 512
IMAGE_FORMATS = {"jpeg": "image/jpeg", "png": "image/png"}  # what render() encodes to
# CT window presets in Hounsfield units: (centre, width).
WINDOWS: dict[str, tuple[float, float] | None] = {
    "soft tissue": (40, 400),
    "lung": (-600, 1500),
    "bone": (400, 1800),
    "auto": None,  # 1st-99th percentile: any modality
}


class PreviewError(NasIndexError):
    """This file cannot be previewed; the message says why (no stack trace, no PHI)."""


class NasAway(PreviewError, NasUnavailable):
    """The NAS cannot be read here: not in the config, a root other than the indexed
    one, a NAS type that fails to open, or its share not mounted (names the NAS)."""


class FileGone(PreviewError, NotFound):
    """The indexed file is not on its NAS any more (moved or deleted since the last sync)."""


class _Lru:
    """A small thread-safe LRU (Streamlit serves sessions from several threads)."""

    def __init__(self, size: int) -> None:
        self.size, self.items, self.lock = size, OrderedDict(), Lock()

    def get(self, key):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return None

    def put(self, key, value) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


_nas_objects = _Lru(32)
_pixels = _Lru(16)  # a few decoded slices (512x512 float32 = 1 MB each)
_encoded = _Lru(4096)  # thumbnails and views as JPEG bytes (a few KB each)


def clear_caches() -> None:
    for cache in (_nas_objects, _pixels, _encoded):
        cache.clear()


def nas_object(settings: Settings, engine: Engine, nas: str) -> NasType:
    """The NAS type object of ``nas`` (kept per config and NAS), once the config has it
    with the root the index recorded; NasAway (a NasUnavailable naming it) otherwise.
    Everything that reads an indexed file opens its NAS here (WADO-RS too)."""
    key = (str(settings.path), nas)
    obj = _nas_objects.get(key)
    if obj is not None:
        return obj
    cfg = settings.nas.get(nas)
    if cfg is None:
        raise NasAway(f"NAS {nas!r} is in the index but not in the config "
                      f"({settings.path}); add it there to see its images.")
    indexed = nas_roots(engine, scope=frozenset({nas})).get(nas)
    if indexed is None or Path(indexed).resolve() != Path(cfg.root).resolve():
        raise NasAway(f"The root of NAS {nas!r} in the config ({cfg.root}) differs "
                      f"from the one in the index ({indexed}); run a sync of it first.")
    try:
        obj = open_nas(cfg)
    except Exception as exc:  # a broken plugin: say which, keep the page
        raise NasAway(f"NAS {nas!r} cannot be opened: {exc}") from None
    _nas_objects.put(key, obj)
    return obj


def stored_file(settings: Settings, engine: Engine, nas: str, rel_path: str) -> Path:
    """Where one indexed file is on this host, once its NAS is reachable here and the
    path stays inside the NAS root. NasUnavailable when the share is not there (naming
    the NAS), FileGone when the file alone is."""
    return _stored(nas_object(settings, engine, nas), nas, rel_path)


def _stored(obj: NasType, nas: str, rel_path: str) -> Path:
    try:
        path = obj.inside_root(rel_path)
    except ValueError as exc:
        raise PreviewError(str(exc)) from None
    if not path.is_file():
        if not obj.root.is_dir():  # the whole share is away, not this one file
            raise NasAway(f"NAS {nas!r} cannot be reached: its root {obj.root} is not a "
                          "folder on this host. Mount the share, then try again.")
        raise FileGone(f"{rel_path} is not on NAS {nas!r} any more (moved or deleted).")
    return path


def pixels(settings: Settings, engine: Engine, nas: str, rel_path: str) -> np.ndarray:
    """The 2-D pixel array of one indexed file, in modality units (HU for CT)."""
    key = (str(settings.path), nas, rel_path)
    cached = _pixels.get(key)
    if cached is not None:
        return cached
    obj = nas_object(settings, engine, nas)
    _stored(obj, nas, rel_path)  # the share and the file are there
    try:
        array = np.asarray(obj.open_image(rel_path), dtype=np.float32)
    except Exception as exc:  # undecodable pixels must not break the page
        raise PreviewError(f"{rel_path} cannot be decoded: {type(exc).__name__}: {exc}"
                           ) from None
    if array.ndim != 2:
        raise PreviewError(f"{rel_path}: expected one 2-D image, got shape {array.shape}.")
    _pixels.put(key, array)
    return array


def window(array: np.ndarray, preset: str) -> np.ndarray:
    """Map modality values to 0-255 with a window preset (``auto``: percentiles)."""
    limits = WINDOWS.get(preset)
    if limits is None:
        low, high = np.percentile(array, (1, 99))
    else:
        centre, width = limits
        low, high = centre - width / 2, centre + width / 2
    scale = 255.0 / max(float(high - low), 1e-6)
    return np.clip((array - low) * scale, 0, 255).astype(np.uint8)


def _encode(gray: np.ndarray, size: int, image_format: str) -> bytes:
    img = Image.fromarray(gray, mode="L")
    if max(img.size) > size:
        img.thumbnail((size, size), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    if image_format == "png":
        img.save(buf, format="PNG")
    else:
        img.save(buf, format="JPEG", quality=88)
    return buf.getvalue()


def render(settings: Settings, engine: Engine, nas: str, rel_path: str, preset: str,
           size: int = VIEW_SIZE, image_format: str = "jpeg") -> bytes:
    """One file as a JPEG (or PNG) of at most ``size`` pixels a side, windowed with
    ``preset``."""
    key = (str(settings.path), nas, rel_path, preset, size, image_format)
    cached = _encoded.get(key)
    if cached is None:
        cached = _encode(window(pixels(settings, engine, nas, rel_path), preset), size,
                         image_format)
        if size <= VIEW_SIZE:  # thumbnails and views; larger ones would crowd the memory
            _encoded.put(key, cached)
    return cached


def thumbnail(settings: Settings, engine: Engine, nas: str, rel_path: str,
              preset: str) -> bytes:
    return render(settings, engine, nas, rel_path, preset, THUMB_SIZE)
