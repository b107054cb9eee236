"""The engine's worker processes: how they start (a fork server that preloads what
they import), what each does with a batch (read it, fit every outcome for the index),
and a run's pool of them (:class:`WorkerPool`).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import os
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from typing import Any

from nasindex.contract import Fingerprint, InstanceRecord, ItemFailure, NasType, set_progress_hook
from nasindex.deadline import POLL, Deadline
from nasindex.limits import fit
from nasindex.stopping import stop_pool, worker_init

CHUNK = 50  # items per task sent to a worker process


def worker_context(nas: NasType) -> multiprocessing.context.ForkServerContext:
    """forkserver: safe beside the threads Prefect and SQLAlchemy run. The fork server
    imports once what every worker needs, so that each worker forks with it loaded."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_worker_modules(nas))  # no effect once the server runs
    return ctx


def _worker_modules(nas: NasType) -> list[str]:
    """The NAS type's read modules, and what the parent's ``__main__`` imports: every
    forkserver worker re-runs ``__main__`` (for the CLI: all of nasindex.cli, ~0.5 s of
    imports a worker); preloaded, that re-run is a dictionary lookup."""
    main = sys.modules.get("__main__")
    from_main = {getattr(v, "__module__", None) or getattr(v, "__name__", None)
                 for v in vars(main).values() if callable(v) or isinstance(v, type(sys))
                 } if main is not None else set()
    wanted = {type(nas).__module__, *from_main} - {None, "__main__", "builtins"}
    return sorted({*(m for m in wanted if m in sys.modules), *nas.worker_modules})


def read_fitted(nas: NasType, batch: Sequence[Fingerprint]
                ) -> list[InstanceRecord | ItemFailure]:
    """What a worker (or the run itself) does with a batch: read it, and make each
    outcome fit for the index right there (a 10 MB name is cut before it travels)."""
    return [fit(o) for o in nas.read(batch)]


def init_worker(run_pid: int, beat: Any) -> None:
    """A worker's start: it exits with the run's process, and reports progress into the
    run's shared ``beat`` (the run's no-progress deadline)."""
    worker_init(run_pid)
    set_progress_hook(lambda: setattr(beat, "value", time.monotonic()))


def batch_id(batch: Sequence[Fingerprint]) -> tuple[str, int]:
    """Names a batch by value: Prefect may hand a task a copy of the list."""
    return (batch[0].key, len(batch)) if batch else ("", 0)


class WorkerPool:
    """A run's worker processes, started by the first batch they read. A batch goes to
    them in tasks of ``CHUNK`` items; the run fails with NasUnavailable when no worker
    made progress (a file read, a task done) for the deadline's timeout."""

    def __init__(self, nas: NasType, workers: int, deadline: Deadline) -> None:
        self.nas = nas
        self.workers = workers
        self.deadline = deadline
        self._pool: ProcessPoolExecutor | None = None
        self._beat: Any = None  # the worker processes' last sign of progress (shared)
        self._done_at = 0.0  # when a worker's task last finished
        self._ahead: dict[tuple[str, int], list[Future]] = {}

    def read(self, batch: Sequence[Fingerprint], following: Sequence[Fingerprint] | None
             ) -> Iterator[InstanceRecord | ItemFailure]:
        """The outcomes of ``batch``, with ``following`` (the run's next batch) queued
        behind it."""
        pool = self._started()
        futures = self._ahead.pop(batch_id(batch), None) or self._submit(pool, batch)
        # Keep the next batch queued behind this one: the workers read it while this one
        # is written to the index, instead of idling through every commit (~10% of a
        # full index). Reading has no side effects, so a retried or failed batch only
        # costs a read.
        if following is not None and batch_id(following) not in self._ahead:
            self._ahead = {batch_id(following): self._submit(pool, following)}
        for fut in futures:
            yield from self._result(fut)

    def start_server(self) -> None:
        """Start the fork server now (a run that will read much, while the NAS is
        listed), so that it imports what the workers need meanwhile instead of the
        first submit waiting for it (~0.5-0.9 s with nothing else running)."""
        worker_context(self.nas)
        multiprocessing.forkserver.ensure_running()

    def stop(self, kill: bool) -> None:
        """Shut the workers down, if any started (``kill``: at once, see stop_pool)."""
        if self._pool is not None:
            stop_pool(self._pool, kill)

    def _result(self, fut: Future) -> list[InstanceRecord | ItemFailure]:
        """A worker's result; NasUnavailable when no worker made progress for the
        deadline's timeout: the share stalled under them."""
        while not wait([fut], POLL).done:
            last = max(self._beat.value, self._done_at)
            if time.monotonic() - last > self.deadline.timeout:
                raise self.deadline.stalled("reading files")
        self._done_at = time.monotonic()
        return fut.result()

    def _submit(self, pool: ProcessPoolExecutor, batch: Sequence[Fingerprint]) -> list[Future]:
        return [pool.submit(read_fitted, self.nas, batch[i:i + CHUNK])
                for i in range(0, len(batch), CHUNK)]

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = worker_context(self.nas)
            self._beat = context.Value("d", time.monotonic(), lock=False)
            self._done_at = time.monotonic()
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context,
                                             initializer=init_worker,
                                             initargs=(os.getpid(), self._beat))
        return self._pool
