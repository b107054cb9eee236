"""The engine's worker processes: how they start (a fork server that preloads what
they import) and what each does with a batch (read it, fit every outcome for the index).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import sys
import time
from collections.abc import Sequence
from typing import Any

from nasindex.contract import Fingerprint, InstanceRecord, ItemFailure, NasType, set_progress_hook
from nasindex.limits import fit
from nasindex.stopping import worker_init


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
