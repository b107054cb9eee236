"""prefect.yaml from nasindex.toml, and the deployments on a real local Prefect server
(`prefect server start`), applied with `prefect deploy`, run by a real process worker:
the index changes, artifacts exist, one run per NAS at a time, a failing NAS fails alone
and an admin's retry succeeds, and the dashboard's buttons start deployment runs."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest
import yaml

from nasindex.access.audit import events
from nasindex.config import Settings, load_settings
from nasindex.demo import demo_patients
from nasindex.health import nas_status
from nasindex.index.db import get_engine, migrate
from nasindex.ops import deployments, processes, supervisor
from support import age, free_port, run_nas, write_config, write_tree

REPO = Path(__file__).resolve().parent.parent
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


def tree(root: Path, patients: int = 1) -> Path:
    write_tree(root, demo_patients(patients, slices=2), size=16)
    age(root)
    return root


def three_nas(base: Path) -> Settings:
    """ct and ct2 are fine; 'gone' has no root yet (an unmounted share)."""
    s = write_config(base / "nasindex.toml", {
        "ct": {"type": "dicom-folder", "root": str(tree(base / "ct"))},
        "ct2": {"type": "dicom-folder", "root": str(tree(base / "ct2"))},
        "gone": {"type": "dicom-folder", "root": str(base / "gone"), "sync_minutes": 5,
                 "freshness_seconds": 0},  # no watch: synced on a schedule
    })
    migrate(s.index.url)
    return s


# -- prefect.yaml, no server ----------------------------------------------------------------
def test_prefect_yaml_has_four_deployments_per_nas_and_no_paths(tmp_path):
    s = three_nas(tmp_path)
    doc = yaml.safe_load(deployments.render(s))
    by_name = {(d["entrypoint"].rsplit(".", 1)[1], d["name"]): d for d in doc["deployments"]}
    sync = by_name[("incremental_sync", "gone")]
    assert sync["schedules"] == [{"interval": 300, "active": True}]
    assert sync["parameters"] == {"nas": "gone"}
    assert sync["tags"] == ["nasindex", "nas:gone", "type:dicom-folder"]
    assert sync["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    assert sync["work_pool"] == {"name": "nasindex", "work_queue_name": "gone",
                                 "job_variables": {}}
    full = by_name[("full_index", "ct")]
    assert full["schedules"] == [] and full["concurrency_limit"]["collision_strategy"] == "ENQUEUE"
    assert ("retry_failed", "ct2") in by_name and ("daily_report", "daily") in by_name
    watched = by_name[("watch_nas", "ct")]  # a NAS with a watch: polled, not synced
    assert watched["schedules"] == [{"interval": 3600, "active": True}]
    assert watched["concurrency_limit"] == {"limit": 2, "collision_strategy": "CANCEL_NEW"}
    assert by_name[("incremental_sync", "ct")]["schedules"] == []
    assert by_name[("watch_nas", "gone")]["schedules"] == []
    assert len(doc["deployments"]) == 4 * 3 + 1
    assert str(tmp_path) not in deployments.render(s)  # serves every host


def test_deployments_check_fails_on_drift_and_passes_after_writing(tmp_path, capsys):
    s = three_nas(tmp_path)
    path = deployments.default_path(s)
    assert deployments.command(s, None, check=True, apply_now=False) == 1  # none yet
    assert deployments.command(s, None, check=False, apply_now=False) == 0
    assert path.exists() and deployments.command(s, None, check=True, apply_now=False) == 0
    s.path.write_text(s.path.read_text().replace("sync_minutes = 5", "sync_minutes = 10"))
    capsys.readouterr()
    cli = [str(Path(sys.executable).with_name("nasindex")), "--config", str(s.path),
           "deployments", "--check"]
    drift = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert drift.returncode == 1 and "interval: 600" in drift.stdout
    assert "out of date" in drift.stderr


def test_committed_prefect_yaml_matches_the_demo_config():
    """The repository's prefect.yaml is the demo's (`make run` rewrites it for yours)."""
    from nasindex.config import parse_settings

    demo = parse_settings({"nas": {
        "ct": {"type": "dicom-folder", "root": "demo-data/ct"},
        "pacs2": {"type": "firebird-jp2", "root": "demo-data/pacs2"},
        "pacs3": {"type": "firebird-jp2", "root": "demo-data/pacs3"}}}, REPO / "nasindex.toml")
    assert (REPO / "prefect.yaml").read_text() == deployments.render(demo)


# -- a real server, deployments, a worker ---------------------------------------------------
@dataclass
class Stack:
    settings: Settings
    base: Path
    api: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("stack")
    s = three_nas(base)
    for nas in ("ct", "ct2"):
        run_nas(s, nas, "full")
    children = processes.Children(base / "logs")
    port = free_port()
    env = {**os.environ, **supervisor.prefect_env(base / "prefect-home",
                                               f"http://127.0.0.1:{port}/api"),
           "PREFECT_WORKER_QUERY_SECONDS": "1",
           # Scheduled syncs would start on their own mid-test; the schedules are checked
           # on the deployments instead.
           "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"}
    try:
        api = supervisor.start_server(children, env, port)
        # The worker starts (and creates its pool) while `prefect deploy` runs: 2 cores.
        supervisor.start_worker(children, {**env, "NASINDEX_CONFIG": str(s.path)}, "nasindex")
        deployments.apply(s, base / "prefect.yaml", env)
        yield Stack(s, base, api, env)
    finally:
        children.stop_all()  # worker first, then the server
    assert not [p for p in processes.descendants(os.getpid())
                if "prefect" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")]


@pytest.fixture(scope="module")
def client(stack: Stack):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: stack.api}), \
            get_client(sync_client=True) as c:
        yield c


def start(client, deployment: str):
    return client.create_flow_run_from_deployment(client.read_deployment_by_name(deployment).id)


def wait_final(client, run_ids: list[UUID], timeout: float = 90) -> dict[UUID, object]:
    deadline = time.monotonic() + timeout
    states: dict[UUID, object] = {}
    while time.monotonic() < deadline and len(states) < len(run_ids):
        for run_id in run_ids:
            state = client.read_flow_run(run_id).state
            if state is not None and state.type.value in FINAL:
                states[run_id] = state
        time.sleep(0.5)
    assert len(states) == len(run_ids), "flow runs did not finish in time (see worker log)"
    return states


def instances(s: Settings) -> dict[str, int]:
    return {r["nas"]: r["instances"] for r in nas_status(get_engine(s.index.url), scope=None)}


@dataclass
class Wave:
    """Runs started together: `prefect deployment run incremental-sync/ct` (a new patient
    is on the share), two runs of incremental-sync/ct2, and one of a NAS with no root."""

    ct: UUID
    ct2: tuple[UUID, UUID]
    gone: UUID
    states: dict[UUID, object]
    patient: object
    before: int


@pytest.fixture(scope="module")
def wave(stack: Stack, client) -> Wave:
    before = instances(stack.settings)["ct"]
    patient = demo_patients(2, slices=2)[1]  # a new patient with new studies on the share
    write_tree(stack.base / "ct", [patient], size=16)
    age(stack.base / "ct" / patient.patient_id)
    ct2 = (start(client, "incremental-sync/ct2").id, start(client, "incremental-sync/ct2").id)
    gone = start(client, "incremental-sync/gone").id
    out = subprocess.run([*deployments.prefect_cli(), "deployment", "run",
                          "incremental-sync/ct"], env=stack.env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    ct = UUID(re.search(r"UUID: ([0-9a-f-]{36})", out.stdout).group(1))
    states = wait_final(client, [ct, *ct2, gone])
    return Wave(ct, ct2, gone, states, patient, before)


def test_prefect_deployment_run_syncs_the_index_and_publishes_artifacts(stack, client, wave):
    listed = {f"{client.read_flow(d.flow_id).name}/{d.name}" for d in client.read_deployments()}
    assert listed == set(deployments.names(stack.settings))
    schedules = client.read_deployment_by_name("watch/ct").schedules
    assert [sc.schedule.interval.total_seconds() for sc in schedules] == [3600]
    assert client.read_deployment_by_name("incremental-sync/ct").schedules == []

    state = wave.states[wave.ct]
    assert state.type.value == "COMPLETED", state.message
    assert instances(stack.settings)["ct"] > wave.before

    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    arts = client.read_artifacts(artifact_filter=ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[wave.ct])))
    assert {(a.type, a.key) for a in arts} == {("markdown", "ct-incremental-report"),
                                               ("table", "ct-incremental-new-studies")}
    table = next(a for a in arts if a.type == "table").data
    assert '"modality": "CT"' in table
    assert f'"new_studies": {len(wave.patient.studies)}' in table


def test_one_run_per_nas_at_a_time_while_nas_devices_run_side_by_side(wave):
    # Two runs of one NAS at once: one runs, the other is cancelled, visibly.
    pair = sorted((wave.states[r].type.value, wave.states[r].message or "") for r in wave.ct2)
    assert pair[0][0] == "CANCELLED" and "concurrency limit" in pair[0][1].lower()
    assert pair[1][0] == "COMPLETED"
    # ct ran in the same wave, unhindered by ct2's runs.
    assert wave.states[wave.ct].type.value == "COMPLETED"


def test_failing_nas_fails_alone_and_an_admin_retry_succeeds(stack, client, wave):
    from prefect.states import Scheduled

    failed = wave.states[wave.gone]
    assert failed.type.value == "FAILED"
    assert "'gone'" in failed.message and "does not exist" in failed.message
    assert wave.states[wave.ct].type.value == "COMPLETED"  # the others were not held back

    tree(stack.base / "gone")  # the share is mounted again
    # What the Prefect UI's "Retry" button sends for a failed deployment run.
    client.set_flow_run_state(wave.gone, Scheduled(name="AwaitingRetry",
                                                   message="Retry from the UI"), force=True)
    time.sleep(1)
    retried = wait_final(client, [wave.gone])[wave.gone]
    assert retried.type.value == "COMPLETED", retried.message
    assert instances(stack.settings)["gone"] > 0


def test_no_prefect_process_is_left_behind_by_the_children_helper(tmp_path):
    children = processes.Children(tmp_path)
    child = children.start("sleeper", ["/bin/sh", "-c", "sleep 60 & sleep 60"], dict(os.environ))
    time.sleep(0.3)
    family = [child.proc.pid, *processes.descendants(child.proc.pid)]
    assert len(family) >= 2
    children.stop_all()
    assert not any(processes.alive(p) for p in family)


def test_make_run_service_indexes_an_empty_nas_and_ctrl_c_stops_all_it_started(stack, client,
                                                                               tmp_path):
    """`python -m nasindex.ops.supervisor` (what `make run` runs) against the module's server
    ([prefect] ui_url: no second server on 2 cores), with its own NAS, pool and worker."""
    tree(tmp_path / "svc1")
    config = tmp_path / "nasindex.toml"
    ui = stack.api.removesuffix("/api")
    config.write_text(f'[index]\nurl = "sqlite:///{tmp_path / "index.db"}"\n'
                      f'[prefect]\nui_url = "{ui}"\nwork_pool = "svc"\n'
                      f'[nas.svc1]\ntype = "dicom-folder"\nroot = "{tmp_path / "svc1"}"\n'
                      'settle_seconds = 0.3\nworkers = 1\nfreshness_seconds = 3\n')
    env = {**stack.env, "NASINDEX_CONFIG": str(config),
           "NASINDEX_DASHBOARD_PORT": str(free_port()), "NASINDEX_API_PORT": str(free_port())}
    proc = subprocess.Popen([sys.executable, "-m", "nasindex.ops.supervisor"], env=env,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))
    reader.start()
    try:
        # The first full index runs in a worker's flow-run process: on a loaded 2-core
        # machine that alone took over 120 s. A deadline, not a wait: it ends at "ready".
        deadline = time.monotonic() + 300
        while not any("ready in" in x for x in lines) and proc.poll() is None:
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.5)
        output = "".join(lines)
        assert "full index of svc1: Completed" in output, output
        assert f"Prefect UI: {ui}" in output
        # The installed dashboard answered /_stcore/health before this line was printed.
        assert f"dashboard:  http://127.0.0.1:{env['NASINDEX_DASHBOARD_PORT']}" in output
        assert "watching svc1" in output
        # The README's demo: a study copied into the NAS is found, by the watch make run
        # started (a flow run of watch/svc1 on the worker), within its freshness.
        indexed = instances(load_settings(config))["svc1"]
        write_tree(tmp_path / "svc1" / "copied", demo_patients(2, slices=2)[1:], size=16)
        deadline = time.monotonic() + 90
        while instances(load_settings(config))["svc1"] == indexed:
            assert time.monotonic() < deadline, "the watch did not index the copied study"
            time.sleep(0.5)
        _a_viewer_finds_and_retrieves_through_the_printed_url(output)
        family = processes.descendants(proc.pid)
        assert any(b"serve" in Path(f"/proc/{p}/cmdline").read_bytes() for p in family)
        assert any(b"worker" in Path(f"/proc/{p}/cmdline").read_bytes() for p in family)
    finally:
        started = [proc.pid, *processes.descendants(proc.pid)]
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:  # never leave a stack behind, even on failure
            for pid in started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            raise
        finally:
            reader.join(10)
    output = "".join(lines)
    assert proc.returncode == 0, output
    assert output.index("stopping worker") < output.rindex("stopped")
    assert not [p for p in family if processes.alive(p)]
    assert instances(load_settings(config))["svc1"] > 0


def _a_viewer_finds_and_retrieves_through_the_printed_url(output: str) -> None:
    """dicomweb-client at the DICOMweb URL `make run` printed: the indexed study is found
    and retrieved, every instance decodable."""
    from dicomweb_client.api import DICOMwebClient

    url = re.search(r"DICOMweb: +(http://\S+/dicomweb)\n", output)
    assert url, output
    viewer = DICOMwebClient(url=url.group(1))
    studies = viewer.search_for_studies()
    assert studies, "the indexed NAS's studies are found"
    uid = studies[0]["0020000D"]["Value"][0]
    found = {i["00080018"]["Value"][0] for i in viewer.search_for_instances(uid)}
    retrieved = viewer.retrieve_study(uid)
    assert {ds.SOPInstanceUID for ds in retrieved} == found and found
    assert all(ds.pixel_array.size for ds in retrieved)


def test_dashboard_buttons_start_a_deployment_run_after_confirmation(stack, client,
                                                                     monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PREFECT_API_URL", stack.api)
    # The page's context as the login gate makes it: an admin of every NAS.
    script = (f"import sys\nsys.path.insert(0, {str(REPO / 'dashboard')!r})\n"
              "from actions import render_actions\nfrom dash_context import Context\n"
              "from nasindex.access.guard import Access\n"
              "from nasindex.access.principal import ADMIN, Principal\n"
              "from nasindex.config import load_settings\n"
              "from nasindex.index.db import get_engine\n"
              f"s = load_settings({str(stack.settings.path)!r})\n"
              "access = Access(s, get_engine(s.index.url))\n"
              "admin = Principal('admin@example.test', frozenset({ADMIN}), None, "
              "'127.0.0.1', 'dashboard')\n"
              "render_actions(Context(s, access.engine, access, admin), 'ct2')\n")
    app = AppTest.from_string(script, default_timeout=30).run()
    deployment = client.read_deployment_by_name("retry-failed/ct2")

    def runs() -> list:
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        return client.read_flow_runs(deployment_filter=DeploymentFilter(
            id=DeploymentFilterId(any_=[deployment.id])))

    next(b for b in app.button if b.label == "Retry failed").click().run()
    assert "failed files of NAS ct2" in app.warning[0].value
    assert runs() == []  # nothing starts before the confirmation
    next(b for b in app.button if b.label == "Confirm").click().run()
    assert not app.error, app.error[0].value if app.error else ""
    assert "retry-failed/ct2" in app.success[0].value
    started = runs()
    # Last test of the module: the worker picks the run up; teardown stops it all.
    assert len(started) == 1 and "dashboard" in started[0].tags
    trail = events(get_engine(stack.settings.index.url), scope=None, action="admin:retry")
    assert [(r["user"], r["nas"], r["detail"]) for r in reversed(trail)] == [
        ("admin@example.test", "ct2", "requested"),
        ("admin@example.test", "ct2", f"retry-failed/ct2: flow run {started[0].id}")]


def test_api_sync_starts_a_deployment_run_and_a_second_is_a_409(stack, client, monkeypatch):
    """POST /api/v1/nas/{nas}/sync (the app in this process, on the module's Prefect
    server): 202 with the run's id and UI link, then 409 while that run is under way."""
    from fastapi.testclient import TestClient

    from nasindex.api.app import create_app

    monkeypatch.setenv("PREFECT_API_URL", stack.api)
    with TestClient(create_app(stack.settings), client=("127.0.0.1", 50000)) as http:
        first = http.post("/api/v1/nas/ct/sync", params={"kind": "incremental"})
        assert first.status_code == 202, first.text
        run = first.json()
        assert run["deployment"] == "incremental-sync/ct"
        assert run["url"].startswith(stack.api.removesuffix("/api")) and run["flow_run_id"] in (
            run["url"])
        assert "api" in client.read_flow_run(UUID(run["flow_run_id"])).tags
        again = http.post("/api/v1/nas/ct/sync", params={"kind": "full"})
        assert again.status_code == 409, again.text
        assert again.json()["flow_run_id"] == run["flow_run_id"]
        assert http.post("/api/v1/nas/nowhere/sync").status_code == 404
    trail = events(get_engine(stack.settings.index.url), scope=None, nas="ct")
    assert [(r["action"], r["outcome"]) for r in trail[:2]] == [("admin:full", "failed"),
                                                                 ("admin:full", "success")]
