"""NAS type ``dicom-folder``: a folder tree of plain DICOM files.

Indexing reads headers only (never pixel data) and hashes the file bytes it has read
anyway; ``open_image`` decodes pixels for previews. The header parser lives in
:mod:`nasindex_dicom_folder.reader` and is imported where files are read: every CLI
run loads this module, and a no-change sync never needs pydicom (~0.25 s to import).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasindex.contract import (
    Fingerprint,
    InstanceRecord,
    ItemFailure,
    NasOptions,
    NasType,
    ScanResult,
)
from nasindex.errors import NasUnavailable

if TYPE_CHECKING:
    import numpy as np

    from nasindex.demo import DemoPatient

# Names that are never images: counted as skipped without being opened.
NOT_IMAGES = {"dicomdir", "thumbs.db", ".ds_store", "desktop.ini"}


class DicomFolderOptions(NasOptions):
    follow_symlinks: bool = False


class DicomFolder(NasType):
    name = "dicom-folder"
    description = "A folder tree of plain DICOM files (read-only)."
    Options = DicomFolderOptions
    demo_devices = ("ct",)
    worker_modules = ("nasindex_dicom_folder.reader",)

    def check(self) -> None:
        if not self.root.is_dir():
            raise NasUnavailable(
                f"NAS {self.nas_id!r}: root {self.root} does not exist or is not a folder. "
                "Is the share mounted? Mount it or fix 'root' in the config."
            )
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise NasUnavailable(f"NAS {self.nas_id!r}: root {self.root} is not readable "
                                 "by this user. Grant read access or run as a user who has it.")
        if next(os.scandir(self.root), None) is None:
            raise NasUnavailable(
                f"NAS {self.nas_id!r}: root {self.root} is empty. An unmounted share often "
                "looks like this; mount it (nothing was changed in the index)."
            )

    def scan(self, cursor: str | None = None) -> ScanResult:
        skipped: list[ItemFailure] = []
        return ScanResult(items=self._walk(self.root, "", skipped), complete=True,
                          skipped=skipped, ordered=True)

    def _walk(self, folder: Path, prefix: str, skipped: list[ItemFailure]
              ) -> Iterator[Fingerprint]:
        """Depth first, in key order: a folder's entries sorted by name, a sub-folder's
        name with its "/" (so "a.dcm" < "a/b.dcm", as the keys compare)."""
        follow = self.options.follow_symlinks
        with os.scandir(folder) as listing:
            entries = sorted(((e.name + "/" if e.is_dir(follow_symlinks=follow) else e.name, e)
                              for e in listing), key=lambda pair: pair[0])
        for name, entry in entries:
            rel = prefix + name
            if name.endswith("/"):
                yield from self._walk(Path(entry.path), rel, skipped)
                continue
            if not entry.is_file(follow_symlinks=follow):
                continue
            st = entry.stat(follow_symlinks=follow)
            if name.lower() in NOT_IMAGES or st.st_size == 0:
                skipped.append(ItemFailure(rel, rel, "not an image", skipped=True))
                continue
            yield Fingerprint(rel, rel, st.st_size, st.st_mtime_ns)

    def read(self, batch: Sequence[Fingerprint]) -> list[InstanceRecord | ItemFailure]:
        return [self._read_one(fp) for fp in batch]

    def _read_one(self, fp: Fingerprint) -> InstanceRecord | ItemFailure:
        from nasindex_dicom_folder.reader import NotDicom, parse_dicom

        try:
            with open(self.root / fp.rel_path, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read()
        except OSError as exc:
            return ItemFailure(fp.key, fp.rel_path, f"unreadable: {exc.strerror or exc}")
        try:
            return parse_dicom(fp.key, fp.rel_path, data, st.st_mtime_ns)
        except NotDicom as exc:
            return ItemFailure(fp.key, fp.rel_path, str(exc), skipped=True)
        except Exception as exc:  # a broken file is an error row, never a failed run
            return ItemFailure(fp.key, fp.rel_path, f"{type(exc).__name__}: {exc}")

    @classmethod
    def create_demo(cls, nas_id: str, root: Path, patients: Sequence[DemoPatient]
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
