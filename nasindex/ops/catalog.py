"""The flows and their deployments by name: one definition for the flows
(``flows/``), the deployment writer, the ``make run`` supervisor and every front end
that starts a run or links to one. Plain data: importing it costs nothing (no Prefect).
"""

from __future__ import annotations

from dataclasses import dataclass

from nasindex.index.models import RunKind


@dataclass(frozen=True)
class FlowSpec:
    """One Prefect flow and how its deployments behave."""

    flow: str  # the Prefect flow name, and the first half of its deployment names
    entrypoint: str  # module path: a worker imports the installed `flows` package
    collision: str  # what happens to a run that arrives while one is running
    description: str


@dataclass(frozen=True)
class NasFlowSpec(FlowSpec):
    """A flow that runs the sync engine on one NAS: one deployment per NAS."""

    kind: RunKind

    @property
    def flow_run_name(self) -> str:
        """Prefect's template of a run's name: the flow and its NAS (``full-index ct``)."""
        return f"{self.flow} {{nas}}"


FULL = NasFlowSpec("full-index", "flows.sync.full_index", "ENQUEUE",
                   "Full index of NAS {nas} ({type}): re-read every item. On demand.",
                   RunKind.FULL)
INCREMENTAL = NasFlowSpec("incremental-sync", "flows.sync.incremental_sync", "CANCEL_NEW",
                          "Incremental sync of NAS {nas} ({type}) {when}: "
                          "read new and changed items, tombstone gone ones.",
                          RunKind.INCREMENTAL)
RETRY = NasFlowSpec("retry-failed", "flows.sync.retry_failed", "ENQUEUE",
                    "Re-read the failed items of NAS {nas} ({type}) now. On demand.",
                    RunKind.RETRY)
# The watch (nasindex.freshness): its runs are polls; one flow run an hour per NAS, the
# next takes over (a limit of two lets them overlap for that moment).
WATCH = NasFlowSpec("watch", "flows.freshness.watch_nas", "CANCEL_NEW",
                    "Keep NAS {nas} ({type}) fresh: poll it every {poll:.0f} s and index what "
                    "changed, a new file searchable within {fresh:g} s. A run an hour.",
                    RunKind.POLL)
WATCH_MINUTES = 60
PER_NAS = (FULL, INCREMENTAL, RETRY, WATCH)

DAILY_REPORT = FlowSpec("daily-report", "flows.reports.daily_report", "CANCEL_NEW",
                        "The day's runs and index state across every NAS.")
DAILY_REPORT_DEPLOYMENT = "daily"  # the report has one deployment, not one per NAS


def deployment_name(spec: FlowSpec, name: str) -> str:
    """The name `prefect deployment run` takes, e.g. ``incremental-sync/ct``."""
    return f"{spec.flow}/{name}"


def flow_run_url(ui_url: str | None, flow_run_id: object | None) -> str | None:
    """The Prefect UI page of one flow run, when a UI is known and the run has an id."""
    if not ui_url or not flow_run_id:
        return None
    return f"{ui_url.rstrip('/')}/runs/flow-run/{flow_run_id}"
