"""The plan of a run: a NAS's listing diffed against the index, and the safety rules
that refuse a plan before anything is written. Reads only what the engine hands it.

The listing and the index's rows are paired in one pass: merged as two key-ordered
streams when the NAS type lists in key order (memory for one row), else through a dict
of the indexed fingerprints (a poll's few folders, a database cursor).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nasindex.config import NasSettings
from nasindex.contract import Fingerprint, ItemFailure, ScanResult
from nasindex.errors import NasIndexError, UnsafeSync
from nasindex.folders import folder_of
from nasindex.guards import ListingShield
from nasindex.index.models import RunKind, utcnow

if TYPE_CHECKING:
    from nasindex.indexed import Known, KnownError

SIZE, MISSING = 1, 4  # positions in an indexed.Known row: fingerprint is [SIZE:MISSING]
# Why an item is read (SyncPlan.why, one byte per item of to_read): a run counts as new
# and changed only the items it committed.
REREAD, NEW, CHANGED, RETRIED = range(4)


@dataclass(slots=True)
class SyncPlan:
    to_read: list[Fingerprint] = field(default_factory=list)
    why: bytearray = field(default_factory=bytearray)  # REREAD/NEW/... per to_read item
    seen: int = 0  # listed
    new: int = 0  # not in the index yet
    changed: int = 0  # fingerprint differs from the index's
    retried: int = 0  # failed before: read again
    deferred: int = 0  # still being written (the second look): the next run reads it
    skipped: int = 0  # not an image (remembered, not reopened)
    revive: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    errors_gone: list[str] = field(default_factory=list)
    cursor: str | None = None
    failures: list[ItemFailure] = field(default_factory=list)  # what could not be listed
    new_failures: int = 0  # of which the index has no error row yet

    @property
    def reconciles(self) -> bool:
        """Whether reconciling writes anything (tombstones, revivals, error rows)."""
        return bool(self.gone or self.revive or self.errors_gone or self.new_failures)


@dataclass(slots=True)
class Unlisted:
    """Filled in while a scan is paired with the index: indexed items present before
    the run, and those the scan did not list (gone, unless already tombstoned)."""

    present: int = 0
    gone: list[str] = field(default_factory=list)

    def indexed(self, row: Known, listed: bool) -> None:
        if not row[MISSING]:
            self.present += 1
            if not listed:
                self.gone.append(row[0])


def pair_ordered(items: Iterable[Fingerprint], rows: Iterator[Known],
                 unlisted: Unlisted) -> Iterator[tuple[Fingerprint, Known | None]]:
    """Each listed item with its index row, by merging two key-ordered streams: one
    pass, and memory for one row instead of a dict of every indexed file."""
    row, last = next(rows, None), None
    for fp in items:
        if last is not None and fp.key <= last:
            raise NasIndexError(f"The listing is not in key order ({last!r} came before "
                                f"{fp.key!r}): a bug in this NAS type. Nothing was changed.")
        last = fp.key
        while row is not None and row[0] < fp.key:
            unlisted.indexed(row, listed=False)
            row = next(rows, None)
        if row is not None and row[0] == fp.key:
            unlisted.indexed(row, listed=True)
            yield fp, row
            row = next(rows, None)
        else:
            yield fp, None
    while row is not None:
        unlisted.indexed(row, listed=False)
        row = next(rows, None)


def pair_unordered(items: Iterable[Fingerprint], known: dict[str, Known],
                   unlisted: Unlisted) -> Iterator[tuple[Fingerprint, Known | None]]:
    """Each listed item with its index row, from a dict of every indexed item."""
    unlisted.present = sum(not row[MISSING] for row in known.values())
    for fp in items:
        yield fp, known.pop(fp.key, None)  # what is left in `known` at the end is gone
    unlisted.gone = [k for k, row in known.items() if not row[MISSING]]


def diff(pairs: Iterable[tuple[Fingerprint, Known | None]], errors: dict[str, KnownError],
         kind: RunKind) -> tuple[SyncPlan, set[str]]:
    """What a run of ``kind`` reads, revives and skips, and the keys of the error rows
    its listing saw (errors are few, files many: not a set of every key)."""
    plan, seen_errors = SyncPlan(), set()
    now = utcnow()
    full, retry = kind == RunKind.FULL, kind == RunKind.RETRY
    for fp, old in pairs:
        plan.seen += 1
        err = errors.get(fp.key)
        if err is not None:
            seen_errors.add(fp.key)
            if err.note:
                err = None  # indexed: a remark, not a failure to retry
        same = old is not None and old[SIZE:MISSING] == (fp.size, fp.mtime_ns, fp.version)
        if err is not None and (err.size, err.mtime_ns) == (fp.size, fp.mtime_ns):
            if err.skipped and not full:
                plan.skipped += 1
                continue
            if not (full or retry or err.due(now)):
                continue  # failed before; waits for its retry time
            plan.retried += 1
            _read(plan, fp, RETRIED)
        elif old is None:
            if not retry:
                plan.new += 1
                _read(plan, fp, NEW)
        elif not same:
            if not retry:
                plan.changed += 1
                _read(plan, fp, CHANGED)
        elif full:
            _read(plan, fp, REREAD)
        elif old[MISSING]:
            plan.revive.append(fp.key)
    return plan, seen_errors


def _read(plan: SyncPlan, fp: Fingerprint, why: int) -> None:
    plan.to_read.append(fp)
    plan.why.append(why)


def mark_gone(plan: SyncPlan, scan: ScanResult, unlisted: Unlisted,
              errors: dict[str, KnownError], seen_errors: set[str]) -> None:
    """What a complete listing, or a poll of whole folders (``scan.scopes``), shows to
    be gone: indexed items and error rows it did not list. What could not be listed is
    not gone: nothing under it is tombstoned, and its error rows stay."""
    shielded = ListingShield(plan.failures)
    plan.gone = [k for k in unlisted.gone if not shielded.covers(k)]
    scopes = set(scan.scopes or ())
    plan.errors_gone = [k for k in errors
                        if k not in seen_errors and not shielded.covers(k)
                        and (scan.complete or folder_of(k) in scopes)]


def check_safe(plan: SyncPlan, present: int, nas: NasSettings, whole: bool = True) -> None:
    """Fail before any write if the listing (``whole``: of the whole NAS) looks like a
    share that is not there, or would tombstone too much of the ``present`` items."""
    if whole and present and plan.seen == 0:
        unlisted = (f" ({plan.failures[0].rel_path}: {plan.failures[0].reason})"
                    if plan.failures else "")
        raise UnsafeSync(
            f"NAS {nas.id!r} listed no items{unlisted} but the index holds "
            f"{present}. Is the share mounted? Nothing was changed.")
    limit = nas.max_missing_fraction
    if present and len(plan.gone) > limit * present:
        raise UnsafeSync(
            f"NAS {nas.id!r}: {len(plan.gone)} of {present} indexed items "
            f"({len(plan.gone) / present:.0%}) are gone, more than the allowed "
            f"{limit:.0%}. Check the share; if the deletion is real, raise "
            "'max_missing_fraction' for this NAS and run again. Nothing was changed.")
