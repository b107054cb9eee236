"""Around every request: a request id, one access-log line, and the last line of defence
against a traceback.

The log line names the route's *template* (``/api/v1/patients/{nas}/{patient_id}``),
never the path as requested or its query string: those carry names, Patient IDs and
birth dates, and the audit trail is the one place that may hold them. An error no
handler turned into an answer becomes a 500 problem naming only the error's class and
the request id, and one log line with the class and where it was raised.
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nasindex.api.problems import problem

log = logging.getLogger("nasindex.api")


class RequestLog:
    """Pure ASGI (no buffering): file and multipart streams pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        started, status = time.perf_counter(), [0]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message.setdefault("headers", []).append((b"x-request-id",
                                                          request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # the last line of defence: one line, no traceback
            log.error("request %s failed: %s at %s", request_id, type(exc).__name__,
                      _where(exc))
            if not status[0]:
                status[0] = 500
                await problem(500, f"Internal error ({type(exc).__name__}); the service log "
                              f"has request {request_id}.")(scope, receive, send_with_id)
        finally:
            route = getattr(scope.get("route"), "path", None) or "(no route)"
            client = (scope.get("client") or ("-",))[0]
            log.info('%s "%s %s" %s %.0fms %s', client, scope["method"], route, status[0],
                     (time.perf_counter() - started) * 1000, request_id)


def _where(exc: BaseException) -> str:
    """File and line where ``exc`` was raised (no message: it may hold data)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
