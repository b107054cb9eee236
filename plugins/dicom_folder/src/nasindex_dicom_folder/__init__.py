"""NAS type ``dicom-folder``: a folder tree of plain DICOM files.

Indexing reads headers only (never pixel data; the usual files through
:mod:`~nasindex_dicom_folder.fastheader`); the engine hashes the files in a later pass.
``open_image`` decodes pixels for previews. The header parser lives in
:mod:`nasindex_dicom_folder.reader` and is imported where files are read: every CLI
run loads this module, and a no-change sync never needs pydicom (~0.25 s to import).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasindex import plugin  # the public plugin API, and all this NAS type uses of nasindex

if TYPE_CHECKING:
    import numpy as np


# Names that are never images: counted as skipped without being opened.
NOT_IMAGES = {"dicomdir", "thumbs.db", ".ds_store", "desktop.ini"}


class DicomFolderOptions(plugin.NasOptions):
    follow_symlinks: bool = False


class DicomFolder(plugin.NasType):
    name = "dicom-folder"
    description = "A folder tree of plain DICOM files (read-only)."
    Options = DicomFolderOptions
    demo_devices = ("ct",)
    worker_modules = ("nasindex_dicom_folder.reader",)
    hashes_files = True  # by the engine's pass after the metadata (NasType.content_hash)
    hashes_files = True

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

    def scan(self, cursor: str | None = None) -> plugin.ScanResult:
        result = plugin.ScanResult(items=(), complete=True, ordered=True)
        result.items = self._walk(self.root, "", result, set())
        return result

    def _walk(self, folder: Path, prefix: str, result: plugin.ScanResult,
              above: set[tuple[int, int]]) -> Iterator[plugin.Fingerprint]:
        """Depth first, in key order: a folder's entries sorted by escaped name, a
        sub-folder's name with its "/" (so "a.dcm" < "a/b.dcm", as the keys compare).
        A folder or file that cannot be listed is recorded in ``result.failures`` and
        the walk goes on; ``above`` holds the folders on the way down (symlink loops)."""
        try:
            entries = self._entries(folder, above)
        except FileNotFoundError:
            if not prefix:
                raise
            return  # gone since its parent was listed: so is everything below it
        except OSError as exc:
            if not prefix:
                raise  # the root itself: check() explains it; the run fails
            result.failures.append(plugin.ItemFailure(
                prefix, prefix, f"folder cannot be listed ({_why(exc)}); nothing below it "
                "was marked missing", io_error=True))
            return
        follow = self.options.follow_symlinks
        here = above | {_identity(folder)}
        for name, entry, is_dir in entries:
            rel = prefix + name
            if is_dir:
                yield from self._walk(Path(entry.path), rel, result, here)
                continue
            try:
                st = entry.stat(follow_symlinks=follow)
            except FileNotFoundError:
                continue  # deleted between the folder's listing and this stat: gone
            except OSError as exc:  # a symlink loop, a dangling link, an I/O error
                result.failures.append(plugin.ItemFailure(
                    rel, rel, f"cannot be listed ({_why(exc)})", io_error=True))
                continue
            if not stat.S_ISREG(st.st_mode):
                continue  # a pipe, socket or device: never an image
            if name.lower() in NOT_IMAGES or st.st_size == 0:
                result.skipped.append(plugin.ItemFailure(rel, rel, "not an image", skipped=True))
                continue
            yield plugin.Fingerprint(rel, rel, st.st_size, st.st_mtime_ns)

    def _entries(self, folder: Path, above: set[tuple[int, int]]
                 ) -> list[tuple[str, os.DirEntry, bool]]:
        """(escaped name, entry, is a folder) of one folder, sorted by name. Entries that
        are neither folders nor files are kept when they are symbolic links followed
        (the stat that follows tells what is wrong with them) and dropped otherwise."""
        if _identity(folder) in above:
            raise OSError(errno.ELOOP, "symbolic link loop: a folder contains itself")
        follow = self.options.follow_symlinks
        with os.scandir(folder) as listing:
            found = []
            for e in listing:
                is_dir, listed = _kind(e, follow)
                if listed:
                    name = plugin.escape_path(e.name)
                    found.append((name + "/" if is_dir else name, e, is_dir))
        found.sort(key=lambda entry: entry[0])
        return found

    def read(self, batch: Sequence[plugin.Fingerprint]
             ) -> list[plugin.InstanceRecord | plugin.ItemFailure]:
        return [self._read_one(fp) for fp in batch]

    def _read_one(self, fp: plugin.Fingerprint) -> plugin.InstanceRecord | plugin.ItemFailure:
        from nasindex_dicom_folder.reader import NotDicom, read_file

        plugin.progress()
        try:
            with open(plugin.real_path(self.root, fp.rel_path), "rb") as f:
                return read_file(fp.key, fp.rel_path, f)
        except FileNotFoundError:
            return plugin.ItemFailure(fp.key, fp.rel_path,
                                      "vanished between listing and reading", io_error=True)
        except OSError as exc:
            return plugin.ItemFailure(fp.key, fp.rel_path, f"unreadable: {_why(exc)}",
                                      io_error=True)
        except NotDicom as exc:
            return plugin.ItemFailure(fp.key, fp.rel_path, str(exc), skipped=True)
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


def _kind(entry: os.DirEntry, follow: bool) -> tuple[bool, bool]:
    """(is a folder, is listed): folders and files are; so is a followed symbolic link
    whose target cannot be reached (a loop), for its stat to report why."""
    try:
        if entry.is_dir(follow_symlinks=follow):
            return True, True
        return False, entry.is_file(follow_symlinks=follow)
    except OSError:
        return False, follow and entry.is_symlink()


def _identity(folder: Path) -> tuple[int, int]:
    st = os.stat(folder)
    return st.st_dev, st.st_ino


def _why(exc: OSError) -> str:
    """The OS's reason without the path (the error row names the path, escaped)."""
    return exc.strerror or type(exc).__name__
