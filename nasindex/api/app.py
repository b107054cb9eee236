"""The ASGI application: :func:`create_app` builds it from the settings.

FastAPI (on Starlette, served by uvicorn): routes declare their parameters with types
and limits, so a bad one is refused with its name before any code runs, the OpenAPI
description at ``/api/docs`` comes from the same declarations, and a route's user is a
dependency (:data:`~nasindex.api.caller.CallerDep`) that the JSON and the DICOMweb
routes share. Prefect's server is built on the same stack, so it adds no dependency.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from nasindex import __version__
from nasindex.access.guard import Access
from nasindex.api import dicomweb, problems
from nasindex.api.caller import Service
from nasindex.api.middleware import RequestLog
from nasindex.api.ratelimit import RateLimiter
from nasindex.api.tokens import TokenVerifier
from nasindex.api.v1 import router
from nasindex.api.v1.params import PREFIX as API_PREFIX
from nasindex.config import Settings
from nasindex.index.db import get_engine

DOCS_URL = "/api/docs"
__all__ = ["API_PREFIX", "DOCS_URL", "create_app"]
DESCRIPTION = """Search patients across every NAS, list their files, fetch an image as
stored or rendered, start a sync, read the indexing status. The same rules as the
dashboard: a bearer access token from the clinic's identity provider (unless this is
the no-login demo on 127.0.0.1), roles and NAS scopes, and every look in the audit
trail. Errors are `application/problem+json`."""


def create_app(settings: Settings) -> FastAPI:
    """The API over the index of ``settings`` (the index may not be ready yet: then
    ``/api/v1/health`` says so and data routes answer 503)."""
    access = Access(settings, get_engine(settings.index.url))
    verifier = TokenVerifier(settings.auth) if settings.auth is not None else None
    service = Service(settings, access, verifier, RateLimiter(settings.api.rate_limit))

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        access.application_event("api", "app:start")
        try:
            yield
        finally:
            access.application_event("api", "app:stop")

    app = FastAPI(title="nasindex API", version=__version__, description=DESCRIPTION,
                  docs_url=DOCS_URL, redoc_url=None, openapi_url="/api/openapi.json",
                  lifespan=lifespan)
    app.state.nasindex = service
    problems.install(app)
    app.add_middleware(RequestLog)
    app.include_router(router)
    app.include_router(dicomweb.router, prefix=dicomweb.PREFIX)
    return app
