"""The one place where errors become HTTP answers: ``application/problem+json`` (RFC 9457)
with ``status``, ``title`` and a ``detail`` that names the cause and the fix.

The detail is the error's own message: nasindex's errors are written for the person who
reads them and never hold patient data or secrets (README, "Errors"). Anything else that
goes wrong is a 500 whose body and log line name only the error's class and a request
id (see :mod:`nasindex.api.middleware`), never a traceback.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from nasindex.api.ratelimit import RateLimited
from nasindex.api.tokens import InvalidToken, MissingToken, ProviderUnavailable
from nasindex.errors import (
    AccessDenied,
    AuditUnavailable,
    IndexNotReady,
    NasIndexError,
    NasUnavailable,
    NotFound,
    QueryError,
)
from nasindex.preview import PreviewError

PROBLEM = "application/problem+json"
REALM = 'Bearer realm="nasindex"'


class BadParameter(NasIndexError):
    """A query or path parameter that cannot be used as given (400), named."""

    def __init__(self, message: str, parameter: str | None) -> None:
        super().__init__(message)
        self.parameter = parameter


class Conflict(NasIndexError):
    """The request collides with something going on (409), e.g. a run already running."""

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.extra = extra


class ServiceUnavailable(NasIndexError):
    """A service the request needs (the Prefect server) cannot be reached (503)."""


# nasindex's errors and their HTTP status; the first match wins (subclasses first).
STATUS: tuple[tuple[type[Exception], int], ...] = (
    (InvalidToken, 401),
    (AccessDenied, 403),
    (NotFound, 404),
    (Conflict, 409),
    (RateLimited, 429),
    (BadParameter, 400),
    (QueryError, 400),
    (NasUnavailable, 503),
    (PreviewError, 422),
    (AuditUnavailable, 503),
    (IndexNotReady, 503),
    (ProviderUnavailable, 503),
    (ServiceUnavailable, 503),
)


def problem(status: int, detail: str, headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    """A problem+json answer. ``extra`` members (``parameter``...) are added when set."""
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
            "detail": detail, **{k: v for k, v in extra.items() if v is not None}}
    return JSONResponse(body, status, headers=headers, media_type=PROBLEM)


def status_of(exc: Exception) -> int:
    return next((code for kind, code in STATUS if isinstance(exc, kind)), 500)


def from_error(exc: NasIndexError) -> JSONResponse:
    """The answer to one of nasindex's errors."""
    status = status_of(exc)
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, MissingToken):
        headers["WWW-Authenticate"] = REALM
    elif isinstance(exc, InvalidToken):
        headers["WWW-Authenticate"] = f'{REALM}, error="invalid_token"'
    elif isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, BadParameter):
        extra["parameter"] = exc.parameter
    elif isinstance(exc, Conflict):
        extra.update(exc.extra)
    return problem(status, " ".join(str(exc).split()), headers or None, **extra)


def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's checks of declared parameters: a 400 naming the first parameter at fault
    and what it expects (pydantic's message), never the value given (it may be a name)."""
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid"}
    where, *rest = [*first.get("loc", ()), ""]
    name = str(rest[0]) if rest and rest[0] != "" else None
    kind = {"query": "Query parameter", "path": "Path parameter",
            "header": "Header"}.get(str(where), "Parameter")
    detail = f"{kind} '{name}': {first.get('msg', 'invalid')}." if name else str(
        first.get("msg", "The request is not valid."))
    return problem(400, detail, parameter=name)


def _http(_request: Request, exc: HTTPException) -> JSONResponse:
    headers = dict(exc.headers) if exc.headers else None
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = "No such endpoint; see /api/docs for the API's endpoints."
    return problem(exc.status_code, detail, headers)


def install(app: FastAPI) -> None:
    """Answer every error raised by a route as problem+json."""
    app.add_exception_handler(NasIndexError, lambda _r, exc: from_error(exc))
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
