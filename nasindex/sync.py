"""The sync engine: plain Python, no Prefect. One run of one NAS is

    check -> scan -> diff against the index -> read new/changed in parallel, one
    transaction per batch -> tombstone what is gone, revive what came back -> record.

The CLI runs these steps in a row (:func:`run_sync`); the Prefect flows run the same
steps as tasks. Nothing is written before the plan has passed its safety checks.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from itertools import pairwise
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from nasindex import folders, indexed, store
from nasindex.config import NasSettings
from nasindex.contract import (
    Fingerprint,
    FolderMark,
    InstanceRecord,
    ItemFailure,
    NasType,
    PollState,
    ScanResult,
)
from nasindex.deadline import Deadline
from nasindex.diffing import (
    CHANGED,
    NEW,
    SyncPlan,
    Unlisted,
    check_safe,
    diff,
    mark_gone,
    pair_ordered,
    pair_unordered,
)
from nasindex.errors import NasIndexError
from nasindex.guards import ReadGuard, listing_note
from nasindex.hashing import hash_pending
from nasindex.index.faults import storage_fault
from nasindex.index.models import RUN_COUNTS, RunCounts, RunKind, RunStatus, Study
from nasindex.runlock import run_lock
from nasindex.settling import Settling
from nasindex.stopping import StopSignals, signal_name
from nasindex.workers import WorkerPool, batch_id, read_fitted

IN_PROCESS_BELOW = 200  # smaller jobs are read in-process: a pool costs more than it saves


class RunSummary(RunCounts):
    """One run as the CLI, the flows and the reports show it: the counts the index keeps,
    and what only the run itself knows."""

    nas: str
    kind: str
    status: RunStatus = RunStatus.RUNNING
    indexed: int = 0
    seconds: float = 0.0
    message: str | None = None
    first_errors: list[tuple[str, str]] = []
    run_id: int | None = None
    # Studies this run added to the index, counted per modality (run reports show them).
    new_studies: dict[str, int] = {}
    hashed: int = 0  # content hashes filled in after the run (nasindex.hashing)
    # Seconds from the newest indexed file's mtime to the commit that made it searchable.
    newest_lag: float | None = None

    @property
    def files_per_second(self) -> float:
        return self.indexed / self.seconds if self.seconds > 0 else 0.0

    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in RUN_COUNTS}

    def as_dict(self) -> dict[str, Any]:
        return {"nas": self.nas, "kind": self.kind, "status": self.status, **self.counts(),
                "indexed": self.indexed, "seconds": round(self.seconds, 3),
                "files_per_second": round(self.files_per_second, 1), "message": self.message,
                "first_errors": [list(e) for e in self.first_errors], "run_id": self.run_id,
                "new_studies": dict(sorted(self.new_studies.items())), "hashed": self.hashed,
                "newest_lag_seconds": self.newest_lag}


class SyncRun:
    """One run of one NAS. Use as a context manager: it holds the NAS's run lock and
    records the run as failed, with the reason, if anything raises.

    It takes ready objects: the NAS-type object (``registry.open_nas``), that NAS's
    settings and the index's engine (``index.db.require_current``). The caller resolves
    them once; building a run looks nothing up and touches no file or database.

    ``quiet`` (a watch's polls): the run is recorded only once it has something to write,
    and a failure is left to the caller to record. ``sweep`` (share, shares): the share
    of folders whose files a poll stats whatever their mtime (the rolling sweep)."""

    def __init__(self, nas: NasType, nas_settings: NasSettings, engine: Engine,
                 kind: RunKind | str = RunKind.INCREMENTAL,
                 flow_run_id: str | None = None, quiet: bool = False,
                 sweep: tuple[int, int] = (0, 0)) -> None:
        if nas.nas_id != nas_settings.id:
            raise ValueError(f"NAS object {nas.nas_id!r} does not match settings of "
                             f"{nas_settings.id!r}")
        self.nas = nas
        self.nas_settings = nas_settings
        self.engine = engine
        self.kind = RunKind(kind)
        self.flow_run_id = flow_run_id
        self.summary = RunSummary(nas=nas.nas_id, kind=self.kind.value)
        self.plan_: SyncPlan | None = None
        self._next_batch: dict[tuple[str, int], Sequence[Fingerprint]] = {}
        self._batch_start: dict[tuple[str, int], int] = {}
        self._deadline = Deadline(nas.nas_id, nas_settings.io_timeout_seconds)
        self._reads = ReadGuard(nas, self._deadline)
        self._workers = WorkerPool(nas, nas_settings.workers, self._deadline)
        self._signals = StopSignals()
        self._lock = None
        self._started = 0.0
        self.quiet = quiet
        self.sweep = sweep
        self.settling = Settling()
        self._scan: ScanResult | None = None
        self._known_folders: dict[str, FolderMark] = {}
        self._newest_mtime = 0

    # -- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> SyncRun:
        # Stop signals first: a NAS type's library that installs handlers of its own
        # when it opens (the Firebird client) then calls ours instead of swallowing them.
        self._signals.__enter__()
        self._lock = run_lock(self.engine, self.nas_settings.id)
        try:
            self._lock.__enter__()
            try:
                with self.index_faults():
                    self.nas_pk = store.ensure_nas(self.engine, self.nas_settings)
                    if not self.quiet:
                        self._record()
            except BaseException:
                self._lock.__exit__(None, None, None)
                raise
        except BaseException:
            self._signals.restore()
            raise
        self._started = time.perf_counter()
        return self

    def _record(self) -> None:
        """Start the run record, once (a quiet run: when it first writes)."""
        if self.summary.run_id is None:
            self.summary.run_id = store.start_run(self.engine, self.nas_pk, self.kind.value,
                                                  self.flow_run_id)

    def __exit__(self, exc_type, exc, tb) -> None:
        stopped = self._signals.received
        try:
            # A failed or stopped run wants no more reads.
            self._workers.stop(kill=exc is not None or stopped is not None)
            if self.summary.run_id is None:  # a quiet run that wrote nothing
                self._conclude_quiet(exc, stopped)
                return
            self._conclude(exc, stopped)
            self.summary.seconds = time.perf_counter() - self._started
            self._finish(exc)
        finally:
            self._lock.__exit__(None, None, None)
            if stopped is not None:
                self._signals.pass_on()  # now do what the signal was meant to do
            self._signals.restore()

    @contextlib.contextmanager
    def index_faults(self) -> Iterator[None]:
        """A full, read-only or damaged index raised as IndexStorageError (one line
        naming the cause and the fix), not retried as if it were a passing hiccup."""
        try:
            yield
        except DBAPIError as exc:
            fault = storage_fault(exc, str(self.engine.url))
            if fault is None:
                raise
            raise fault from exc

    def _finish(self, exc: BaseException | None) -> None:
        """Record the run's end. On a full or read-only disk that may fail too: the run
        record then keeps the counts its batches committed, shows as interrupted once
        this process is gone, and the fault that stopped the run is what is raised."""
        try:
            store.finish_run(self.engine, self.summary.run_id, self.summary.status,
                             self.summary.message, self.summary.counts(),
                             self.summary.newest_lag)
        except Exception as finish_exc:
            fault = storage_fault(finish_exc, str(self.engine.url))
            if fault is None:
                raise
            if exc is None:
                raise fault from finish_exc

    def _conclude_quiet(self, exc: BaseException | None, stopped: int | None) -> None:
        """The status of a quiet run that wrote nothing (it leaves no record: the watch
        records a failure itself, once per reason)."""
        s = self.summary
        s.seconds = time.perf_counter() - self._started
        s.status = (RunStatus.INTERRUPTED if stopped is not None else
                    RunStatus.FAILED if exc is not None else RunStatus.SUCCEEDED)

    def _conclude(self, exc: BaseException | None, stopped: int | None) -> None:
        """The run's status and message, and what a failed run undoes."""
        s = self.summary
        if stopped is not None:
            s.status = RunStatus.INTERRUPTED
            s.message = (f"stopped by {signal_name(stopped)}; what it committed is kept and "
                         "the next run goes on from there")
        elif exc is not None:
            s.status = RunStatus.FAILED
            s.message = operator_message(exc)
        elif s.status == RunStatus.RUNNING:
            s.status = RunStatus.SUCCEEDED
            if self.plan_ is not None and self.plan_.failures:
                s.message = listing_note(self.plan_.failures)
        if s.status != RunStatus.SUCCEEDED and self._reads.tripped:
            # The share went away: its items are read again by the next run at once.
            store.forget_errors(self.engine, self.nas_pk, self._reads.io_failed)

    # -- steps -----------------------------------------------------------------------
    def plan(self) -> SyncPlan:
        """Check the NAS, list it and diff against the index. Writes nothing."""
        self._deadline.call("checking that it can be read", self.nas.check)
        if self.kind == RunKind.FULL and self.nas_settings.workers > 1:
            self._workers.start_server()  # a full run reads everything
        full = self.kind == RunKind.FULL
        cursor = None if full else indexed.get_cursor(self.engine, self.nas_pk)
        scan = self._scan = self._list(cursor)
        if not isinstance(scan.items, list | tuple):  # a lazy listing: watched item by item
            scan.items = self._deadline.iterate("listing it", scan.items)
        errors = indexed.known_errors(self.engine, self.nas_pk)
        unlisted = Unlisted()
        if scan.ordered:
            rows = indexed.known_items_ordered(self.engine, self.nas_pk)
            pairs = pair_ordered(scan.items, rows, unlisted)
        else:
            known = (folders.items_in(self.engine, self.nas_pk, scan.scopes,
                                      self._known_folders) if scan.scopes is not None
                     else indexed.known_items(self.engine, self.nas_pk))
            pairs = pair_unordered(scan.items, known, unlisted)
        plan, seen_errors = diff(pairs, errors, self.kind)
        listed_at = time.monotonic()
        plan.skipped += len(scan.skipped)
        plan.cursor = scan.cursor
        plan.failures = list(scan.failures)
        plan.new_failures = sum(f.key not in errors for f in plan.failures)
        if scan.complete or scan.scopes is not None:
            mark_gone(plan, scan, unlisted, errors, seen_errors)
            if scan.complete:
                check_safe(plan, unlisted.present, self.nas_settings)
            elif plan.gone:  # a poll: what is gone weighed against all the NAS holds
                check_safe(plan, indexed.count_present(self.engine, self.nas_pk),
                           self.nas_settings, whole=False)
        self._look_again(scan, plan, listed_at)
        self.plan_ = plan
        s = self.summary
        s.seen, s.deferred, s.skipped = plan.seen, plan.deferred, plan.skipped
        s.failed = len(plan.failures)
        s.first_errors = [(f.rel_path, f.reason) for f in plan.failures[:10]]
        return plan

    def _list(self, cursor: str | None) -> ScanResult:
        """The NAS's listing: a poll of the folders that moved, when this is a poll of a
        type that polls folders and the index knows them; else the whole listing."""
        if self.kind == RunKind.POLL and self.nas.polls_folders:
            self._known_folders = folders.load(self.engine, self.nas_pk)
            if self._known_folders:
                poll = PollState(self._known_folders, *self.sweep)
                return self._deadline.call("polling its folders", self.nas.scan, cursor, poll)
        return self._deadline.call("listing it", self.nas.scan, cursor)

    def _look_again(self, scan: ScanResult, plan: SyncPlan, listed_at: float) -> None:
        """The second look (nasindex.settling): what is still being written waits."""
        waiting = self.settling.second_look(self.nas, scan, plan.to_read, listed_at,
                                            self.nas_settings.settle_seconds,
                                            self._deadline.call)
        if waiting:
            keep = [i for i, fp in enumerate(plan.to_read) if fp.key not in waiting]
            plan.deferred += len(plan.to_read) - len(keep)
            plan.to_read = [plan.to_read[i] for i in keep]
            plan.why = bytearray(plan.why[i] for i in keep)

    def batches(self) -> list[list[Fingerprint]]:
        todo = self._require_plan().to_read
        size = self.nas_settings.batch_size
        batches = [todo[i:i + size] for i in range(0, len(todo), size)]
        self._next_batch = {batch_id(a): b for a, b in pairwise(batches)}
        self._batch_start = {batch_id(b): i * size for i, b in enumerate(batches)}
        return batches

    def ingest(self, batch: Sequence[Fingerprint]) -> store.BatchCounts:
        """Read one batch (in worker processes when it pays) and commit it atomically,
        with the run record's counts of what it committed."""
        outcomes = list(self._read(batch))
        by_key = {fp.key: fp for fp in batch}
        outcomes = [_with_fingerprint(o, by_key[o.key]) if isinstance(o, ItemFailure) else o
                    for o in outcomes]
        self._reads.check(outcomes)
        kept = self.settling.keep(outcomes, batch)
        self.summary.deferred += len(outcomes) - len(kept)
        outcomes = kept
        if not outcomes:  # all still being written: nothing to write, nor to record
            return store.BatchCounts()
        new, changed = self._committed_kinds(batch, outcomes)
        with self.index_faults():
            self._record()
            fresh = self._new_studies(o for o in outcomes if isinstance(o, InstanceRecord))
            counts = store.write_batch(self.engine, self.nas_pk, outcomes,
                                       self.summary.run_id, {"new": new, "changed": changed})
        self._note_lag(outcomes)
        self._reads.written(outcomes)
        s = self.summary
        for modality in fresh:
            s.new_studies[modality] = s.new_studies.get(modality, 0) + 1
        s.new += new
        s.changed += changed
        s.indexed += counts.indexed
        s.failed += counts.failed
        s.skipped += counts.skipped
        for o in outcomes:
            if isinstance(o, ItemFailure) and not o.skipped and len(s.first_errors) < 10:
                s.first_errors.append((o.rel_path, o.reason))
        return counts

    def _note_lag(self, committed: Iterable[InstanceRecord | ItemFailure]) -> None:
        """The lag of the newest file indexed so far: from its mtime to now, its commit.
        Of polls and syncs only: a full index re-reads old files on purpose."""
        if self.kind not in (RunKind.POLL, RunKind.INCREMENTAL):
            return
        newest = max((o.mtime_ns for o in committed if isinstance(o, InstanceRecord)),
                     default=0)
        if newest > self._newest_mtime:
            self._newest_mtime = newest
            self.summary.newest_lag = max(time.time() - newest / 1e9, 0.0)

    def _committed_kinds(self, batch: Sequence[Fingerprint],
                         outcomes: list[InstanceRecord | ItemFailure]) -> tuple[int, int]:
        """How many of the batch's items that are indexed now were new, and changed."""
        start = self._batch_start.get(batch_id(batch))
        if start is None:
            return 0, 0
        why = self._require_plan().why
        committed = {o.key for o in outcomes if isinstance(o, InstanceRecord)}
        kinds = [why[start + i] for i, fp in enumerate(batch) if fp.key in committed]
        return kinds.count(NEW), kinds.count(CHANGED)

    def _new_studies(self, records: Iterable[InstanceRecord]) -> list[str]:
        """One modality per (study not yet in the index, modality) among ``records``."""
        modalities: dict[str, set[str]] = {}
        for r in records:
            modalities.setdefault(r.study_uid, set()).add(r.modality or "?")
        if not modalities:
            return []
        with self.engine.connect() as conn:
            known = set(conn.scalars(select(Study.study_uid).where(
                Study.nas_id == self.nas_pk, Study.study_uid.in_(list(modalities)))))
        return [m for uid, ms in modalities.items() if uid not in known for m in ms]

    def _read(self, batch: Sequence[Fingerprint]) -> Iterator[InstanceRecord | ItemFailure]:
        plan = self._require_plan()
        if self.nas_settings.workers == 1 or len(plan.to_read) < IN_PROCESS_BELOW:
            yield from self._deadline.call("reading files", read_fitted, self.nas, batch)
            return
        yield from self._workers.read(batch, self._next_batch.get(batch_id(batch)))

    def reconcile(self) -> None:
        """Tombstone what is gone, revive what came back unchanged, keep the cursor and
        what the listing saw of the folders (for the next poll)."""
        plan = self._require_plan()
        with self.index_faults():
            if self.nas.polls_folders and self._scan is not None:
                folders.save(self.engine, self.nas_pk, self._scan, self.settling.folders())
            if plan.reconciles or self.summary.run_id is not None:
                self._record()
                store.write_failures(self.engine, self.nas_pk, plan.failures)
                self.summary.missing = store.tombstone(self.engine, self.nas_pk, plan.gone)
                self.summary.revived = store.revive(self.engine, self.nas_pk, plan.revive)
                store.forget_errors(self.engine, self.nas_pk, plan.errors_gone)
            if plan.cursor is not None:
                store.set_cursor(self.engine, self.nas_pk, plan.cursor)

    def _require_plan(self) -> SyncPlan:
        if self.plan_ is None:
            raise RuntimeError("plan() must run first")
        return self.plan_


def _with_fingerprint(failure: ItemFailure, fp: Fingerprint) -> ItemFailure:
    return replace(failure, size=fp.size, mtime_ns=fp.mtime_ns)


def operator_message(exc: BaseException) -> str:
    """What a failed run (or a watch's failed poll) records: the operator's sentence
    of our own errors and of storage faults, else the exception as it is."""
    if isinstance(exc, NasIndexError):
        return str(exc)
    fault = storage_fault(exc, None)
    if fault is not None:
        return str(fault)
    return f"{type(exc).__name__}: {exc}"


Progress = Callable[[int, int], None]


def run_sync(nas: NasType, nas_settings: NasSettings, engine: Engine,
             kind: RunKind | str = RunKind.INCREMENTAL, on_progress: Progress | None = None,
             flow_run_id: str | None = None, hash_files: bool = True) -> RunSummary:
    """All steps of one run, in a row (the objects as :class:`SyncRun` takes them), then
    (``hash_files``) the content hashes of what it indexed, after the run: its metadata
    is searchable before the hashing starts. Raises (after recording the failure) on
    error."""
    with SyncRun(nas, nas_settings, engine, kind, flow_run_id) as run:
        plan = run.plan()
        total, done = len(plan.to_read), 0
        for batch in run.batches():
            run.ingest(batch)
            done += len(batch)
            if on_progress:
                on_progress(done, total)
        run.reconcile()
    if hash_files:
        run.summary.hashed = hash_pending(nas, run.nas_pk, engine,
                                          nas_settings.io_timeout_seconds).hashed
    return run.summary
