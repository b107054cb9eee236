"""NAS type ``dicom-folder``: a folder tree of plain DICOM files.

Listing (:mod:`~nasindex_dicom_folder.scanner`) is a walk of the whole tree, or a poll
of the folders that moved. Indexing reads headers only (never pixel data; the usual
files through :mod:`~nasindex_dicom_folder.fastheader`); the engine hashes the files in
a later pass. ``open_image`` decodes pixels for previews. The header parser lives in
:mod:`nasindex_dicom_folder.reader` and is imported where files are read: every CLI
run loads this module, and a no-change sync never needs pydicom (~0.25 s to import).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasindex import plugin  # the public plugin API, and all this NAS type uses of nasindex
from nasindex_dicom_folder.scanner import TreeLister, why

if TYPE_CHECKING:
    import numpy as np


class DicomFolderOptions(plugin.NasOptions):
    follow_symlinks: bool = False


class DicomFolder(plugin.NasType):
    name = "dicom-folder"
    description = "A folder tree of plain DICOM files (read-only)."
    Options = DicomFolderOptions
    demo_devices = ("ct",)
    worker_modules = ("nasindex_dicom_folder.reader",)  # not pydicom: see reader
    hashes_files = True  # by the engine's pass after the metadata (NasType.content_hash)
    polls_folders = True
    _polled: frozenset[str] = frozenset()  # the folders the last poll started from

    def __init__(self, nas_id: str, root: Path, options: plugin.NasOptions) -> None:
        super().__init__(nas_id, root, options)
        self._root = str(root)

    def check(self) -> None:
        if not self.root.is_dir():
            raise plugin.NasUnavailable(
                f"NAS {self.nas_id!r}: root {self.root} does not exist or is not a folder. "
                "Is the share mounted? Mount it or fix 'root' in the config."
            )
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise plugin.NasUnavailable(
                f"NAS {self.nas_id!r}: root {self.root} is not readable by this user. "
                "Grant read access or run as a user who has it.")
        if next(os.scandir(self.root), None) is None:
            raise plugin.NasUnavailable(
                f"NAS {self.nas_id!r}: root {self.root} is empty. An unmounted share often "
                "looks like this; mount it (nothing was changed in the index)."
            )

    def scan(self, cursor: str | None = None, poll: plugin.PollState | None = None
             ) -> plugin.ScanResult:
        lister = TreeLister(self.root, self.options.follow_symlinks)
        if poll is None:
            return lister.walk()
        self._polled = frozenset(poll.folders)
        return lister.poll(poll)

    def settle(self, items: Sequence[plugin.Fingerprint], scan: plugin.ScanResult
               ) -> list[plugin.Fingerprint]:
        lister = TreeLister(self.root, self.options.follow_symlinks)
        return lister.settle(items, scan, self._polled)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_polled"] = frozenset()  # the known folders of a poll stay in the main process
        return state

    def read(self, batch: Sequence[plugin.Fingerprint]
             ) -> list[plugin.InstanceRecord | plugin.ItemFailure]:
        return [self._read_one(fp) for fp in batch]

    def _read_one(self, fp: plugin.Fingerprint) -> plugin.InstanceRecord | plugin.ItemFailure:
        from nasindex_dicom_folder.reader import NotDicom, read_file

        plugin.progress()
        try:
            # A string join: two Path objects a file cost as much as its header.
            with open(os.path.join(self._root, plugin.unescape_path(fp.rel_path)), "rb") as f:
                return read_file(fp.key, fp.rel_path, f)
        except FileNotFoundError:
            return plugin.ItemFailure(fp.key, fp.rel_path,
                                      "vanished between listing and reading", io_error=True)
        except NotDicom as exc:
            return plugin.ItemFailure(fp.key, fp.rel_path, str(exc), skipped=True)
        except OSError as exc:
            return plugin.ItemFailure(fp.key, fp.rel_path, f"unreadable: {why(exc)}",
                                      io_error=True)
        except Exception as exc:  # a broken file is an error row, never a failed run
            return plugin.ItemFailure(fp.key, fp.rel_path, f"{type(exc).__name__}: {exc}")

    @classmethod
    def create_demo(cls, nas_id: str, root: Path, patients: Sequence[plugin.DemoPatient]
                    ) -> dict[str, Any]:
        from nasindex_dicom_folder.demo import write_tree

        write_tree(root, patients)
        return {}

    def open_image(self, rel_path: str) -> np.ndarray:
        import numpy as np
        import pydicom
        from pydicom.pixels import apply_modality_lut

        ds = pydicom.dcmread(self.inside_root(rel_path), force=True)
        pixels = ds.pixel_array
        if pixels.ndim == 3 and ds.get("SamplesPerPixel", 1) == 1:
            pixels = pixels[0]  # first frame of a multi-frame image
        return np.asarray(apply_modality_lut(pixels, ds), dtype=np.float32)
