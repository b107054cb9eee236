"""Stopping and stalling, for real: a run of the `nasindex` command on a share (FUSE)
whose reads hang, stopped by SIGTERM and killed by SIGKILL; and runs that give up on a
share that stopped answering, naming the NAS."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stalling import StalledShare, alive, descendants, stalled_share, wait_for

from nasindex.config import load_settings
from nasindex.demo import demo_patients
from nasindex.errors import NasUnavailable
from nasindex.health import nas_status
from nasindex.index.db import get_engine, migrate
from support import age, run_nas, write_config, write_tree

pytestmark = pytest.mark.slow


def cli(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "nasindex.cli", "--config", str(config), *args]


def last_run(config: Path) -> dict:
    """The last run as `nasindex status` shows it (the same health query)."""
    return nas_status(get_engine(load_settings(config).index.url), scope=None)[0]["last_run"]


def stopped(config: Path, share: StalledShare, sig: signal.Signals
            ) -> tuple[int, float, list[int]]:
    """Start a full index on the stalling share, wait until its workers read, send
    ``sig``: (exit status, seconds until it exited, its processes as they were)."""
    share.marker.unlink(missing_ok=True)
    proc = subprocess.Popen(cli(config, "index", "ct"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        share.wait_stalled()
        family = descendants(proc.pid)
        assert last_run(config)["status"] == "running"
        sent = time.monotonic()
        proc.send_signal(sig)
        code = proc.wait(30)
        return code, time.monotonic() - sent, family
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_stop_signal_ends_a_run_at_once_and_no_worker_outlives_it(tmp_path: Path) -> None:
    source = tmp_path / "source"
    write_tree(source, demo_patients(4, slices=24), size=16)  # 220 files: worker processes
    age(source)
    with stalled_share(source, tmp_path / "nas", "slow") as share:
        config = tmp_path / "nasindex.toml"
        s = write_config(config, {"ct": {"type": "dicom-folder", "root": str(share.root),
                                         "workers": 2}})
        migrate(s.index.url)

        code, seconds, workers = stopped(config, share, signal.SIGTERM)
        assert code == -signal.SIGTERM and seconds < 10  # the reads hang; the run does not
        wait_for(lambda: not alive(workers), 10, "the workers to end")
        run = last_run(config)
        assert run["status"] == "interrupted" and "SIGTERM" in run["message"]

        code, _, workers = stopped(config, share, signal.SIGKILL)  # no chance to clean up...
        assert code == -signal.SIGKILL
        wait_for(lambda: not alive(workers), 30, "the workers to die with their run")
        run = last_run(config)  # ...and the record says running, but its lock is free
        assert run["status"] == "interrupted" and "ended without recording" in run["message"]

    with stalled_share(source, tmp_path / "stalled", "read") as share:
        s = write_config(config, {"ct": {"type": "dicom-folder", "root": str(share.root),
                                         "workers": 2, "io_timeout_seconds": 1.5}})
        started = time.monotonic()
        with pytest.raises(NasUnavailable, match="'ct': no answer for 2 s while reading"):
            run_nas(s, "ct", "full")
        assert time.monotonic() - started < 20


def test_a_listing_that_stalls_fails_the_run_naming_the_nas(tmp_path: Path) -> None:
    source = tmp_path / "source"
    write_tree(source, demo_patients(1, slices=2), size=16)
    age(source)
    with stalled_share(source, tmp_path / "nas", "list") as share:
        s = write_config(tmp_path / "nasindex.toml", {"ct": {
            "type": "dicom-folder", "root": str(share.root), "io_timeout_seconds": 1}})
        migrate(s.index.url)
        started = time.monotonic()
        with pytest.raises(NasUnavailable, match="'ct': no answer for 1 s while listing it"):
            run_nas(s, "ct", "incremental")
        assert share.marker.exists() and time.monotonic() - started < 15
