"""Keeping a NAS fresh: a watch polls it every few seconds and indexes what changed.

A poll is a run of kind ``poll`` (:class:`nasindex.sync.SyncRun`): for a file tree it
stats the folders the index knows and lists again only those that moved, plus a share
of the rolling sweep; the Firebird type polls its cursor. A poll that finds nothing to
index, tombstone or revive leaves no run record behind, only a beat of the heartbeat
(:mod:`nasindex.heartbeat`): a watch polls ~2,000 times a day and records the few dozen
polls that changed something. A failing poll is recorded when its reason is new (not
once per poll while a NAS stays down). Between polls the watch hashes the files indexed
so far (:mod:`nasindex.hashing`), never past the next poll's time.

``freshness_seconds`` is the promise: a file written just after a poll is searchable
within it. A poll starts every ``freshness - settle - freshness / 6`` seconds (45 s at
the defaults: 60 - 5 - 10): the wait for the next poll, the second look after
``settle_seconds``, and a sixth of the budget for reading and committing.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from nasindex import heartbeat, store
from nasindex.config import NasSettings
from nasindex.contract import NasType
from nasindex.errors import RunInProgress
from nasindex.hashing import hash_pending
from nasindex.index.models import RunKind, RunStatus
from nasindex.stopping import RunInterrupted, StopSignals
from nasindex.sync import RunSummary, SyncRun, operator_message

HASH_MARGIN = 0.5  # seconds: hashing stops this long before the next poll is due
BUSY = "waiting: another run of this NAS is going (a full index, a sync)"


def sweep_shares(nas: NasSettings) -> int:
    """Polls per rolling sweep: each stats the files of one share of the folders."""
    return max(1, round(nas.sweep_minutes * 60 / nas.poll_seconds))


def watcher_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(slots=True)
class Poll:
    """What one poll did: its run (None if it changed nothing), how long it took, and
    why it could not poll, if so."""

    run: RunSummary | None
    seconds: float
    message: str | None = None
    hashed: int = 0
    deferred: int = 0  # items still being written, left for the next poll


class Watcher:
    """The watch of one NAS (the ready objects, as :class:`SyncRun` takes them)."""

    def __init__(self, nas: NasType, nas_settings: NasSettings, engine: Engine,
                 name: str | None = None, flow_run_id: str | None = None,
                 on_poll: Callable[[Poll], None] | None = None) -> None:
        self.nas, self.settings, self.engine = nas, nas_settings, engine
        self.name = name or watcher_name()
        self.flow_run_id = flow_run_id
        self.on_poll = on_poll
        self.interval = nas_settings.poll_seconds
        self.shares = sweep_shares(nas_settings)
        self.nas_pk = store.ensure_nas(engine, nas_settings)
        self.sweep_next = 0
        self.next_at = 0.0
        self._failure: str | None = None  # the reason of the last failed poll, recorded

    def start(self) -> None:
        self.sweep_next = heartbeat.take_over(self.engine, self.nas_pk, self.name,
                                              self.interval)
        self.next_at = time.monotonic()

    def poll_once(self) -> Poll:
        """One poll outside a watch (``nasindex watch --once``): the heartbeat is left to
        the watch, if one runs; the sweep share is the one it would take next."""
        self.sweep_next = heartbeat.sweep_next(self.engine, self.nas_pk)
        return self.poll()

    def poll(self) -> Poll:
        """One poll of the NAS, recorded as a run only if it changed something."""
        started = time.monotonic()
        sweep = (self.sweep_next % self.shares, self.shares)
        try:
            with SyncRun(self.nas, self.settings, self.engine, RunKind.POLL, self.flow_run_id,
                         quiet=True, sweep=sweep) as run:
                run.plan()
                for batch in run.batches():
                    run.ingest(batch)
                run.reconcile()
        except RunInProgress:
            return Poll(None, time.monotonic() - started, BUSY)
        except Exception as exc:  # a watch outlives a failed poll: it tries again
            return Poll(None, time.monotonic() - started, self._failed(exc))
        self._failure = None
        self.sweep_next += 1
        summary = run.summary if run.summary.run_id is not None else None
        return Poll(summary, time.monotonic() - started, deferred=run.summary.deferred)

    def _failed(self, exc: BaseException) -> str:
        """Record a failed poll as a run, unless it failed the same way last time."""
        message = operator_message(exc)
        if message != self._failure:
            run_pk = store.start_run(self.engine, self.nas_pk, RunKind.POLL.value,
                                     self.flow_run_id)
            store.finish_run(self.engine, run_pk, RunStatus.FAILED, message, {})
            self._failure = message
        return message

    def cycle(self, hash_until: float | None = None) -> Poll | None:
        """Poll, beat, hash until ``hash_until`` (monotonic); None if replaced."""
        result = self.poll()
        if not heartbeat.beat(self.engine, self.nas_pk, self.name, heartbeat.Beat(
                result.seconds, result.run is not None, self.sweep_next, result.message)):
            return None
        self.next_at = max(self.next_at + self.interval, time.monotonic())
        deadline = min(self.next_at, hash_until or self.next_at) - HASH_MARGIN
        if result.message is None and time.monotonic() < deadline:
            result.hashed = hash_pending(self.nas, self.nas_pk, self.engine,
                                         self.settings.io_timeout_seconds, deadline).hashed
        if self.on_poll:
            self.on_poll(result)
        return result


def watch(watchers: Sequence[Watcher], stop: threading.Event | None = None,
          until: float | None = None) -> str:
    """Poll each NAS on its own cadence, in this thread, until ``stop`` is set, the
    monotonic time ``until`` passes, another watch takes every NAS over, or SIGTERM or
    SIGINT arrives (then the watch says it ended and the signal does what it would have
    done). Returns why it ended."""
    stop = stop or threading.Event()
    active = list(watchers)
    reason = "stopped"
    signals = StopSignals()  # between polls; a poll's run handles them itself, then here
    with signals:
        try:
            reason = _poll_until(active, stop, until)
        except RunInterrupted as exc:
            reason = str(exc)
        finally:
            for w in active:
                heartbeat.step_down(w.engine, w.nas_pk, w.name, reason)
    signals.pass_on()
    return reason


def _poll_until(active: list[Watcher], stop: threading.Event, until: float | None) -> str:
    """The watch's loop; ``active`` loses the watchers another watch takes over."""
    for w in active:
        w.start()
    while active and not stop.is_set():
        if until is not None and time.monotonic() >= until:
            return "its time is over"
        due = min(active, key=lambda w: w.next_at)
        wake = due.next_at if until is None else min(due.next_at, until)
        if stop.wait(max(0.0, wake - time.monotonic())):
            break
        if wake < due.next_at:
            continue  # woke for ``until``
        others = [w.next_at for w in active if w is not due]
        if due.cycle(min(others, default=None)) is None:
            active.remove(due)  # another watch took this NAS over
            if not active:
                return "another watch took over"
    return "stopped"
