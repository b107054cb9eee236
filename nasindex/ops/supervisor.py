"""``make run``: the whole of nasindex on one machine, with embedded defaults.

    demo config (if none) -> migrate the index -> local Prefect server -> deployments
    -> worker -> Streamlit dashboard -> HTTP API (JSON and DICOMweb)
    -> first full index of every empty NAS -> a watch of every NAS -> URLs

Ctrl-C (or SIGTERM) stops what this started, in this order: worker, API, dashboard, server
(a server stopped before its worker hangs on shutdown). Every child runs in its own
session, so the terminal's Ctrl-C reaches only this process, which then stops each
child's process group and any process it left behind (found by parent id), by pid.

Prefect's data lives under ``.run/prefect`` next to the config, so a second
``make run`` reuses the server's history and the index. With ``[prefect] ui_url`` in
the config, no server is started: the deployments and the worker use that one.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from nasindex.config import Settings, config_path, load_settings
from nasindex.errors import NasIndexError
from nasindex.ops import catalog, deployments
from nasindex.ops.processes import Child, Children, ServiceError, http_ok, port_free, wait_until
from nasindex.ops.runs import start_run

SERVER_PORT = int(os.environ.get("NASINDEX_PREFECT_PORT", "4200"))
DASHBOARD_PORT = int(os.environ.get("NASINDEX_DASHBOARD_PORT", "8501"))
API_PORT = int(os.environ.get("NASINDEX_API_PORT", "8042"))
# The API's paths (nasindex.api's, not imported here: front ends never import each other);
# the make-run test reaches DICOMweb through the printed URL.
API_PATHS = {"API": "/api/v1", "DICOMweb": "/dicomweb", "OpenAPI": "/api/docs"}
STOP_ORDER = ("worker", "api", "dashboard", "server")
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


def say(message: str) -> None:
    print(f"[nasindex] {message}", flush=True)


# -- the parts ----------------------------------------------------------------------------
def prefect_env(home: Path, api_url: str) -> dict[str, str]:
    """Environment for every Prefect process of this stack (and this one)."""
    return {"PREFECT_HOME": str(home), "PREFECT_API_URL": api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # else "database is locked"
            "PREFECT_WORKER_QUERY_SECONDS": os.environ.get("PREFECT_WORKER_QUERY_SECONDS", "5"),
            "PREFECT_CLI_COLORS": "false"}


def start_server(children: Children, env: dict[str, str], port: int,
                 timeout: float = 90) -> str:
    """`prefect server start` on 127.0.0.1:port; returns the API URL once healthy."""
    if not port_free(port):
        raise ServiceError(f"port {port} is in use: is another Prefect server running? Stop "
                           "it, set NASINDEX_PREFECT_PORT, or set [prefect] ui_url in the "
                           "config to use that server.")
    server_env = {**env}
    server_env.pop("PREFECT_API_URL", None)  # the server itself is the API
    child = children.start("server", [*deployments.prefect_cli(), "server", "start", "--host",
                                      "127.0.0.1", "--port", str(port)], server_env)
    api = f"http://127.0.0.1:{port}/api"
    wait_until(lambda: http_ok(f"{api}/health", b"true"), timeout, "the Prefect server", child)
    return api


def start_worker(children: Children, env: dict[str, str], pool: str) -> Child:
    return children.start("worker", [*deployments.prefect_cli(), "worker", "start", "--pool",
                                     pool, "--type", "process", "--name", f"{pool}-local"], env)


def dashboard_app() -> Path:
    """The dashboard's Streamlit script, wherever the ``dashboard`` package is installed
    (the source tree in development, site-packages from a wheel)."""
    spec = importlib.util.find_spec("dashboard")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError("The dashboard package is not installed: reinstall nasindex "
                           "(`uv sync`).")
    return Path(next(iter(spec.submodule_search_locations))) / "app.py"


def start_dashboard(children: Children, env: dict[str, str], port: int,
                    timeout: float = 60) -> str:
    """`streamlit run` of the installed dashboard; its URL once it answers."""
    streamlit = Path(sys.executable).with_name("streamlit")
    child = children.start("dashboard", [
        str(streamlit), "run", str(dashboard_app()), "--server.headless", "true",
        "--server.address", "127.0.0.1", "--server.port", str(port),
        "--browser.gatherUsageStats", "false"], env)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_ok(f"{url}/_stcore/health", b"ok"), timeout, "the dashboard",
               child)
    return url


def start_api(children: Children, env: dict[str, str], config: Path, port: int,
              timeout: float = 60) -> str:
    """`nasindex serve` on 127.0.0.1:port (no [auth]: the no-login demo, loopback only);
    its base URL once its health check says the index is ready."""
    if not port_free(port):
        raise ServiceError(f"port {port} is in use: stop what uses it or set "
                           "NASINDEX_API_PORT.")
    child = children.start("api", [sys.executable, "-m", "nasindex.cli", "--config",
                                   str(config), "serve", "--port", str(port)], env)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_ok(f"{url}{API_PATHS['API']}/health", b"ready"), timeout,
               "the HTTP API", child)
    return url


def ensure_config(path: Path) -> Settings:
    """The config; the demo (every NAS type that has one) if there is none yet."""
    if not path.exists():
        from nasindex.ops.demo import write_demo

        say(f"no {path}: writing the demo NAS devices under demo-data/ (takes a minute)")
        made = write_demo(path, path.parent / "demo-data", patients=10)
        say("demo NAS devices: " + ", ".join(f"{k} ({n} patients)" for k, n in made.items()))
    return load_settings(path)


def empty_nas(settings: Settings) -> list[str]:
    """The configured NAS devices with nothing indexed yet."""
    from nasindex.health import nas_status
    from nasindex.index.db import require_current

    indexed = {row["nas"]: row["instances"]
               for row in nas_status(require_current(settings.index.url), scope=None)}
    return [nas for nas in settings.nas if not indexed.get(nas)]


def first_full_index(nas_ids: list[str], timeout: float = 3600) -> dict[str, str]:
    """Run ``full-index/<nas>`` through Prefect for each NAS; wait; final state per NAS."""
    from prefect.client.orchestration import get_client

    runs = {nas: start_run(catalog.FULL, nas) for nas in nas_ids}
    states: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while len(states) < len(runs) and time.monotonic() < deadline:
            for nas, run in runs.items():
                if nas in states:
                    continue
                state = client.read_flow_run(run.id).state
                if state is not None and state.type.value in FINAL:
                    states[nas] = f"{state.name}: {state.message or ''}".strip()
                    say(f"full index of {nas}: {states[nas]}")
            time.sleep(1)
    return states


def start_watches(settings: Settings) -> list[str]:
    """Start a ``watch/<nas>`` run now for every NAS that has a watch (its hourly schedule
    starts the next ones); the NAS ids."""
    watched = [nas for nas, cfg in settings.nas.items() if cfg.freshness_seconds]
    for nas in watched:
        start_run(catalog.WATCH, nas)
    return watched


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    def handler(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    # A shell that starts us in the background leaves SIGINT ignored; Ctrl-C must work.
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
        signal.signal(signal.SIGINT, old_int)


def run() -> int:
    config = config_path().resolve()
    base = config.parent
    children = Children(base / ".run" / "logs", STOP_ORDER)
    with _stop_on_sigterm():
        try:
            _bring_up(config, base, children)
            _watch(children)
        except KeyboardInterrupt:
            say("Ctrl-C: stopping")
        except NasIndexError as exc:
            say(f"error: {exc}")
            return 1
        finally:
            # `uv run` forwards the terminal's Ctrl-C as a second SIGINT, and people press
            # it twice: neither may cut the shutdown short and leave a server running.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            children.stop_all(say)
            say("stopped")
    return 0


def _bring_up(config: Path, base: Path, children: Children) -> None:
    started = time.monotonic()
    settings = ensure_config(config)
    from nasindex.index.db import migrate

    migrate(settings.index.url)
    say(f"index ready ({len(settings.nas)} NAS: {', '.join(settings.nas)})")
    home = base / ".run" / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    ui_url = _prefect_server(settings.prefect.ui_url, children, home)
    env = prefect_env(home, f"{ui_url}/api")
    os.environ.update(env)  # this process talks to the same API
    # PREFECT_UI_URL: Prefect's own setting for links to runs; the dashboard may use it.
    child_env = {**os.environ, **env, "NASINDEX_CONFIG": str(config),
                 "PREFECT_UI_URL": ui_url}
    prefect_file = base / "prefect.yaml"
    deployments.apply(settings, prefect_file, env)
    say(f"deployments applied from {prefect_file}: {len(deployments.names(settings))}")
    start_worker(children, child_env, settings.prefect.work_pool)
    dashboard = start_dashboard(children, child_env, DASHBOARD_PORT)
    say(f"Prefect UI: {ui_url}")
    say(f"dashboard:  {dashboard}")
    api = start_api(children, child_env, config, API_PORT)
    for name, path in API_PATHS.items():
        say(f"{name + ':':<11} {api}{path}")
    todo = empty_nas(settings)
    if todo:
        say(f"first full index of {', '.join(todo)} (watch it in the Prefect UI)")
        first_full_index(todo)
    for nas in start_watches(settings):
        fresh = settings.nas[nas].freshness_seconds
        say(f"watching {nas}: a file copied into {settings.nas[nas].root} is searchable "
            f"within {fresh:g} s")
    say(f"ready in {time.monotonic() - started:.0f}s. Prefect UI: {ui_url}  dashboard: "
        f"{dashboard}  DICOMweb: {api}{API_PATHS['DICOMweb']}  (Ctrl-C stops everything)")


def _prefect_server(ui: str | None, children: Children, home: Path) -> str:
    """The UI URL of the Prefect server to use: ``[prefect] ui_url`` if it answers; else a
    local server started here (on ui_url's port if that is a local address)."""
    if ui:
        ui = ui.rstrip("/")
        if http_ok(f"{ui}/api/health", b"true"):
            say(f"using the Prefect server at {ui}")
            return ui
        parts = urllib.parse.urlsplit(ui)
        if parts.hostname not in ("127.0.0.1", "localhost") or parts.port is None:
            raise ServiceError(f"the Prefect server of [prefect] ui_url ({ui}) does not "
                               "answer; start it, or remove ui_url to run a local one.")
        port = parts.port
    else:
        port = SERVER_PORT
    say(f"starting the Prefect server (data in {home})")
    env = prefect_env(home, f"http://127.0.0.1:{port}/api")
    start_server(children, {**os.environ, **env}, port)
    return f"http://127.0.0.1:{port}"


def _watch(children: Children) -> None:
    while True:
        dead = children.dead()
        if dead:
            names = ", ".join(f"{c.name} (exit {c.proc.returncode}, log {c.log})" for c in dead)
            raise ServiceError(f"stopped unexpectedly: {names}")
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(run())
