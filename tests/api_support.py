"""The HTTP API as a user runs it: `nasindex serve` in its own process (the real uvicorn,
the exact server configuration), on a free port, once per test session; httpx talks to
it. Its log (stdout and stderr) is kept, so tests can read what the service wrote.

``api_demo``: the no-login demo over the CLI's demo index (ct, pacs2, pacs3; every
request acts as the demo user). The login-protected server is in ``api_login``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from nasindex.config import Settings, load_settings
from support import CLI_ENV, free_port, stop_process, wait_http


@dataclass(frozen=True)
class ApiServer:
    url: str  # http://127.0.0.1:PORT
    settings: Settings
    log: Path
    proc: subprocess.Popen

    @property
    def api(self) -> str:
        return f"{self.url}/api/v1"

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.api, headers=headers, timeout=60)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def serve_command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "nasindex.cli", "--config", str(config), "serve", *args]


@contextmanager
def running_api(config: Path, log: Path, env: dict[str, str] | None = None,
                timeout: float = 60) -> Iterator[ApiServer]:
    """`nasindex serve` on a free loopback port until the block ends (SIGTERM, waited)."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(serve_command(config, "--port", str(port)), stdout=out,
                                stderr=subprocess.STDOUT, env={**CLI_ENV, **(env or {})})
    server = ApiServer(f"http://127.0.0.1:{port}", load_settings(config), log, proc)
    try:
        wait_http(f"{server.api}/health", proc, "nasindex serve", timeout, log)
        yield server
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def api_demo(cli_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """The no-login demo API over the CLI's indexed demo (read: do not change its data)."""
    log = tmp_path_factory.mktemp("api-demo") / "serve.log"
    with running_api(cli_demo / "nasindex.toml", log, {"PYTHONUNBUFFERED": "1"}) as server:
        yield server


@pytest.fixture(scope="session")
def api_login(cli_demo: Path, oidc_provider, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[ApiServer]:
    """The API with [auth] over the same demo index: bearer tokens from the session's
    real OIDC provider (client-credentials service clients, tests/identity.py), its
    groups mapped to roles and NAS scopes, 40 requests per caller and minute; its
    Prefect server does not answer."""
    from identity import API_AUDIENCE, groups_toml

    folder = tmp_path_factory.mktemp("api-login")
    config = folder / "nasindex.toml"
    config.write_text((cli_demo / "nasindex.toml").read_text(encoding="utf-8") + (
        f'\n[auth]\nserver_metadata_url = "{oidc_provider.metadata_url}"\n'
        f'client_id = "{oidc_provider.client_id}"\n'
        'redirect_uri = "http://127.0.0.1:8501/oauth2callback"\n'
        f'api_audience = "{API_AUDIENCE}"\n' + groups_toml({"pacs2-readers": ["pacs2"]})
        + '\n[api]\nrate_limit = "40/minute"\n'), encoding="utf-8")
    # No Prefect server listens there: an admin's sync is a 503 naming it.
    env = {"PYTHONUNBUFFERED": "1", "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    with running_api(config, folder / "serve.log", env) as server:
        yield server
