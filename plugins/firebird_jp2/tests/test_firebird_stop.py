"""A Firebird run stopped by SIGTERM once the Firebird client library is loaded (it
installs signal handlers of its own), and a run against a frozen Firebird server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fb_support import PASSWORD_ENV, make_reference_nas, write_config
from stalling import alive, descendants, stalled_share, wait_for

from nasindex.health import nas_status
from nasindex.index.db import get_engine

pytestmark = pytest.mark.slow


def test_sigterm_stops_a_firebird_run_at_once(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    database = str(tmp_path / "db" / "PACS.FDB")
    make_reference_nas(tmp_path / "share", database, patients=2, slices=3).con.close()
    with stalled_share(tmp_path / "share", tmp_path / "nas", "slow") as share:
        s = write_config(tmp_path / "nasindex.toml", {"pacs": {
            "type": "firebird-jp2", "root": str(share.root), "database": database}})
        proc = subprocess.Popen([sys.executable, "-m", "nasindex.cli", "--config",
                                 str(s.path), "index", "pacs"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            share.wait_stalled()  # listed through the database: the client is loaded
            family = descendants(proc.pid)
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == -signal.SIGTERM
            assert time.monotonic() - sent < 10
        finally:
            if proc.poll() is None:
                proc.kill()
        wait_for(lambda: not alive(family), 10, "the run's processes to end")
        run = nas_status(get_engine(s.index.url), scope=None)[0]["last_run"]
        assert run["status"] == "interrupted" and "SIGTERM" in run["message"]


def test_a_frozen_firebird_server_fails_the_run_naming_the_nas(
        tmp_path: Path, firebird_server, server_password) -> None:
    dsn = firebird_server.dsn("frozen.fdb")
    nas = make_reference_nas(tmp_path / "share", dsn, patients=1, slices=2,
                             password=server_password, default_charset="UTF8",
                             name_charset="UTF8")
    nas.con.close()
    s = write_config(tmp_path / "nasindex.toml", {"pacs": {
        "type": "firebird-jp2", "root": str(nas.root), "database": dsn,
        "password_env": PASSWORD_ENV, "io_timeout_seconds": 2}})
    os.kill(firebird_server.pid, signal.SIGSTOP)  # the server process stops answering
    try:
        out = subprocess.run([sys.executable, "-m", "nasindex.cli", "--config", str(s.path),
                              "index", "pacs"], capture_output=True, text=True, timeout=60)
    finally:
        os.kill(firebird_server.pid, signal.SIGCONT)
    assert out.returncode == 1, out.stderr  # and it exits, though the client is stuck
    assert "pacs: NAS 'pacs': no answer for 2 s while checking" in " ".join(out.stderr.split())
    run = nas_status(get_engine(s.index.url), scope=None)[0]["last_run"]
    assert run["status"] == "failed" and "no answer" in run["message"]
