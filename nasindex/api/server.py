"""``nasindex serve``: the HTTP API on uvicorn.

Before it listens: without ``[auth]`` it serves on a loopback address only (anyone who
reaches it acts as the demo user), and with ``[auth]`` it needs ``api_audience`` (the
audience its access tokens are issued for). Each refusal is one line naming the fix.
uvicorn's own access log is off: :mod:`nasindex.api.middleware` writes one line per
request without the path's values or the query string.
"""

from __future__ import annotations

import os
import socket
import sys

from nasindex.access.exposure import exposure_problem
from nasindex.config import Settings
from nasindex.errors import ConfigError, NasIndexError

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8042
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOGGING = {
    "version": 1, "disable_existing_loggers": False,
    "formatters": {"plain": {"format": LOG_FORMAT}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain",
                            "stream": "ext://sys.stderr"}},
    "loggers": {name: {"handlers": ["stderr"], "level": "INFO", "propagate": False}
                for name in ("uvicorn", "nasindex")},
}


def check(settings: Settings, host: str) -> None:
    """ConfigError (one line, naming the fix) if the API must not start on ``host``."""
    problem = exposure_problem(settings, host, "--host 127.0.0.1")
    if problem:
        raise ConfigError(f"nasindex API: {problem}")
    if settings.auth is not None and not settings.auth.api_audience:
        raise ConfigError(f"{settings.path} [auth]: api_audience is not set; the API accepts "
                          "only access tokens issued for it. Set it to the audience (resource "
                          "indicator) your identity provider issues nasindex's API tokens for "
                          "(docs/api.md).")


def base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve(settings: Settings, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn finishes the requests under way)."""
    check(settings, host)
    _check_port(host, port)
    import uvicorn  # here: the CLI's other commands never pay for it

    from nasindex.api.app import API_PREFIX, DOCS_URL, create_app

    app = create_app(settings)
    url = base_url(host, port)
    print(f"nasindex API: {url}{API_PREFIX} (OpenAPI: {url}{DOCS_URL})", file=sys.stderr,
          flush=True)
    config = uvicorn.Config(
        app, host=host, port=port, log_config=LOGGING, access_log=False,
        server_header=False, proxy_headers=True,
        # A reverse proxy on this host may say who the client is (X-Forwarded-For).
        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        timeout_graceful_shutdown=10)
    uvicorn.Server(config).run()


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise NasIndexError(f"Cannot listen on {host}:{port} ({exc.strerror}); stop what "
                                "uses that port or pass --port.") from None
