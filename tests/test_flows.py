"""The flows through Prefect's real engine (a temporary Prefect server from
``prefect_test_harness``, with its own PREFECT_HOME): states, retries, the per-NAS run
lock, run records and artifacts, and a sync with the index on a real PostgreSQL."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import flow, task
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.settings import (
    PREFECT_HOME,
    PREFECT_SERVER_ANALYTICS_ENABLED,
    temporary_settings,
)
from prefect.testing.utilities import prefect_test_harness

from flows.reports import daily_report
from flows.sync import RETRY, full_index, incremental_sync, retry_failed
from nasindex.config import Settings
from nasindex.demo import demo_patients
from nasindex.errors import NasUnavailable
from nasindex.health import recent_runs
from nasindex.index.db import get_engine, migrate
from nasindex.runlock import run_lock
from support import age, write_config, write_tree

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    home = tmp_path_factory.mktemp("prefect-home")
    with temporary_settings({PREFECT_HOME: home, PREFECT_SERVER_ANALYTICS_ENABLED: False}), \
            prefect_test_harness(server_startup_timeout=60):
        yield


def ct_tree(root: Path, patients: int = 2) -> Path:
    write_tree(root, demo_patients(patients, slices=3), size=16)
    age(root)
    return root


def study_count(root: Path) -> int:
    """Studies in a tree written by write_tree: PatientID/StudyDate_Accession/..."""
    return len({p.parent.parent for p in root.rglob("*.dcm")})


def two_nas(tmp_path: Path, index_url: str | None = None) -> Settings:
    s = write_config(tmp_path / "nasindex.toml", {
        "ct": {"type": "dicom-folder", "root": str(ct_tree(tmp_path / "ct")),
               "max_missing_fraction": 0.5},
        "ct2": {"type": "dicom-folder", "root": str(ct_tree(tmp_path / "ct2", 1))},
    }, index_url)
    migrate(s.index.url)
    return s


def artifacts_of(flow_run_id) -> dict[str, object]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.type: a for a in found}


def test_full_then_incremental_publish_reports_and_record_runs(tmp_path):
    s = two_nas(tmp_path)
    state = full_index("ct", str(s.path), return_state=True)
    assert state.is_completed(), state.message
    first = state.result()
    assert first["status"] == "succeeded" and first["new"] == first["seen"] > 0
    assert first["new_studies"] == {"CT": study_count(tmp_path / "ct")}

    extra = demo_patients(3, slices=3)[2:]  # one more patient, with new studies
    write_tree(tmp_path / "ct", extra, size=16)
    age(tmp_path / "ct" / extra[0].patient_id)  # only the new files: the rest is untouched
    state = incremental_sync("ct", str(s.path), return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["new"] > 0 and summary["changed"] == 0
    assert sum(summary["new_studies"].values()) == len(extra[0].studies)

    # The run record that `nasindex status` and the health page read names this flow run.
    runs = recent_runs(get_engine(s.index.url), "ct", scope=None)
    assert runs[0]["flow_run_id"] == str(state.state_details.flow_run_id)
    assert [r["kind"] for r in runs[:2]] == ["incremental", "full"]

    arts = artifacts_of(state.state_details.flow_run_id)
    assert set(arts) == {"markdown", "table"}
    markdown = arts["markdown"].data
    assert "incremental run of NAS `ct`: **succeeded**" in markdown
    assert "files/s" in markdown and f"| new | {summary['new']} |" in markdown
    names = [p.name.split("^")[0] for p in demo_patients(3)]
    assert not any(name.lower() in markdown.lower() for name in names), "PHI in artifact"
    assert arts["markdown"].key == "ct-incremental-report"
    assert "new_studies" in str(arts["table"].data)


def test_failing_nas_fails_clearly_while_another_succeeds_then_recovers(tmp_path):
    s = two_nas(tmp_path)
    ct2 = tmp_path / "ct2"
    ct2.rename(tmp_path / "ct2-unmounted")
    failed = incremental_sync("ct2", str(s.path), return_state=True)
    ok = incremental_sync("ct", str(s.path), return_state=True)
    assert ok.is_completed()
    assert failed.is_failed()
    assert "does not exist" in failed.message and "ct2" in failed.message
    record = recent_runs(get_engine(s.index.url), "ct2", scope=None)[0]
    assert record["status"] == "failed" and record["message"] == failed.message
    report = artifacts_of(failed.state_details.flow_run_id)["markdown"].data
    assert "**failed**" in report and "does not exist" in report

    (tmp_path / "ct2-unmounted").rename(ct2)  # the share is back
    again = retry_failed("ct2", str(s.path), return_state=True)
    assert again.is_completed(), again.message


def test_a_folder_that_cannot_be_listed_is_in_the_run_report(tmp_path):
    root = ct_tree(tmp_path / "ct")
    loop = next(root.iterdir()) / "loop"
    loop.symlink_to(loop.parent, target_is_directory=True)  # a folder inside itself
    s = write_config(tmp_path / "nasindex.toml", {"ct": {
        "type": "dicom-folder", "root": str(root), "follow_symlinks": True}})
    migrate(s.index.url)
    state = full_index("ct", str(s.path), return_state=True)
    assert state.is_completed(), state.message
    report = artifacts_of(state.state_details.flow_run_id)["markdown"].data
    folder = loop.relative_to(root).as_posix() + "/"
    assert f"| `{folder}` | folder cannot be listed (symbolic link loop" in report
    assert "could not be listed" in report  # the run message, quoted at the top


def test_run_lock_skips_a_sync_waits_a_full_index_and_leaves_other_nas_alone(tmp_path):
    s = two_nas(tmp_path)
    engine = get_engine(s.index.url)
    with run_lock(engine, "ct"):  # as a running CLI sync or another deployment's run holds it
        skipped = incremental_sync("ct", str(s.path), return_state=True)
        other = incremental_sync("ct2", str(s.path), return_state=True)
    assert skipped.is_cancelled() and skipped.name == "Skipped"
    assert "in progress" in skipped.message
    assert other.is_completed()

    released = threading.Event()

    def hold_then_release() -> None:
        with run_lock(engine, "ct"):
            released.wait(10)
            time.sleep(2)

    holder = threading.Thread(target=hold_then_release)
    holder.start()
    try:
        released.set()  # the holder lets go ~2 s from now; the full index waits for it
        started = time.monotonic()
        waited = full_index("ct", str(s.path), wait_seconds=30, return_state=True)
    finally:
        holder.join()
    assert waited.is_completed(), waited.message
    assert time.monotonic() - started >= 1.5


def test_batch_tasks_retry_transient_errors_only():
    calls = {"io": 0, "nas": 0}

    @task(**{**RETRY, "retry_delay_seconds": 0})
    def flaky_io() -> str:
        calls["io"] += 1
        if calls["io"] < 3:
            raise OSError(116, "Stale file handle")
        return "read"

    @task(**{**RETRY, "retry_delay_seconds": 0})
    def nas_gone() -> None:
        calls["nas"] += 1
        raise NasUnavailable("NAS 'x': root /mnt/x does not exist")

    @flow
    def both() -> str:
        result = flaky_io()
        nas_gone(return_state=True)
        return result

    assert both() == "read"
    assert calls == {"io": 3, "nas": 1}


def test_daily_report_sums_the_day_per_nas(tmp_path):
    s = two_nas(tmp_path)
    assert full_index("ct", str(s.path), return_state=True).is_completed()
    (tmp_path / "ct2").rename(tmp_path / "gone")
    assert incremental_sync("ct2", str(s.path), return_state=True).is_failed()
    rows = {r["nas"]: r for r in daily_report(str(s.path))}
    assert rows["ct"]["runs"] == 1 and rows["ct"]["files_new"] > 0 and rows["ct"]["images"] > 0
    assert rows["ct2"]["failed"] == 1 and "does not exist" in rows["ct2"]["last_failure"]


def test_incremental_sync_with_the_index_on_postgresql(tmp_path, postgres_url):
    s = two_nas(tmp_path, index_url=postgres_url)
    state = full_index("ct", str(s.path), return_state=True)
    assert state.is_completed(), state.message
    seen = state.result()["seen"]
    (next((tmp_path / "ct").rglob("*.dcm"))).unlink()
    state = incremental_sync("ct", str(s.path), return_state=True)
    assert state.is_completed(), state.message
    assert state.result()["missing"] == 1 and state.result()["seen"] == seen - 1
    assert recent_runs(get_engine(postgres_url), "ct", scope=None)[0]["status"] == "succeeded"


def test_secrets_come_from_prefect_secret_blocks(tmp_path, monkeypatch):
    monkeypatch.delenv("CT_SHARE_TOKEN", raising=False)
    Secret(value="s3cret-value").save("ct-share-token", overwrite=True)
    root = ct_tree(tmp_path / "ct")
    s = write_config(tmp_path / "nasindex.toml", {"ct": {
        "type": "dicom-folder", "root": str(root),
        "secret_blocks": {"CT_SHARE_TOKEN": "ct-share-token"}}})
    migrate(s.index.url)
    state = incremental_sync("ct", str(s.path), return_state=True)
    assert state.is_completed()
    assert os.environ["CT_SHARE_TOKEN"] == "s3cret-value"
    report = artifacts_of(state.state_details.flow_run_id)["markdown"].data
    assert "s3cret-value" not in report

    s = write_config(tmp_path / "nasindex.toml", {"ct": {
        "type": "dicom-folder", "root": str(root),
        "secret_blocks": {"CT_SHARE_TOKEN": "no-such-block"}}})
    failed = incremental_sync("ct", str(s.path), return_state=True)
    assert failed.is_failed()
    assert "no Prefect Secret block 'no-such-block'" in failed.message
