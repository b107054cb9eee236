"""Listing a DICOM folder tree: all of it, or a poll of what moved.

* :meth:`TreeLister.walk` lists every file, depth first in key order, and notes every
  folder with its mtime (a :class:`FolderMark`), for the polls that follow.
* :meth:`TreeLister.poll` stats the folders the index knows and lists again only those
  whose mtime moved (an entry was added, removed or renamed), that were still receiving
  files at the last look, or whose share of the rolling sweep is due. A sub-folder it
  does not know is new: walked whole. A known folder that is gone is a scope without
  items, so everything directly in it is gone (its known sub-folders are stat-ed too).
  A poll costs a stat per folder plus the listings of what moved: it does not grow
  with the number of files.
* :meth:`TreeLister.settle` is the second look, a few seconds later: which new or
  changed files are still being written.

Whatever cannot be listed (a folder without permission, a symlink loop) is recorded in
``ScanResult.failures``: nothing under it is taken as gone.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from nasindex.plugin import (
    Fingerprint,
    FolderMark,
    ItemFailure,
    PollState,
    ScanResult,
    escape_path,
    real_path,
)

# Names that are never images: counted as skipped without being opened.
NOT_IMAGES = {"dicomdir", "thumbs.db", ".ds_store", "desktop.ini"}
# A folder modified this recently when a complete listing looks at it may still be
# receiving files: the next poll lists it again (the second look at a folder).
RECENT_NS = 10 * 10**9

Entry = tuple[str, os.DirEntry, bool]  # escaped name ("x/" for a folder), entry, is a folder


class TreeLister:
    """Lists the tree under ``root``; ``follow_symlinks`` as the NAS option says."""

    def __init__(self, root: Path, follow_symlinks: bool) -> None:
        self.root = root
        self.follow = follow_symlinks

    # -- the whole tree --------------------------------------------------------------
    def walk(self) -> ScanResult:
        result = ScanResult(items=(), complete=True, ordered=True)
        result.items = self._walk(self.root, "", result, set())
        return result

    def _walk(self, folder: Path, prefix: str, result: ScanResult,
              above: set[tuple[int, int]], known: frozenset[str] = frozenset()
              ) -> Iterator[Fingerprint]:
        """Depth first, in key order: a folder's entries sorted by escaped name, a
        sub-folder's name with its "/" (so "a.dcm" < "a/b.dcm", as the keys compare).
        Sub-folders in ``known`` are left out (a poll stats them itself)."""
        try:
            st, entries = self._entries(folder, above)
        except FileNotFoundError:
            if not prefix:
                raise
            return  # gone since its parent was listed: so is everything below it
        except OSError as exc:
            if not prefix:
                raise  # the root itself: check() explains it; the run fails
            result.failures.append(_unlistable(prefix, exc))
            return
        result.folders.append(FolderMark(prefix, st.st_mtime_ns, _settled(st, result)))
        if result.scopes is not None:
            result.scopes.append(prefix)
        here = above | {(st.st_dev, st.st_ino)}
        for name, entry, is_dir in entries:
            rel = prefix + name
            if not is_dir:
                yield from self._file(entry, rel, result)
            elif rel not in known:
                yield from self._walk(Path(entry.path), rel, result, here, known)

    def _file(self, entry: os.DirEntry, rel: str, result: ScanResult) -> Iterator[Fingerprint]:
        try:
            st = entry.stat(follow_symlinks=self.follow)
        except FileNotFoundError:
            return  # deleted between the folder's listing and this stat: gone
        except OSError as exc:  # a symlink loop, a dangling link, an I/O error
            result.failures.append(ItemFailure(rel, rel, f"cannot be listed ({why(exc)})",
                                               io_error=True))
            return
        if not stat.S_ISREG(st.st_mode):
            return  # a pipe, socket or device: never an image
        if entry.name.lower() in NOT_IMAGES or st.st_size == 0:
            result.skipped.append(ItemFailure(rel, rel, "not an image", skipped=True))
            return
        yield Fingerprint(rel, rel, st.st_size, st.st_mtime_ns)

    def _entries(self, folder: Path, above: set[tuple[int, int]]
                 ) -> tuple[os.stat_result, list[Entry]]:
        """The folder's stat (taken before listing it: a change during the listing moves
        its mtime past the one noted) and its entries, sorted by name. Entries that are
        neither folders nor files are kept when they are symbolic links followed (the
        stat that follows tells what is wrong with them) and dropped otherwise."""
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in above:
            raise OSError(errno.ELOOP, "symbolic link loop: a folder contains itself")
        with os.scandir(folder) as listing:
            found = []
            for e in listing:
                is_dir, listed = _kind(e, self.follow)
                if listed:
                    name = escape_path(e.name)
                    found.append((name + "/" if is_dir else name, e, is_dir))
        found.sort(key=lambda entry: entry[0])
        return st, found

    # -- a poll ------------------------------------------------------------------------
    def poll(self, state: PollState) -> ScanResult:
        result = ScanResult(items=[], complete=False, scopes=[])
        items: list[Fingerprint] = []
        known = frozenset(state.folders)
        for path, mark in state.folders.items():
            st = self._look(path, result)
            if st is None:
                continue
            moved = st.st_mtime_ns != mark.mtime_ns
            if moved or not mark.settled or state.swept(path):
                items += self._relist(path, mark, result, known)
        result.items = items
        return result

    def _look(self, path: str, result: ScanResult) -> os.stat_result | None:
        """The folder's stat; None (and noted) if it is gone or cannot be looked at."""
        try:
            st = os.stat(self._path(path), follow_symlinks=self.follow or not path)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            result.failures.append(_unlistable(path, exc))
            return None
        if st is None or not stat.S_ISDIR(st.st_mode):
            result.folders_gone.append(path)
            result.scopes.append(path)  # listed, empty: what was in it is gone
            return None
        return st

    def _relist(self, path: str, mark: FolderMark, result: ScanResult,
                known: frozenset[str]) -> list[Fingerprint]:
        """The folder's own files, and new sub-folders whole. Noted as settled only if
        its mtime did not move since the last look (two looks at one mtime)."""
        first = len(result.folders)
        found = list(self._walk(self._path(path), path, result, set(), known))
        if len(result.folders) > first and result.folders[first].path == path:
            own = result.folders[first]
            result.folders[first] = FolderMark(path, own.mtime_ns,
                                               own.mtime_ns == mark.mtime_ns)
        return found

    def _path(self, path: str) -> Path:
        return real_path(self.root, path) if path else self.root

    # -- the second look -----------------------------------------------------------------
    def settle(self, items: Sequence[Fingerprint], scan: ScanResult,
               known: frozenset[str]) -> list[Fingerprint]:
        """Of the new and changed ``items`` of the poll ``scan``, those still being
        written, as they are now: changed since listed; and, for every folder the poll
        looked at whose mtime has moved since (files are still arriving: a sibling
        series folder, the next file), its new files, including those that arrived
        since (for the engine to learn their studies). ``known``: the folders the poll
        started from."""
        looked = {m.path: m.mtime_ns for m in scan.folders}
        listed = {fp.key for fp in scan.items}  # a poll's items are a list
        candidates = {fp.key for fp in items}
        still: list[Fingerprint] = []
        moving: set[str] = set()
        for path, mtime in looked.items():
            try:
                if os.stat(self._path(path)).st_mtime_ns == mtime:
                    continue
            except OSError:
                continue  # gone: reading what was in it will say so
            moving.add(path)
            again = ScanResult(items=(), complete=False, scopes=[])
            still += [fp for fp in self._walk(self._path(path), path, again, set(),
                                              known | looked.keys())
                      if fp.key in candidates or fp.key not in listed]
        still += [now for fp in items if fp.key[:fp.key.rfind("/") + 1] not in moving
                  and (now := self._restat(fp)) is not None]
        return still

    def _restat(self, fp: Fingerprint) -> Fingerprint | None:
        """The item as it is now, if it changed since listed."""
        try:
            st = os.stat(real_path(self.root, fp.rel_path), follow_symlinks=self.follow)
        except OSError:
            return None  # gone or unreadable: reading it will say so
        if (st.st_size, st.st_mtime_ns) == (fp.size, fp.mtime_ns):
            return None
        return Fingerprint(fp.key, fp.rel_path, st.st_size, st.st_mtime_ns)


def _settled(st: os.stat_result, result: ScanResult) -> bool:
    """A complete listing takes a folder as settled unless it changed moments ago (by
    the indexing host's clock: keep the NAS's in sync, NTP). A poll decides by two looks
    (see TreeLister._relist); a folder new to a poll is looked at again by the next."""
    if result.scopes is not None:
        return False
    return time.time_ns() - st.st_mtime_ns > RECENT_NS


def _unlistable(path: str, exc: OSError) -> ItemFailure:
    return ItemFailure(path, path, f"folder cannot be listed ({why(exc)}); nothing below it "
                       "was marked missing", io_error=True)


def _kind(entry: os.DirEntry, follow: bool) -> tuple[bool, bool]:
    """(is a folder, is listed): folders and files are; so is a followed symbolic link
    whose target cannot be reached (a loop), for its stat to report why."""
    try:
        if entry.is_dir(follow_symlinks=follow):
            return True, True
        return False, entry.is_file(follow_symlinks=follow)
    except OSError:
        return False, follow and entry.is_symlink()


def why(exc: OSError) -> str:
    """The OS's reason without the path (the error row names the path, escaped)."""
    return exc.strerror or type(exc).__name__
