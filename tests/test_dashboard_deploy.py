"""Deployment rules of the dashboard, with the real `streamlit run`: no login means
loopback only (and a banner on every page); a login configuration without its secrets
does not start either. Each refusal is one line naming the fix, exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from access_support import two_nas_index
from browser import free_port

ROOT = Path(__file__).resolve().parents[1]
AUTH = """
[auth]
server_metadata_url = "http://127.0.0.1:9/.well-known/openid-configuration"
client_id = "nasindex"
redirect_uri = "https://nasindex.clinic.example/oauth2callback"
client_secret_env = "NASINDEX_TEST_UNSET_CLIENT_SECRET"
cookie_secret_env = "NASINDEX_TEST_UNSET_COOKIE_SECRET"
[auth.groups]
radiology = "clinician"
"""


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return two_nas_index(tmp_path_factory.mktemp("deploy"))


def streamlit_run(config: Path, address: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NASINDEX_CONFIG": str(config),
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    return subprocess.run(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
         "--server.headless", "true", "--server.address", address,
         "--server.port", str(free_port())],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_without_login_it_refuses_every_interface(index):
    proc = streamlit_run(index.path, "0.0.0.0")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("nasindex dashboard: refusing to serve patient data on 0.0.0.0")
    assert "[auth]" in last and "--server.address 127.0.0.1" in last
    assert "Traceback" not in proc.stderr


def test_login_without_its_secrets_does_not_start(tmp_path, index):
    config = tmp_path / "nasindex.toml"
    config.write_text(index.path.read_text(encoding="utf-8") + AUTH, encoding="utf-8")
    proc = streamlit_run(config, "0.0.0.0")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "NASINDEX_TEST_UNSET_" in last and "environment variable" in last


def test_the_demo_says_so_on_every_page(index, monkeypatch):
    at = _app(index.path, monkeypatch)
    for page in ("views/search.py", "views/patient.py?nas=ct&id=NOBODY", "views/health.py"):
        path, _, query = page.partition("?")
        at.query_params.clear()
        for key, value in (q.split("=") for q in query.split("&") if q):
            at.query_params[key] = value
        at.switch_page(path).run()
        assert not at.exception
        banners = [w.value for w in at.warning if "Demo mode, no login" in w.value]
        assert banners, (page, [w.value for w in at.warning])
    assert "Audit" in str(at)  # the demo user may do everything, the audit page too


def _app(config: Path, monkeypatch) -> AppTest:
    """The pages in AppTest, served (as `make run` does) on 127.0.0.1."""
    st_config.set_option("server.address", "127.0.0.1")
    monkeypatch.setenv("NASINDEX_CONFIG", str(config))
    return AppTest.from_file(str(ROOT / "dashboard" / "main.py"), default_timeout=30)


def test_the_audit_page_filters_and_exports(index, monkeypatch):
    at = _app(index.path, monkeypatch)
    at.run()
    at.text_input[0].input("maria")
    at.form_submit_button[0].click().run()  # a search, as the demo user
    at.switch_page("views/audit.py").run()
    assert not at.exception
    at.selectbox[0].select("search").run()
    table = at.dataframe[0].value
    assert list(table["action"]) == ["search"] and '"maria"' in table["query"].iloc[0]
    assert table["user"].iloc[0].endswith("(no login)")
    csv = at.get("download_button")[0]
    assert csv.proto.label == "Export CSV"
    at.text_input[0].input("somebody-else").run()  # the user filter
    assert at.dataframe[0].value.empty


def test_an_audit_trail_that_cannot_be_written_hides_the_page(tmp_path, monkeypatch):
    settings = two_nas_index(tmp_path)
    from sqlalchemy import text

    from nasindex.index.db import get_engine

    with get_engine(settings.index.url).begin() as conn:  # a damaged index
        conn.execute(text("ALTER TABLE audit_event RENAME TO audit_event_lost"))
    at = _app(settings.path, monkeypatch)
    at.run()
    at.text_input[0].input("maria")
    at.form_submit_button[0].click().run()
    assert any("audit trail cannot be written" in e.value for e in at.error)
    assert not at.dataframe  # no result table
