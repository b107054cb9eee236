"""Calls to a NAS that may hang, with a deadline that moves with progress.

A stalled NFS/SMB mount or a frozen database server blocks a system call for minutes
or for ever, and a thread blocked in one can be neither interrupted nor timed out. So
the engine makes such calls in a helper thread and waits for them: when the call makes
no progress for ``io_timeout_seconds`` the run fails with :class:`NasUnavailable`
naming the NAS, and the helper is abandoned (it ends when its call does, or with the
process). Progress is an item of a listing, or a call of
:func:`nasindex.contract.progress` by the NAS type (per file read, per chunk of
database rows). Waiting happens in the run's own thread, where SIGTERM and SIGINT are
handled at once even while the NAS hangs.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from nasindex.contract import set_progress_hook
from nasindex.errors import NasUnavailable

T = TypeVar("T")
POLL = 0.25  # seconds between checks of the deadline
_abandoned: list[threading.Thread] = []  # helpers whose call outlived its deadline


def abandoned() -> bool:
    """Whether a NAS call given up on is still running (stuck) in this process."""
    return any(t.is_alive() for t in _abandoned)


class _Call:
    """One call under the deadline: its outcome and when it last made progress."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def beat(self) -> None:
        self.last = time.monotonic()


class Deadline:
    """Runs a NAS's blocking calls under a no-progress deadline."""

    def __init__(self, nas_id: str, timeout: float) -> None:
        self.nas_id = nas_id
        self.timeout = timeout

    def stalled(self, what: str) -> NasUnavailable:
        return NasUnavailable(
            f"NAS {self.nas_id!r}: no answer for {self.timeout:.0f} s while {what} (a "
            "stalled share or database server?). The run was stopped; what it committed "
            "is kept. Check the NAS and its mount, or raise 'io_timeout_seconds' if it "
            "is only slow.")

    def wait(self, call: _Call, what: str, helper: threading.Thread) -> None:
        while not call.done.wait(POLL):
            if time.monotonic() - call.last > self.timeout:
                _abandoned.append(helper)
                raise self.stalled(what)

    def call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a helper thread; its result, or its exception, here."""
        call = _Call()

        def run() -> None:
            set_progress_hook(call.beat)
            try:
                call.result = fn(*args)
            except BaseException as exc:  # handed to the waiting thread
                call.error = exc
            finally:
                call.done.set()

        helper = threading.Thread(target=run, name=f"nasindex {what}", daemon=True)
        helper.start()
        self.wait(call, what, helper)
        if call.error is not None:
            raise call.error
        return call.result

    def iterate(self, what: str, items: Iterable[T], chunk: int = 1000) -> Iterator[T]:
        """The items of a (lazy) listing, produced by a helper thread in chunks."""
        call, chunks = _Call(), queue.Queue[list[T] | None](maxsize=8)
        stop = threading.Event()

        def produce() -> None:
            set_progress_hook(call.beat)
            try:
                part: list[T] = []
                for item in items:
                    call.beat()
                    part.append(item)
                    if len(part) >= chunk:
                        if not _put(chunks, part, stop, call):
                            return
                        part = []
                _put(chunks, part, stop, call)
                _put(chunks, None, stop, call)
            except BaseException as exc:  # handed to the consuming thread
                call.error = exc
                _put(chunks, None, stop, call)

        helper = threading.Thread(target=produce, name=f"nasindex {what}", daemon=True)
        helper.start()
        try:
            while True:
                try:
                    part = chunks.get(timeout=POLL)
                except queue.Empty:
                    if time.monotonic() - call.last > self.timeout:
                        _abandoned.append(helper)
                        raise self.stalled(what) from None
                    continue
                if part is None:
                    if call.error is not None:
                        raise call.error
                    return
                yield from part
        finally:
            stop.set()  # the consumer left (done, failed, stopped): the producer ends too


def _put(chunks: queue.Queue, part: Any, stop: threading.Event, call: _Call) -> bool:
    """Hand a chunk over, waiting while the consumer is busy (which is not a stall)."""
    while not stop.is_set():
        try:
            chunks.put(part, timeout=POLL)
        except queue.Full:
            call.beat()
            continue
        call.beat()
        return True
    return False
