"""The ``watch`` flow: one long-running flow run per NAS keeps it fresh.

A watch polls every ~45 s (``nasindex.freshness``); as Prefect flow or task runs, that
would be ~2,000 empty runs a day per NAS. So a watch is one flow run an hour (the
``watch/<nas>`` deployment's schedule): inside it, polls that change nothing leave no
trace in Prefect (only the heartbeat in the index, which the health page shows); a poll
that indexed, tombstoned or revived something logs one line and publishes its run
report (``<nas>-poll-report``), and is an ``index_run`` of kind ``poll`` linked to this
flow run. The flow run ends as Completed with the hour's tally.

Each hourly run takes the NAS over from the one before (which then ends at its next
poll), so there is no gap between them; a run whose successor never comes (schedule
paused, worker gone) stops on its own ``GRACE_MINUTES`` after its hour.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from flows.reports import publish_run_report
from flows.sync import RunLog, export_secrets
from nasindex.config import load_settings
from nasindex.errors import NasIndexError
from nasindex.freshness import Poll, Watcher, watch
from nasindex.index.db import require_current
from nasindex.ops import catalog
from nasindex.registry import open_nas

GRACE_MINUTES = 5


class Tally:
    """What the polls of one watch run did, for its logs and final message."""

    def __init__(self, log: RunLog) -> None:
        self.log = log
        self.polls = self.changed = self.new = self.missing = 0
        self.failure: str | None = None

    def __call__(self, p: Poll) -> None:
        self.polls += 1
        if p.run is not None:
            r = p.run
            self.changed += 1
            self.new += r.new
            self.missing += r.missing
            self.log.extra["index_run_id"] = r.run_id
            lag = f", newest file searchable after {r.newest_lag:.0f}s" if r.newest_lag else ""
            self.log.info("poll: new %d, changed %d, missing %d, revived %d, failed %d%s",
                          r.new, r.changed, r.missing, r.revived, r.failed, lag)
            publish_run_report(r)
        if p.message and p.message != self.failure:
            self.log.warning("poll: %s", p.message)
        self.failure = p.message

    def line(self, reason: str) -> str:
        return (f"watch ended ({reason}): {self.polls} polls, {self.changed} with changes: "
                f"new {self.new}, missing {self.missing}")


@flow(name=catalog.WATCH.flow, flow_run_name=catalog.WATCH.flow_run_name, retries=0)
def watch_nas(nas: str, config: str | None = None,
              minutes: float = catalog.WATCH_MINUTES) -> State:
    """Keep one NAS fresh for ``minutes`` from its scheduled start (plus a grace period
    that the next scheduled run normally cuts short by taking over)."""
    log = RunLog(get_run_logger(), {"nas": nas, "index_run_id": None})
    try:
        settings = load_settings(config)
        nas_settings = settings.get_nas(nas)
        export_secrets(nas_settings)
        engine = require_current(settings.index.url)
        tally = Tally(log)
        watcher = Watcher(open_nas(nas_settings), nas_settings, engine,
                          name=f"prefect:{flow_run.id}", flow_run_id=flow_run.id,
                          on_poll=tally)
    except NasIndexError as exc:
        log.error("failed: %s", exc)
        return Failed(message=str(exc))
    log.info("watching: a poll every %.0fs", watcher.interval)
    reason = watch([watcher], until=_until(minutes + GRACE_MINUTES))
    log.info(tally.line(reason))
    return Completed(message=tally.line(reason))


def _until(minutes: float) -> float:
    """The monotonic time ``minutes`` after this run's scheduled start."""
    start = flow_run.scheduled_start_time or datetime.now(UTC)
    left = start.timestamp() + minutes * 60 - time.time()
    return time.monotonic() + max(left, 0.0)
