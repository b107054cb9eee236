"""Prefect flows for one NAS: ``full-index``, ``incremental-sync`` and ``retry-failed``.

Each flow is the sync engine's steps (:class:`nasindex.sync.SyncRun`) as tasks, in the
order the CLI runs them: plan, ingest batch after batch, reconcile. The engine does the
work and records the run; a flow adds what Prefect is for: retries of transient errors,
logs with the NAS and run id, states that say what happened, and run-report artifacts.

Batches run one after another in the flow's thread (a plain task call): each batch is
already read in parallel by the engine's process pool, and the index takes one writer
at a time anyway. The SyncRun object is passed between tasks, so the tasks do not cache
(``NO_CACHE``): their inputs are live objects, not values. Measured on 2 cores, 5,872
files in 12 batch tasks: engine time 2.2 s in the flow vs 2.4 s for the CLI's
``run_sync`` (warm); a flow run adds about 1 s in all, not per batch.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.blocks.system import Secret
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.runtime import flow_run
from prefect.states import Cancelled, Completed, Failed
from prefect.tasks import Task, exponential_backoff
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError, OperationalError

from flows.reports import publish_run_report
from nasindex.config import NasSettings, load_settings
from nasindex.contract import Fingerprint, NasType
from nasindex.errors import ConfigError, NasIndexError, RunInProgress
from nasindex.hashing import hash_pending
from nasindex.index.db import require_current
from nasindex.index.models import RunKind
from nasindex.ops import catalog
from nasindex.registry import open_nas
from nasindex.sync import SyncPlan, SyncRun

# What is worth retrying a few seconds later: NAS I/O that hiccupped mid-scan or mid-read
# (OSError: stale handle, reset share) and a dropped or locked index database. A NAS that
# is plainly not there (NasUnavailable) or a sync that would be unsafe (UnsafeSync) is
# not transient: the run fails at once with the engine's message, and the next scheduled
# run (or an admin's retry) tries again.
TRANSIENT: tuple[type[BaseException], ...] = (OSError, OperationalError, DisconnectionError)
LOCK_POLL_SECONDS = 2.0


def is_transient(_task: Task, _run: TaskRun, state: State) -> bool:
    """Retry condition: only the errors in TRANSIENT."""
    try:
        state.result()
    except TRANSIENT:
        return True
    except BaseException:
        return False
    return False


RETRY = {"retries": 3, "retry_delay_seconds": exponential_backoff(backoff_factor=2),
         "retry_jitter_factor": 0.5, "retry_condition_fn": is_transient,
         "cache_policy": NO_CACHE}


@task(name="plan", task_run_name="plan {label}", **RETRY)
def plan_step(run: SyncRun, label: str) -> dict[str, int]:
    """Check the NAS, list it, diff against the index. Writes nothing."""
    plan: SyncPlan = run.plan()
    return {"seen": plan.seen, "new": plan.new, "changed": plan.changed,
            "retried": plan.retried, "to_read": len(plan.to_read), "gone": len(plan.gone),
            "revive": len(plan.revive), "deferred": plan.deferred}


@task(name="ingest", task_run_name="ingest {label}", **RETRY)
def ingest_step(run: SyncRun, batch: list[Fingerprint], label: str) -> dict[str, int]:
    """Read one batch and commit it in one transaction; idempotent, so safe to retry."""
    counts = run.ingest(batch)
    return {"indexed": counts.indexed, "failed": counts.failed, "skipped": counts.skipped}


@task(name="reconcile", task_run_name="reconcile {label}", **RETRY)
def reconcile_step(run: SyncRun, label: str) -> dict[str, int]:
    """Tombstone what is gone, revive what came back; each step idempotent."""
    run.reconcile()
    return {"missing": run.summary.missing, "revived": run.summary.revived}


@task(name="hash", task_run_name="hash {label}", cache_policy=NO_CACHE)
def hash_step(nas: NasType, nas_pk: int, engine: Engine, io_timeout: float,
              label: str) -> int:
    """Content hashes of what the run indexed (nasindex.hashing); a later run or the
    watch finishes what this one leaves (another pass holds the NAS)."""
    return hash_pending(nas, nas_pk, engine, io_timeout).hashed


class RunLog(logging.LoggerAdapter):
    """Prefect's run logger with the NAS and index-run id in every line (no PHI: the
    engine's messages name paths, UIDs and counts only)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[str, Any]:
        run_id = self.extra.get("index_run_id") if self.extra else None
        nas = self.extra.get("nas") if self.extra else None
        extra = {**(kwargs.get("extra") or {}), "nas": nas, "index_run_id": run_id}
        return f"[nas={nas} run={run_id or '-'}] {msg}", {**kwargs, "extra": extra}


def sync_nas(nas: str, kind: RunKind, config: str | None, wait_seconds: float) -> State:
    """One engine run of one NAS as Prefect tasks; returns the flow's final state."""
    log = RunLog(get_run_logger(), {"nas": nas, "index_run_id": None})
    run: SyncRun | None = None
    try:
        settings = load_settings(config)
        nas_settings = settings.get_nas(nas)
        export_secrets(nas_settings)  # before the NAS is opened: its type may read them
        engine = require_current(settings.index.url)
        new_run = partial(SyncRun, open_nas(nas_settings), nas_settings, engine, kind,
                          flow_run_id=flow_run.id)
        with ExitStack() as stack:
            run = _enter_when_free(stack, new_run, wait_seconds, log)
            log.extra["index_run_id"] = run.summary.run_id
            _steps(run, log)
        # After the run: its metadata is searchable, and the run lock is free again.
        run.summary.hashed = hash_step(run.nas, run.nas_pk, engine,
                                       run.nas_settings.io_timeout_seconds, label=nas)
    except RunInProgress as exc:
        log.warning("skipped: %s", exc)
        return Cancelled(name="Skipped", message=str(exc))
    except NasIndexError as exc:  # an operator's error: the message says what to do
        log.error("failed: %s", exc)
        if run is not None:
            publish_run_report(run.summary)
        return Failed(message=str(exc))
    except Exception:  # retries exhausted, or a bug: report what was done, keep the traceback
        if run is not None:
            publish_run_report(run.summary)
        raise
    summary = run.summary
    publish_run_report(summary)
    log.info("%s %s in %.1fs: seen %d, new %d, changed %d, missing %d, failed %d (%.0f files/s)",
             summary.kind, summary.status, summary.seconds, summary.seen, summary.new,
             summary.changed, summary.missing, summary.failed, summary.files_per_second)
    return Completed(message=_one_line(summary.as_dict()), data=summary.as_dict())


def export_secrets(nas: NasSettings) -> None:
    """Put the NAS's Prefect Secret blocks into the environment variables its type reads
    (``secret_blocks = {PACS2_PASSWORD = "pacs2-db-password"}``). Only this flow-run
    process sees them; the values never reach a log or an artifact."""
    for env_var, block in nas.secret_blocks.items():
        try:
            os.environ[env_var] = Secret.load(block).get()
        except ValueError:
            raise ConfigError(
                f"[nas.{nas.id}] secret_blocks: no Prefect Secret block {block!r} (for "
                f"{env_var}). Create it in the Prefect UI (Blocks > Secret) or fix the name."
            ) from None


def _enter_when_free(stack: ExitStack, new_run: Callable[[], SyncRun], wait_seconds: float,
                     log: RunLog) -> SyncRun:
    """Start the engine run, waiting up to ``wait_seconds`` while another run of the same
    NAS (from any deployment, or the CLI) holds the NAS's run lock."""
    deadline = time.monotonic() + wait_seconds
    waiting = False
    while True:
        try:
            return stack.enter_context(new_run())
        except RunInProgress:
            if time.monotonic() >= deadline:
                raise
            if not waiting:
                log.info("another run of this NAS is in progress; waiting up to %.0fs",
                         wait_seconds)
                waiting = True
            time.sleep(LOCK_POLL_SECONDS)


def _steps(run: SyncRun, log: RunLog) -> None:
    nas = run.summary.nas
    planned = plan_step(run, label=nas)
    log.info("plan: seen %(seen)d, new %(new)d, changed %(changed)d, retried %(retried)d, "
             "to read %(to_read)d, gone %(gone)d, waiting %(deferred)d", planned)
    batches = run.batches()
    for number, batch in enumerate(batches, 1):
        ingest_step(run, batch, label=f"{nas} {number}/{len(batches)}")
    reconcile_step(run, label=nas)


def _one_line(summary: dict[str, Any]) -> str:
    return ("{kind} {status}: seen {seen}, new {new}, changed {changed}, missing {missing}, "
            "failed {failed} in {seconds:.1f}s").format(**summary)


@flow(name=catalog.FULL.flow, flow_run_name=catalog.FULL.flow_run_name, retries=0)
def full_index(nas: str, config: str | None = None, wait_seconds: float = 3600) -> State:
    """Re-read every item of one NAS. Waits (up to ``wait_seconds``) for a running sync
    of the same NAS to end rather than being skipped: an admin asked for it."""
    return sync_nas(nas, catalog.FULL.kind, config, wait_seconds)


@flow(name=catalog.INCREMENTAL.flow, flow_run_name=catalog.INCREMENTAL.flow_run_name, retries=0)
def incremental_sync(nas: str, config: str | None = None, wait_seconds: float = 0) -> State:
    """Read new and changed items of one NAS, tombstone gone ones. A scheduled run that
    finds another run of its NAS going is skipped, visibly: the next interval catches up."""
    return sync_nas(nas, catalog.INCREMENTAL.kind, config, wait_seconds)


@flow(name=catalog.RETRY.flow, flow_run_name=catalog.RETRY.flow_run_name, retries=0)
def retry_failed(nas: str, config: str | None = None, wait_seconds: float = 3600) -> State:
    """Re-read the items of one NAS that failed before, now, without waiting for their
    automatic retry time."""
    return sync_nas(nas, catalog.RETRY.kind, config, wait_seconds)
