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
refused = 0
for url in sys.argv[1:]:
    for statement in ("DELETE FROM audit_event", "UPDATE audit_event SET username = 'x'"):
        try:
            with get_engine(url).begin() as conn:
                conn.execute(text(statement))
        except Exception as exc:
            refused += 1
            print(type(exc).__name__, str(getattr(exc, "orig", exc)).splitlines()[0])
sys.exit(0 if refused == 2 * len(sys.argv[1:]) else 1)
"""


def tamper(*urls: str) -> subprocess.CompletedProcess:
    """Another process, with the application's own database code, tries to erase."""
    return subprocess.run([sys.executable, "-c", TAMPER, *urls], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def nasindex(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "nasindex.cli", "--config", str(config),
                           *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode:
        raise AssertionError(f"nasindex {args} failed: {proc.stdout}{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def index(tmp_path_factory, rsyslog):
    return two_nas_index(tmp_path_factory.mktemp("trail"),
                         f'\n[audit]\nsyslog = "tcp://127.0.0.1:{rsyslog.tcp}"\n')


def test_cli_searches_and_listings_are_in_nasindex_audit(index, rsyslog):
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
    # and the clinic's audit repository got them, with the OS user as the requestor
    for event_id in ("110112", "110103"):
        rsyslog.wait_for(lambda m, e=event_id: _requestor(m) == me and
                         m.find("EventIdentification/EventID").get("csd-code") == e,
                         f"EventID {event_id} of the CLI")


def _requestor(message) -> str | None:
    return next((a.get("UserID") for a in message.findall("ActiveParticipant")
                 if a.get("UserIsRequestor") == "true"), None)


def cli_json(config: Path, *args: str) -> list[dict]:
    result = CliRunner().invoke(app, ["--config", str(config), *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_a_second_process_cannot_change_or_delete_records(index, postgres_url):
    """SQLite and PostgreSQL: the triggers refuse even the owner's connection; on
    PostgreSQL the documented grants refuse the dashboard's role before that."""
    pg = index.model_copy(deep=True)
    pg.index.url = postgres_url
    migrate(postgres_url)
    for settings in (index, pg):
        Access(settings, get_engine(settings.index.url)).images(
            clinician("eve"), "ct", ONLY_CT[0].patient_id)
    before = [_rows(s.index.url) for s in (index, pg)]
    proc = tamper(index.index.url, postgres_url)
    assert proc.returncode == 0 and proc.stdout.count("append-only") == 4, proc.stdout
    assert [_rows(s.index.url) for s in (index, pg)] == before
    _apply_documented_grants(postgres_url)
    web = _as_role(postgres_url, "nasindex_web")
    Access(pg, get_engine(web)).search(clinician("eve"), SearchQuery(text="maria"))
    proc = tamper(web)
    assert proc.returncode == 0 and proc.stdout.count("permission denied") == 2, proc.stdout
    assert [r["action"] for r in _rows(postgres_url)] == ["search", "images"]
    # a role that may not add records (grants got lost): nothing is shown
    with psycopg.connect(_dsn(postgres_url), autocommit=True) as conn:
        conn.execute("REVOKE INSERT ON audit_event FROM nasindex_web")
    with pytest.raises(AuditUnavailable, match="permission denied"):
        Access(pg, get_engine(web)).search(clinician("eve"), SearchQuery(text="maria"))


def _rows(url: str) -> list[dict]:
    from nasindex.access.audit import events

    return events(get_engine(url), scope=None)


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


