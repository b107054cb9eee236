"""Helpers and fixtures for the firebird-jp2 tests: real Firebird engines (embedded on local
a private server on 127.0.0.1 started for this session), real JPEG 2000 files, real
config files and a migrated SQLite index."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomli_w

from nasindex.config import Settings, load_settings
from nasindex.demo import demo_patients
from nasindex.index.db import get_engine, migrate
from nasindex.index.models import Instance, ItemError
from nasindex_firebird_jp2.demo import Keys, apply_ddl, create_database, reference_ddl
from nasindex_firebird_jp2.demo import write_patients as write_reference
from support import dump as support_dump
from support import free_port, stop_process, wait_listening

FB_LIB = next(iter(sorted(Path("/usr/lib").glob("*/firebird/3.0"))),
              Path("/usr/lib/x86_64-linux-gnu/firebird/3.0"))  # Debian's multiarch folder
FB_SERVER = Path("/usr/sbin/firebird")
ISQL = shutil.which("isql-fb") or "/usr/bin/isql-fb"
PASSWORD_ENV = "NASINDEX_TEST_FB_PASSWORD"


@dataclass
class FirebirdServer:
    host: str
    port: int
    data: Path  # a folder the server (user firebird) may create databases in
    password: str
    pid: int  # of the server process (tests freeze it with SIGSTOP)

    def dsn(self, name: str) -> str:
        return f"{self.host}/{self.port}:{self.data / name}"


def _write_server_root(root: Path, port: int) -> None:
    """A private Firebird root: its own config, security database and lock folder, so
    the machine's own Firebird setup is neither used nor changed."""
    for name in ("plugins", "intl", "UDF", "firebird.msg"):
        (root / name).symlink_to(FB_LIB / name)
    shutil.copy(FB_LIB / "plugins.conf", root / "plugins.conf")
    (root / "firebird.conf").write_text(
        f"RemoteServicePort = {port}\nRemoteBindAddress = 127.0.0.1\nServerMode = Super\n"
        f"IpcName = nasindex_test_{port}\nUdfAccess = None\nAuthServer = Srp\n"
        f"SecurityDatabase = {root / 'security3.fdb'}\n")
    (root / "databases.conf").write_text(f"security.db = {root / 'security3.fdb'}\n")
    for sub in ("lock", "data"):
        (root / sub).mkdir()


def _as_firebird(root: Path) -> dict:
    env = {"FIREBIRD": str(root), "FIREBIRD_LOCK": str(root / "lock"),
           "PATH": "/usr/sbin:/usr/bin:/bin"}
    return {"env": env, "user": "firebird", "group": "firebird", "extra_groups": []}


@pytest.fixture(scope="session")
def firebird_server() -> Iterator[FirebirdServer]:
    """A Firebird 3 server on 127.0.0.1 (own port) running as the ``firebird`` user,
    stopped at the end of the session. Fails, never skips, if it cannot start."""
    if not FB_SERVER.exists() or not Path(ISQL).exists() or not FB_LIB.is_dir():
        pytest.fail("Firebird server binaries are missing: run scripts/install-system-deps.sh "
                    "(Debian packages firebird3.0-server, firebird3.0-utils).")
    if os.geteuid() != 0:
        pytest.fail("The Firebird server test starts the server as the 'firebird' user; "
                    "run the tests as root (as `make test` does in CI).")
    root = Path(tempfile.mkdtemp(prefix="nasindex-fbserver-"))
    port, password = free_port(), secrets.token_hex(8)
    _write_server_root(root, port)
    root.chmod(0o755)
    for name in (".", "lock", "data", "firebird.conf", "databases.conf", "plugins.conf"):
        shutil.chown(root / name, "firebird", "firebird")  # never through the symlinks
    setup = (f"create database '{root / 'security3.fdb'}';\n"
             f"create user SYSDBA password '{password}' using plugin Srp;\ncommit;\n")
    made = subprocess.run([ISQL, "-q", "-user", "SYSDBA"], input=setup, text=True,
                          capture_output=True, timeout=30, **_as_firebird(root))
    if made.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not create the test server's security database: {made.stderr}")
    log = open(root / "server.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen([str(FB_SERVER)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, **_as_firebird(root))
    try:
        wait_listening((port,), proc, "the Firebird test server", 15, root / "server.log")
        yield FirebirdServer("127.0.0.1", port, root / "data", password, proc.pid)
    finally:
        stop_process(proc)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def server_password(firebird_server: FirebirdServer, monkeypatch) -> str:
    monkeypatch.setenv(PASSWORD_ENV, firebird_server.password)
    return firebird_server.password


def write_config(path: Path, nas: dict[str, dict]) -> Settings:
    """A real nasindex.toml (settle window 0: test files are fresh) and a migrated index."""
    tables = {k: {"settle_seconds": 0, "workers": 1, **v} for k, v in nas.items()}
    doc = {"index": {"url": f"sqlite:///{path.parent / 'index.db'}"}, "nas": tables}
    path.write_text(tomli_w.dumps(doc), encoding="utf-8")
    settings = load_settings(path)
    migrate(settings.index.url)
    return settings


@dataclass
class ReferenceNas:
    root: Path
    database: str
    con: object  # an open fdb connection (UTF8), for tests that change the database
    keys: Keys
    images: int


def make_reference_nas(root: Path, database: str, patients: int = 3, slices: int = 3,
                       password: str = "", default_charset: str = "ISO8859_1",
                       extra: list | None = None, name_charset: str = "ISO8859_1"
                       ) -> ReferenceNas:
    """A reference-schema database with ``patients`` demo patients (32x32 images).
    The test server runs from a private root where Firebird's intl module (Latin-1 and
    other non-builtin charsets) does not load: its databases use UTF8 names."""
    root.mkdir(parents=True, exist_ok=True)
    con = create_database(database, password=password, default_charset=default_charset)
    apply_ddl(con, reference_ddl().replace("ISO8859_1", name_charset))
    keys = Keys()
    people = demo_patients(patients, slices=slices) + (extra or [])
    images = write_reference(con, root, people, size=32, keys=keys)
    return ReferenceNas(root, database, con, keys, images)


@pytest.fixture
def embedded_nas(tmp_path: Path) -> Iterator[ReferenceNas]:
    (tmp_path / "db").mkdir()
    nas = make_reference_nas(tmp_path / "share", str(tmp_path / "db" / "PACS.FDB"))
    yield nas
    nas.con.close()


def dump(settings: Settings) -> dict[str, list[tuple]]:
    """The index as a user sees it; instances keyed with their file path under the root."""
    return support_dump(get_engine(settings.index.url),
                        (Instance.item_key, Instance.rel_path, Instance.sop_instance_uid,
                         Instance.size, Instance.missing_since.is_not(None)),
                        (ItemError.item_key, ItemError.reason))


VENDOR_B_DDL = """
CREATE TABLE PATIENTEN (PID INTEGER, PATNR VARCHAR(20), NAME VARCHAR(100) CHARACTER SET UTF8,
                        GEBDAT CHAR(8), GESCHLECHT CHAR(1));
CREATE TABLE UNTERSUCHUNG (U_ID INTEGER, PID INTEGER, DATUM CHAR(8),
                           BESCHREIBUNG VARCHAR(64), AUFTRAGSNR VARCHAR(20));
CREATE TABLE SERIE (SERIE_ID INTEGER, U_ID INTEGER, SERIE_UID VARCHAR(64), NR INTEGER,
                    MODALITAET VARCHAR(8));
CREATE TABLE BILD (BILD_ID INTEGER, SERIE_ID INTEGER, ORDNER VARCHAR(200), DATEI VARCHAR(100),
                   NR INTEGER, GEAENDERT TIMESTAMP, GROESSE BIGINT, ZEILEN INTEGER,
                   SPALTEN INTEGER)
"""

# Another vendor: other tables and columns, text dates, no study UIDs, no SOP UIDs, and the
# file path split over two columns of BILD. Only this mapping is needed to index it.
VENDOR_B_MAPPING = """
[patient]
table = "PATIENTEN"
key = "PID"
patient_id = "PATNR"
name = "NAME"
birth_date = "GEBDAT"
sex = "GESCHLECHT"

[study]
table = "UNTERSUCHUNG"
key = "U_ID"
parent_key = "PID"
date = "DATUM"
description = "BESCHREIBUNG"
accession = "AUFTRAGSNR"

[series]
table = "SERIE"
key = "SERIE_ID"
parent_key = "U_ID"
series_uid = "SERIE_UID"
number = "NR"
modality = "MODALITAET"

[image]
table = "BILD"
key = "BILD_ID"
parent_key = "SERIE_ID"
instance_number = "NR"
path = "{ORDNER}/{DATEI}"
path_strip_prefix = "D:\\\\Archiv\\\\"
file_size = "GROESSE"
rows = "ZEILEN"
columns = "SPALTEN"

[cursor]
column = "GEAENDERT"
overlap = 300
"""


def make_vendor_b(database: str, root: Path, password: str = ""):
    """An empty vendor-B database (no keys or constraints, like many old systems)."""
    root.mkdir(parents=True, exist_ok=True)
    con = create_database(database, password=password, default_charset="UTF8")
    apply_ddl(con, VENDOR_B_DDL)
    return con
