"""The NAS-type plugin contract: the one door through which nasindex meets a kind of NAS.

A NAS type is a class registered under the entry-point group ``nasindex.nas_types``.
It is built from one ``[nas.<id>]`` table of the config and promises five things:

* ``Options``: a pydantic model of its own config keys (validated before anything runs);
* ``check()``: raise :class:`~nasindex.errors.NasUnavailable` if the NAS cannot be read;
* ``scan(cursor)``: list the items with cheap fingerprints (never opening file contents);
* ``read(batch)``: turn fingerprints into :class:`InstanceRecord` or :class:`ItemFailure`;
* ``open_image(record)``: the pixels of one item, for a preview;
* ``open_stored(rel_path)``: the stored bytes of one item, served as they are (a default
  for file-based types), and ``modality_rescale`` for files that do not carry it.

Instances must be picklable: ``read`` runs in worker processes.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

from pydantic import BaseModel, ConfigDict

from nasindex.paths import real_path

if TYPE_CHECKING:  # annotations only: numpy and pydicom cost every CLI run ~0.25 s
    import numpy as np

    from nasindex.demo import DemoPatient


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What is cheap to know about an item: enough to tell new, changed and unchanged apart.

    ``key`` is the item's stable identity on its NAS (a file's path relative to the root,
    or a database source key); ``rel_path`` is where its file lies under the NAS root
    (POSIX separators); ``version`` is anything else that changes with the item (a row's
    modification stamp), empty when unused. Paths are text as the index stores them:
    names read from the file system go through :func:`nasindex.paths.escape_path`
    (undecodable bytes and control characters become ``\\xNN``), and
    :func:`nasindex.paths.real_path` opens them again.
    """

    key: str
    rel_path: str
    size: int
    mtime_ns: int
    version: str = ""


@dataclass(slots=True)
class InstanceRecord:
    """One image's metadata, flat: the engine splits it into patient/study/series/instance."""

    key: str
    rel_path: str
    size: int
    mtime_ns: int
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    patient_id: str
    patient_name: str = ""
    birth_date: str | None = None  # YYYYMMDD
    sex: str | None = None
    study_date: str | None = None  # YYYYMMDD
    study_time: str | None = None
    study_description: str | None = None
    accession_number: str | None = None
    series_number: int | None = None
    series_description: str | None = None
    modality: str | None = None
    instance_number: int | None = None
    file_format: str = "dicom"  # dicom | jp2 | j2k
    transfer_syntax: str | None = None
    rows: int | None = None
    columns: int | None = None
    lossless: bool | None = None
    content_hash: str | None = None
    version: str = ""
    sop_class_uid: str | None = None  # DICOM files: theirs; else None
    bits_allocated: int | None = None
    frames: int | None = None  # Number of Frames of a multi-frame image
    # Indexed, with a remark for the error table (e.g. values cut at DICOM's length
    # limits); the engine sets it, a NAS type may too.
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ItemFailure:
    """An item that could not be indexed. ``skipped`` items are not images at all
    (Thumbs.db, DICOMDIR) and are only counted; the others become error rows.
    ``io_error`` says the NAS did not deliver the bytes (vanished, permission denied,
    I/O error), as opposed to a broken file: when most reads of a run fail so, the
    share is taken to have gone away and the run fails as a whole."""

    key: str
    rel_path: str
    reason: str
    skipped: bool = False
    io_error: bool = False
    size: int | None = None  # the fingerprint that failed (filled in by the engine)
    mtime_ns: int | None = None


@dataclass(slots=True)
class ScanResult:
    """A listing of a NAS. ``complete`` means every item that exists was listed, so an
    indexed item that is absent is gone; an incremental (cursor) listing is not complete.
    ``cursor`` is stored after a successful run and handed back to the next ``scan``.
    ``ordered`` promises items in ascending key order (Python ``str`` order, i.e. code
    points): the engine then merges them with the index in one pass, in memory that does
    not grow with the NAS, instead of holding every indexed fingerprint in a dict.
    ``failures`` are items that exist but could not be listed (a folder without read
    permission, a symlink loop), filled in by the time ``items`` is exhausted: each
    becomes an error row, and nothing under it is tombstoned (a key ending in ``/``
    covers every key that starts with it)."""

    items: Iterable[Fingerprint]
    complete: bool = True
    cursor: str | None = None
    skipped: list[ItemFailure] = field(default_factory=list)
    ordered: bool = False
    failures: list[ItemFailure] = field(default_factory=list)
    # A poll (``complete`` False) lists whole folders: ``scopes`` are the folders (key
    # prefixes ending in "/", "" for the root) whose items were all listed, so that an
    # indexed item directly in one of them (not below) that was not listed is gone.
    scopes: list[str] | None = None
    # The folders this listing looked at, as the engine keeps them for the next poll:
    # every folder for a complete listing, the folders listed again or new for a poll;
    # ``folders_gone`` are known folders that no longer exist.
    folders: list[FolderMark] = field(default_factory=list)
    folders_gone: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FolderMark:
    """A folder of a file tree as a listing saw it: its mtime just before it was listed,
    and whether it had stopped changing (``settled``). A folder's mtime moves when an
    entry is added, removed or renamed in it (not when a file in it is rewritten)."""

    path: str  # a key prefix ending in "/"; "" is the root
    mtime_ns: int
    settled: bool = True


@dataclass(frozen=True, slots=True)
class PollState:
    """What a poll of a file tree starts from: the folders the index knows, and which
    share of them this poll lists again whatever their mtime (a rolling sweep: every
    folder's files are stat-ed once every ``sweeps`` polls, which catches a file
    rewritten in place, something no folder mtime shows)."""

    folders: Mapping[str, FolderMark]
    sweep: int = 0
    sweeps: int = 1

    def swept(self, path: str) -> bool:
        return zlib.crc32(path.encode("utf-8", "surrogateescape")) % self.sweeps == self.sweep


_progress = threading.local()


def progress() -> None:
    """Tell the engine that a long NAS call is still working: call it per file read,
    per chunk of a large file or of database rows. The engine fails a run whose NAS
    calls show no progress for ``io_timeout_seconds`` (a stalled share or database
    server) instead of hanging; outside such a call this does nothing."""
    beat = progress_hook()
    if beat is not None:
        beat()


def set_progress_hook(beat: Callable[[], None] | None) -> None:
    """What :func:`progress` calls in the current thread (the engine sets it)."""
    _progress.beat = beat


def progress_hook() -> Callable[[], None] | None:
    """The current thread's progress hook, for threads a NAS call starts to share it."""
    return getattr(_progress, "beat", None)


HASH_CHUNK = 1 << 20


def _fingerprint(f) -> tuple[int, int]:
    st = os.fstat(f.fileno())
    return st.st_size, st.st_mtime_ns


class NasOptions(BaseModel):
    """Base for a NAS type's own config keys; unknown keys are refused by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NasType:
    """Base class of NAS types. Subclasses set ``name`` and ``Options`` and implement
    ``check``, ``scan``, ``read`` and ``open_image``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[NasOptions]] = NasOptions
    demo_devices: ClassVar[tuple[str, ...]] = ()  # ids of the demo NAS devices it makes
    # Modules ``read`` needs, imported once by the engine's fork server before the
    # worker processes fork from it (optional: they would import them on first use).
    worker_modules: ClassVar[tuple[str, ...]] = ()
    # Whether each item's file gets a content hash (``content_hash``), computed by a pass
    # after the metadata is indexed, so that hashing never holds back search.
    hashes_files: ClassVar[bool] = False
    # Whether ``scan`` can poll: list only the folders that moved since the last listing
    # (``scan(poll=PollState(...))``), returning ``scopes`` and ``folders``.
    polls_folders: ClassVar[bool] = False

    def __init__(self, nas_id: str, root: Path, options: NasOptions) -> None:
        self.nas_id = nas_id
        self.root = Path(root)
        self.options = options

    def check(self) -> None:
        """Raise NasUnavailable, naming the cause and the fix, if the NAS cannot be read."""
        raise NotImplementedError

    def scan(self, cursor: str | None = None, poll: PollState | None = None) -> ScanResult:
        """List items with fingerprints. Must not read file contents. ``poll`` is given
        only to a type that ``polls_folders``, and only once the index knows its folders."""
        raise NotImplementedError

    def settle(self, items: Sequence[Fingerprint], scan: ScanResult) -> list[Fingerprint]:
        """A second look at new and changed items, ``settle_seconds`` after ``scan`` listed
        them: the items still being written, with their fingerprints as they are now
        (the engine defers them and holds back the studies they belong to). The default
        sees nothing moving: right for items a database lists once they are complete."""
        return []

    def read(self, batch: Sequence[Fingerprint]) -> list[InstanceRecord | ItemFailure]:
        """Read the metadata of a batch of new or changed items, one outcome per item."""
        raise NotImplementedError

    def open_image(self, rel_path: str) -> np.ndarray:
        """Pixels of one item as a 2-D array in modality units (e.g. HU for CT)."""
        raise NotImplementedError

    def content_hash(self, rel_path: str, size: int, mtime_ns: int) -> str | None:
        """The xxh3-128 hash of the file at ``rel_path``, if it still has the fingerprint
        it was indexed with; None if it changed or vanished (the next sync reads it again).
        Runs in threads of the main process. The default reads the file under the root."""
        import xxhash

        try:
            with open(real_path(self.root, rel_path), "rb") as f:
                if _fingerprint(f) != (size, mtime_ns):
                    return None
                digest, buf = xxhash.xxh3_128(), bytearray(HASH_CHUNK)
                view = memoryview(buf)
                while n := f.readinto(buf):
                    digest.update(view[:n])
                    progress()  # a large file on a slow share is not a stalled one
                return digest.hexdigest() if _fingerprint(f) == (size, mtime_ns) else None
        except OSError:
            return None

    def open_stored(self, rel_path: str) -> BinaryIO:
        """The stored bytes of one item exactly as they lie on the NAS: a binary,
        seekable, read-only file object the caller closes. Served as they are (DICOMweb
        retrieve), never decoded. The default opens the file ``rel_path`` below the
        root, which fits every file-based type; a type whose items are not plain files
        (a database blob, an archive member) overrides it. FileNotFoundError when the
        item is gone."""
        return open(self.inside_root(rel_path), "rb")  # noqa: SIM115 - the caller closes

    def modality_rescale(self, rel_path: str) -> tuple[float, float] | None:
        """(slope, intercept) from an item's stored pixel values to modality units (HU
        for CT), for a type whose files do not carry it (JPEG 2000): DICOM made from
        such a file states it. None (the default): the file says, or there is none."""
        return None

    def inside_root(self, rel_path: str) -> Path:
        """The absolute path of ``rel_path``, refusing anything that escapes the NAS root."""
        path = real_path(self.root, rel_path).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"{rel_path!r} is outside the root of NAS {self.nas_id!r}")
        return path

    @classmethod
    def create_demo(cls, nas_id: str, root: Path, patients: Sequence[DemoPatient]
                    ) -> dict[str, Any] | None:
        """Write a demo NAS of this type under ``root`` holding ``patients`` and return its
        config keys (beside ``type`` and ``root``), or None if the type has no demo."""
        return None

    def describe(self) -> dict[str, Any]:
        """Operator-facing facts about this NAS (no secrets)."""
        return {"type": self.name, "root": str(self.root)}
