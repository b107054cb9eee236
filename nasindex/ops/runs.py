"""Starting a run of a NAS's deployment: the dashboard's admin actions and ``make run``'s
first full index start runs this one way (so will the HTTP API). The run is queued on
the Prefect server, limited to one per NAS and recorded like a scheduled run."""

from __future__ import annotations

import os
from dataclasses import dataclass

from nasindex.ops.catalog import NasFlowSpec, deployment_name, flow_run_url


@dataclass(frozen=True)
class StartedRun:
    id: str
    name: str
    deployment: str
    url: str | None  # the run's page in the Prefect UI


def ui_url(api_url: str) -> str:
    """The Prefect UI that serves an API URL (``http://host:4200/api`` -> ``http://host:4200``)."""
    return api_url.rstrip("/").removesuffix("/api")


def start_run(spec: NasFlowSpec, nas: str, api_url: str | None = None,
              tags: tuple[str, ...] = ()) -> StartedRun:
    """Create a run of ``<flow>/<nas>`` now and return at once (a worker runs it), on
    ``api_url`` or else ``$PREFECT_API_URL``."""
    from prefect.deployments import run_deployment  # here: Prefect costs ~1 s to import
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deployment = deployment_name(spec, nas)
    with temporary_settings({PREFECT_API_URL: api_url} if api_url else {}):
        run = run_deployment(deployment, timeout=0, tags=list(tags))
    api = api_url or os.environ.get("PREFECT_API_URL")
    return StartedRun(str(run.id), run.name, deployment,
                      flow_run_url(ui_url(api), run.id) if api else None)


UNDER_WAY = ("SCHEDULED", "PENDING", "RUNNING", "CANCELLING")  # Prefect state types


def prefect_api_url(ui_url: str | None) -> str | None:
    """The Prefect API to start runs on: ``$PREFECT_API_URL`` (``make run`` sets it for
    its children), else ``[prefect] ui_url`` + ``/api``; None if neither is set."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    return f"{ui_url.rstrip('/')}/api" if ui_url else None


def run_under_way(nas: str, api_url: str | None = None) -> str | None:
    """The id of a run of any of ``nas``'s deployments that is queued or running, if
    one is (a second would only wait behind it, or be cancelled)."""
    import anyio
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def first() -> str | None:
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType(s) for s in UNDER_WAY]))),
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[nas])),
                limit=1)
            return str(runs[0].id) if runs else None

    with temporary_settings({PREFECT_API_URL: api_url} if api_url else {}):
        return anyio.run(first)
