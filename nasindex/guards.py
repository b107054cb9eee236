"""The engine's rules for listings and reads that fail part-way: what was not listed is
not gone, and a run whose reads mostly fail is a share that went away, not bad files."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from nasindex.contract import InstanceRecord, ItemFailure, NasType
from nasindex.deadline import Deadline
from nasindex.errors import NasIndexError, NasUnavailable

# A batch with at least this many failed reads, and more failed than read, means the
# share went away (renamed, unmounted, stale) rather than a few files being unreadable.
MASS_READ_FAILURE_MIN = 10


class ListingShield:
    """Keys that must not be taken as gone: items, or folders (keys ending in ``/``,
    covering everything below them), that exist but could not be listed."""

    def __init__(self, failures: Iterable[ItemFailure]) -> None:
        self.keys = {f.key for f in failures}
        self.folders = {k for k in self.keys if k.endswith("/")}

    def covers(self, key: str) -> bool:
        if not self.keys:
            return False
        if key in self.keys:
            return True
        at = key.find("/") if self.folders else -1
        while at >= 0:
            if key[:at + 1] in self.folders:
                return True
            at = key.find("/", at + 1)
        return False


def listing_note(failures: Sequence[ItemFailure]) -> str:
    """The run message of a run that could not list everything."""
    first = failures[0]
    more = f" and {len(failures) - 1} more" if len(failures) > 1 else ""
    return (f"{len(failures)} item(s) could not be listed: {first.rel_path} ({first.reason})"
            f"{more}. Nothing under them was marked missing; see the error list.")


class ReadGuard:
    """Fails a run whose batch reads mostly failed for I/O reasons, naming the NAS and the
    cause, before that batch's failures are written: the items are read again by the
    next run, not one by one after a retry delay. Remembers the I/O failures earlier
    batches wrote, which the run forgets again if it trips (see SyncRun.__exit__)."""

    def __init__(self, nas: NasType, deadline: Deadline) -> None:
        self.nas = nas
        self.deadline = deadline  # the run's: the check of the NAS must not hang either
        self.tripped = False
        self.io_failed: list[str] = []

    def check(self, outcomes: Sequence[InstanceRecord | ItemFailure]) -> None:
        failed = [o for o in outcomes if isinstance(o, ItemFailure) and o.io_error]
        if len(failed) < MASS_READ_FAILURE_MIN or 2 * len(failed) <= len(outcomes):
            return
        self.tripped = True
        cause = Counter(f.reason for f in failed).most_common(1)[0][0]
        what = (f"{len(failed)} of {len(outcomes)} reads in a row failed ({cause}); what was "
                "read before is kept, and the next run reads the rest again.")
        try:
            self.deadline.call("checking that it can be read", self.nas.check)
        except NasIndexError as exc:
            raise NasUnavailable(f"{exc} It went away mid-run: {what}") from None
        raise NasUnavailable(f"NAS {self.nas.nas_id!r}: the share went away or stopped answering "
                             f"mid-run: {what} Check the share and its mount.")

    def written(self, outcomes: Iterable[InstanceRecord | ItemFailure]) -> None:
        self.io_failed += [o.key for o in outcomes if isinstance(o, ItemFailure) and o.io_error]
