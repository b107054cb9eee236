"""``POST /nas/{nas}/sync``: an admin starts a run of a NAS's Prefect deployment, as the
dashboard's Health page buttons do (the same deployments, the same audit actions
``admin:sync``/``admin:full``/``admin:retry``); the worker runs it, never this process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Query

from nasindex.api.caller import CallerDep
from nasindex.api.problems import Conflict, ServiceUnavailable
from nasindex.api.v1.params import PREFIX
from nasindex.errors import NotFound
from nasindex.ops import catalog
from nasindex.ops.runs import StartedRun, prefect_api_url, run_under_way, start_run

router = APIRouter(prefix=PREFIX, tags=["runs"])
# kind -> (the flow whose deployment of the NAS runs, the audit action as the dashboard's)
KINDS = {"incremental": (catalog.INCREMENTAL, "sync"), "full": (catalog.FULL, "full"),
         "retry": (catalog.RETRY, "retry")}
Kind = Annotated[Literal["incremental", "full", "retry"], Query(
    description="incremental: new and changed files; full: re-read every file; retry: "
                "the files that failed")]
T = TypeVar("T")


@router.post("/nas/{nas}/sync", status_code=202, summary="Start a sync of one NAS (admin)",
             responses={409: {"description": "A run of this NAS is queued or running."}})
def sync(nas: str, caller: CallerDep, kind: Kind = "incremental") -> dict[str, str | None]:
    """Queue a run of the NAS's deployment now and answer at once with the flow run's id
    and its page in the Prefect UI. 409 while a run of this NAS is queued or running."""
    settings = caller.access.settings
    if nas not in settings.nas:
        raise NotFound(f"No NAS {nas!r} in the configuration.")
    api = prefect_api_url(settings.prefect.ui_url)
    if api is None:
        raise ServiceUnavailable("No Prefect server is configured: set [prefect] ui_url (or "
                                 "PREFECT_API_URL) where `nasindex serve` runs.")
    spec, action = KINDS[kind]
    started: list[StartedRun] = []

    def start() -> str:
        running = _prefect(api, lambda: run_under_way(nas, api))
        if running:
            raise Conflict(f"A run of NAS {nas} is queued or running (flow run {running}); "
                           "start another when it is done.", flow_run_id=running)
        started.append(_prefect(api, lambda: start_run(spec, nas, api, tags=("api",))))
        return f"{started[0].deployment}: flow run {started[0].id}"

    caller.access.admin_action(caller.principal, nas, action, start)
    run = started[0]
    return {"flow_run_id": run.id, "flow_run_name": run.name, "deployment": run.deployment,
            "url": run.url}


def _prefect(api: str, call: Callable[[], T]) -> T:
    """``call`` on the Prefect server; 503 naming it when it cannot be reached or has no
    such deployment (the detail names the error's class only)."""
    try:
        return call()
    except Exception as exc:
        raise ServiceUnavailable(f"The Prefect server at {api} did not take the run "
                                 f"({type(exc).__name__}): is it running, and were the "
                                 "deployments applied (`nasindex deployments --apply`)?"
                                 ) from None
