"""The audit trail as an auditor relies on it: append-only against a second process on
SQLite and PostgreSQL (triggers, and the documented grants), fail closed when it cannot
be written, and `nasindex audit` listing what the CLI's searches and listings did."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from access_support import ONLY_CT, SHARED, clinician, two_nas_index
from nasindex.access.guard import Access
from nasindex.cli import app
from nasindex.errors import AuditUnavailable
from nasindex.index.db import get_engine, migrate
from nasindex.search import SearchQuery

ROOT = Path(__file__).resolve().parents[1]
GRANTS = ROOT / "docs" / "audit-grants.sql"

TAMPER = """
import sys
from sqlalchemy import text
from nasindex.index.db import get_engine
engine = get_engine(sys.argv[1])
refused = 0
for statement in ("DELETE FROM audit_event", "UPDATE audit_event SET username = 'nobody'"):
    try:
        with engine.begin() as conn:
            conn.execute(text(statement))
    except Exception as exc:
        refused += 1
        print(type(exc).__name__, str(getattr(exc, "orig", exc)).splitlines()[0])
sys.exit(0 if refused == 2 else 1)
"""


def tamper(url: str) -> subprocess.CompletedProcess:
    """Another process, with the application's own database code, tries to erase."""
    return subprocess.run([sys.executable, "-c", TAMPER, url], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def nasindex(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "nasindex.cli", "--config", str(config),
                           *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode:
        raise AssertionError(f"nasindex {args} failed: {proc.stdout}{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return two_nas_index(tmp_path_factory.mktemp("trail"))


def test_cli_searches_and_listings_are_in_nasindex_audit(index):
    config = index.path
    typed = SHARED[0].name.split("^")[0].lower()
    found = json.loads(nasindex(config, "search", typed, "--json").stdout)
    listed = json.loads(nasindex(config, "images", "--nas", "ct2", "--patient-id",
                                 SHARED[0].patient_id, "--json").stdout)
    me = getpass.getuser()
    rows = json.loads(nasindex(config, "audit", "--user", me, "--json").stdout)
    by_action = {r["action"]: r for r in rows}
    search = by_action["search"]
    assert json.loads(search["query"]) == {"text": typed}
    assert search["results"] == len({h["person"] for h in found}) == 1
    assert (search["user"], search["door"], search["client"]) == (me, "cli", "local")
    assert datetime.fromisoformat(search["at"]) > datetime.now(UTC) - timedelta(minutes=5)
    assert by_action["images"]["results"] == len(listed)
    assert by_action["images"]["patient_id"] == SHARED[0].patient_id
    # the filters, in this process (same command code, no second start-up)
    assert [r["action"] for r in cli_json(config, "audit", "--patient-id",
                                          SHARED[0].patient_id)] == ["images"]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert cli_json(config, "audit", "--since", tomorrow) == []
    table = CliRunner().invoke(app, ["--config", str(config), "audit", "--action", "search"])
    assert "nguy" in table.output and "1 record(s)" in table.output
    assert "audit" in {r["action"] for r in cli_json(config, "audit")}  # reading is recorded
    wrong = CliRunner().invoke(app, ["--config", str(config), "audit", "--since", "3/12/26"])
    assert wrong.exit_code == 2 and "YYYY-MM-DD" in wrong.output


def cli_json(config: Path, *args: str) -> list[dict]:
    result = CliRunner().invoke(app, ["--config", str(config), *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_a_second_process_cannot_change_or_delete_records_sqlite(index):
    Access(index, get_engine(index.index.url)).images(clinician("eve"), "ct",
                                                         ONLY_CT[0].patient_id)
    before = _rows(index.index.url)
    proc = tamper(index.index.url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("append-only") == 2
    assert _rows(index.index.url) == before


def _rows(url: str) -> list[dict]:
    from nasindex.access.audit import events

    return events(get_engine(url), scope=None)


def test_postgresql_trail_is_append_only_by_trigger_and_grants(tmp_path, postgres_url):
    migrate(postgres_url)
    settings = two_nas_index(tmp_path)  # files and config; the index goes to PostgreSQL
    settings.index.url = postgres_url
    owner = Access(settings, get_engine(postgres_url))
    owner.images(clinician("frank"), "ct", ONLY_CT[0].patient_id)
    proc = tamper(postgres_url)  # even the owner's connection: the triggers refuse
    assert proc.returncode == 0 and proc.stdout.count("append-only") == 2, proc.stdout
    _apply_documented_grants(postgres_url)
    web = _as_role(postgres_url, "nasindex_web")
    Access(settings, get_engine(web)).search(clinician("frank"), SearchQuery(text="maria"))
    proc = tamper(web)
    assert proc.returncode == 0 and proc.stdout.count("permission denied") == 2, proc.stdout
    assert [r["action"] for r in _rows(postgres_url)] == ["search", "images"]
    # a role that may not add records (grants got lost): nothing is shown
    with psycopg.connect(_dsn(postgres_url), autocommit=True) as conn:
        conn.execute("REVOKE INSERT ON audit_event FROM nasindex_web")
    with pytest.raises(AuditUnavailable, match="permission denied"):
        Access(settings, get_engine(web)).search(clinician("frank"),
                                                 SearchQuery(text="maria"))


def _dsn(url: str) -> str:
    u = make_url(url)
    return f"host={u.host} port={u.port} user={u.username} dbname={u.database}"


def _as_role(url: str, role: str) -> str:
    return make_url(url).set(username=role).render_as_string(hide_password=False)


def _apply_documented_grants(url: str) -> None:
    with psycopg.connect(_dsn(url), autocommit=True) as conn:
        for role in ("nasindex_sync", "nasindex_web"):
            conn.execute(f"DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN "
                         "duplicate_object THEN NULL; END $$")
        conn.execute(GRANTS.read_text(encoding="utf-8"))


