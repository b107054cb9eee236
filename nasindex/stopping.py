"""Stopping a run: SIGTERM and SIGINT end it at once, recorded as interrupted, and the
worker processes that read for it never outlive it.

While a run goes on (in the main thread), both signals raise :class:`RunInterrupted`
where the run is. The run records itself as interrupted, kills its workers, restores
the handlers it found and raises the signal again, so the process then does what it
would have done without the run: exit (SIGTERM's default), KeyboardInterrupt (SIGINT),
or whatever Prefect's own handler does. Handlers are installed before a NAS type opens
anything: a library that installs its own handler later (the Firebird client does, and
left alone it swallows SIGTERM) finds ours and calls it.

Workers are forked from multiprocessing's fork server, which lives as long as any of
its children could still ask it for a process: the workers themselves keep it alive,
and they wait for work from the run for ever. So each worker watches the run's process
(a pidfd, woken by the kernel when it ends) and exits at once when it is gone, however
it ended (SIGKILL included); the fork server then ends with its last worker.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


class RunInterrupted(BaseException):  # noqa: N818 - like KeyboardInterrupt, not an error
    """A stop signal arrived during a run. A BaseException, so that no ``except
    Exception`` on the way up mistakes it for a failure of the step it interrupted."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal_name(signum)}")
        self.signum = signum


class StopSignals:
    """Installs the run's handlers for the life of a run; remembers what arrived."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                old = signal.getsignal(sig)
                if old is not signal.SIG_IGN:  # ignored on purpose (nohup, a background job)
                    self._old[sig] = old
                    signal.signal(sig, self._handler)
        return self

    def _handler(self, signum: int, _frame: object) -> None:
        if self.received is None:
            self.received = signum
            raise RunInterrupted(signum)

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
        self._old = {}

    def pass_on(self) -> None:
        """Deliver the received signal again, to the handler that was there before."""
        self.restore()
        if self.received is not None:
            signal.raise_signal(self.received)


def worker_init(run_pid: int) -> None:
    """In each worker: exit as soon as the run's process is gone; leave Ctrl-C to the
    run, which stops its workers itself (a terminal sends SIGINT to the whole process
    group, and a worker's traceback would only clutter it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(run_pid,), name="nasindex run watch",
                     daemon=True).start()


def _exit_with(run_pid: int) -> None:
    """Block until process ``run_pid`` ends, then end this one, even while its main
    thread is stuck in a read on a stalled share (exit ends every thread)."""
    try:
        fd = os.pidfd_open(run_pid)
    except ProcessLookupError:
        os._exit(1)
    except OSError:  # no pidfd (a kernel before 5.3): look every second instead
        while _alive(run_pid):
            time.sleep(1)
        os._exit(1)
    select.select([fd], [], [])
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_pool(pool: ProcessPoolExecutor, kill: bool) -> None:
    """Shut the pool down; with ``kill``, at once: the workers are killed rather than
    left to finish the files they are reading (a stopped or failed run wants none),
    and not waited for (one stuck in a read the kernel will not abort, on a hung FUSE
    share, ends when the share answers)."""
    if not kill:
        pool.shutdown(wait=True)
        return
    # The executor keeps its processes in _processes (CPython 3.9-3.13; 3.14 adds a
    # public kill_workers()); reading is side-effect free, so killing them is safe.
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, ValueError):
            process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


