"""The index's state: ``/status`` (per NAS, as ``nasindex status --json``) and
``/health`` (for load balancers and orchestrators: no token, no data)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.exc import SQLAlchemyError

from nasindex.api.caller import CallerDep, service
from nasindex.api.v1.params import PREFIX
from nasindex.errors import IndexNotReady
from nasindex.index.db import require_current

router = APIRouter(prefix=PREFIX, tags=["status"])


@router.get("/status", summary="Indexing status per NAS")
def status(caller: CallerDep) -> list[dict[str, Any]]:
    """Per NAS the caller may see: counts of patients, studies, images, missing files and
    errors; the last run and the last successful one. As `nasindex status --json`."""
    return caller.access.status(caller.principal)


@router.get("/health", summary="Liveness and readiness",
            responses={503: {"description": "Not ready: the index cannot be read (the "
                             "detail names the fix)."}})
def health(request: Request) -> dict[str, str]:
    """Any answer means the service is alive; 200 means it is ready: the index database
    answers and its schema is current. Needs no token and returns no patient data."""
    url = service(request).settings.index.url
    try:
        require_current(url)
    except SQLAlchemyError as exc:
        raise IndexNotReady(f"The index database does not answer ({type(exc).__name__}); "
                            "check that it is running and reachable.") from None
    return {"status": "ready", "index": "reachable, schema current"}
