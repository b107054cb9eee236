"""Start-up of the dashboard server: the deployment rules, the login settings Streamlit
needs, and the application start/stop records of the audit trail."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import streamlit as st
from streamlit import config as st_config

from nasindex.access.exposure import exposure_problem, is_loopback
from nasindex.config import Settings, load_settings
from nasindex.errors import NasIndexError


def refuse(message: str) -> None:
    print(f"nasindex dashboard: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def deployment_problem(settings: Settings | None, address: str | None) -> str | None:
    """Why this dashboard must not start (None: it may)."""
    return exposure_problem(settings, address, "--server.address 127.0.0.1")


def auth_secrets(settings: Settings) -> dict[str, Any]:
    """Streamlit's ``[auth]`` secrets, built from the config and the environment."""
    auth = settings.auth
    assert auth is not None
    return {"auth": {
        "redirect_uri": auth.redirect_uri, "client_id": auth.client_id,
        "client_secret": auth.secret("client"), "cookie_secret": auth.secret("cookie"),
        "server_metadata_url": auth.server_metadata_url,
        "client_kwargs": {"scope": auth.scopes}}}


def quick_reruns() -> None:
    """Streamlit settings for reruns as quick as a clinician types, however the server
    is started (``make run``, ``streamlit run``, the tests)."""
    # After every run Streamlit collects all garbage (gc.collect(2)) unless told not to:
    # with pandas, pyarrow and SQLAlchemy loaded that walks every object of the server,
    # 200-400 ms per search on a busy machine, holding the GIL while the results wait to
    # be sent. Python's own generational collector still runs as usual.
    st_config.set_option("runner.postScriptGC", False)


def app_options() -> dict[str, Any]:
    """The ``st.App`` options (login secrets, lifespan); or exit 2 with one line naming
    the fix when this dashboard must not start."""
    address = st_config.get_option("server.address")
    try:
        settings: Settings | None = load_settings()
    except NasIndexError as exc:
        if not is_loopback(address):
            refuse(str(exc))
        settings = None  # on loopback: the pages show what is wrong with the config
    problem = deployment_problem(settings, address)
    if problem:
        refuse(problem)
    secrets = None
    if settings is not None and settings.auth is not None:
        try:
            secrets = auth_secrets(settings)
        except NasIndexError as exc:
            refuse(str(exc))
    return {"secrets": secrets, "lifespan": _lifespan(settings)}


def _lifespan(settings: Settings | None):
    @contextlib.asynccontextmanager
    async def lifespan(_app: st.App) -> AsyncIterator[None]:
        _application_event(settings, "app:start")
        try:
            yield
        finally:
            _application_event(settings, "app:stop")
    return lifespan


def _application_event(settings: Settings | None, action: str) -> None:
    """Application Activity in the audit trail (and to syslog); best effort: an index
    that is not ready yet is the pages' business to report."""
    if settings is None:
        return
    from nasindex.access.guard import Access
    from nasindex.index.db import require_current

    with contextlib.suppress(Exception):  # the index may not be ready: the pages say so
        Access(settings, require_current(settings.index.url)).application_event(
            "dashboard", action)
