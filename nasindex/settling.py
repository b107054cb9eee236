"""Settling: nothing is indexed while it is still being written.

A file is ready when its size and mtime did not change between two looks
``settle_seconds`` apart: the listing is the first look. The engine waits until
``settle_seconds`` after the listing before it reads anything, so that every second look
comes at least that long after the first:

* in a poll, the NAS type looks again at once (``NasType.settle``): files that moved,
  and every new file of a folder that is still receiving files, wait for the next poll.
  The headers of those files are read (not indexed) to learn their studies, and every
  new file of those studies waits too: a study copied in file by file becomes
  searchable once no file of it has moved for ``settle_seconds``, whole, never half.
* in every run, the reader's own look at a file (``fstat`` when it opens it) is the
  second look of a full or incremental run: a file whose size or mtime moved since the
  listing is not indexed, and the next run reads it. Such a run waits only if a file it
  reads was modified within ``settle_seconds`` before the listing (by this host's
  clock: keep the NAS's in sync); for older files the first look spans the wait.

What waits is counted as ``deferred``; the folders it lies in are looked at again by the
next poll whatever their mtime (``folder.settled`` false).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nasindex.contract import Fingerprint, InstanceRecord, ItemFailure, NasType, ScanResult
from nasindex.folders import folder_of

NasCall = Callable[..., Any]  # (what, fn, *args) -> fn(*args), as nasindex.deadline.Deadline.call


@dataclass(slots=True)
class Settling:
    """What of a run waits for the next one: items (by key) and studies (by UID)."""

    waiting: set[str] = field(default_factory=set)  # keys of items not indexed this run
    held: set[str] = field(default_factory=set)  # study UIDs held back whole

    def second_look(self, nas: NasType, scan: ScanResult, to_read: Sequence[Fingerprint],
                    listed_at: float, settle_seconds: float, call: NasCall
                    ) -> set[str]:
        """Wait out ``settle_seconds`` after the listing, then have ``nas`` look again
        (polls). Returns the keys of ``to_read`` that must wait. A complete listing
        whose files were all last modified longer ago than that (by this host's clock)
        has had its first look span the wait already: it does not wait. ``call`` makes
        the NAS's calls (the engine's: under its no-progress deadline)."""
        recent = time.time_ns() - int(settle_seconds * 1e9) - int(
            (time.monotonic() - listed_at) * 1e9)
        if not scan.complete or any(fp.mtime_ns > recent for fp in to_read):
            wait = listed_at + settle_seconds - time.monotonic()
            if to_read and wait > 0:
                time.sleep(wait)
        if scan.complete or not to_read:
            return set()  # the reader's look at each file is the second one
        still = call("looking again at new files", nas.settle, to_read, scan)
        if not still:
            return set()
        read = call("reading files still being written", nas.read, still)
        self.held |= {o.study_uid for o in read if isinstance(o, InstanceRecord)}
        keys = {fp.key for fp in still}
        self.waiting |= keys
        return keys & {fp.key for fp in to_read}

    def keep(self, outcomes: Iterable[InstanceRecord | ItemFailure],
             batch: Sequence[Fingerprint]) -> list[InstanceRecord | ItemFailure]:
        """The outcomes to write: not a record of a file that moved since it was listed
        (it is still being written), nor of a study held back."""
        listed = {fp.key: fp for fp in batch}
        kept = []
        for o in outcomes:
            if isinstance(o, InstanceRecord):
                fp = listed[o.key]
                if (o.size, o.mtime_ns) != (fp.size, fp.mtime_ns) or o.study_uid in self.held:
                    self.waiting.add(o.key)
                    continue
            kept.append(o)
        return kept

    def folders(self) -> set[str]:
        """The folders to look at again by the next poll."""
        return {folder_of(key) for key in self.waiting}
