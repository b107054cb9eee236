"""Connecting to the vendor's Firebird database, read-only, and explaining failures.

``database`` is a local file (opened with the embedded engine) or ``host[/port]:path``
(a Firebird server). Every transaction is a read-only snapshot (``isc_tpb_read`` +
``isc_tpb_concurrency``): one consistent view even while the PACS writes, and no way
for nasindex to write to the vendor's database.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fdb

from nasindex.plugin import ConfigError, NasUnavailable

_SERVER_DSN = re.compile(r"^(?P<host>[^:/\\]{2,}|\[[^\]]+\])(?:/(?P<port>\w+))?:(?P<path>.+)$")
CLIENT_LIBRARIES = ("/usr/lib/x86_64-linux-gnu/libfbclient.so.2",
                    "/usr/lib/aarch64-linux-gnu/libfbclient.so.2", "libfbclient.so.2")

# Firebird status codes (gdscode) we explain; see Firebird's iberror.h.
LOGIN_FAILED = 335544472
NETWORK_ERROR = 335544721
IO_ERROR = 335544344
BAD_ODS = 335544379
NOT_A_DATABASE = 335544323  # "file is not a valid database"
IN_USE = 335544702


def is_server(database: str) -> bool:
    """``host[/port]:path`` (a server) rather than a local file (embedded engine).
    A one-letter host is a Windows drive letter, not a server."""
    return _SERVER_DSN.match(database) is not None


def snapshot_tpb() -> bytes:
    tpb = fdb.TPB()
    tpb.access_mode = fdb.isc_tpb_read
    tpb.isolation_level = fdb.isc_tpb_concurrency
    return tpb.render()


def client_library(explicit: str | None) -> str | None:
    """fdb cannot always find the client by its bare name: try the usual places."""
    if explicit:
        return explicit
    return next((p for p in CLIENT_LIBRARIES if Path(p).exists()), None)


def password(nas_id: str, password_env: str | None, server: bool) -> str:
    """The password from the environment; never from the config file itself."""
    if not password_env:
        if server:
            raise ConfigError(f"[nas.{nas_id}]: a Firebird server needs a password: set "
                              "'password_env' to the name of an environment variable that "
                              "holds it.")
        return ""  # the embedded engine does not check passwords
    value = os.environ.get(password_env)
    if value is None:
        raise NasUnavailable(f"NAS {nas_id!r}: the environment variable {password_env} "
                             "(password_env) is not set. Set it in the environment of the "
                             "service or worker that runs nasindex.")
    return value


@contextmanager
def snapshot(con: fdb.Connection) -> Iterator[fdb.Cursor]:
    """A cursor inside one read-only snapshot transaction, always ended (rolled back:
    there is nothing to commit, and a rollback can never write)."""
    tr = con.trans(default_tpb=snapshot_tpb())
    tr.begin()
    try:
        yield tr.cursor()
    finally:
        tr.rollback()
        tr.close()


def connect(nas_id: str, database: str, user: str, password_env: str | None,
            charset: str, fb_library: str | None, root: Path) -> fdb.Connection:
    """Open the vendor database or raise NasUnavailable naming the NAS, cause and fix."""
    server = is_server(database)
    if not server and not Path(database).is_absolute():
        database = str(root / database)
    secret = password(nas_id, password_env, server)
    library = client_library(fb_library)
    try:
        kwargs = {"dsn": database} if server else {"database": database}
        return fdb.connect(user=user, password=secret, charset=charset,
                           isolation_level=snapshot_tpb(), fb_library_name=library, **kwargs)
    except fdb.DatabaseError as exc:
        raise NasUnavailable(explain(nas_id, database, user, password_env, exc)) from None
    except Exception as exc:  # the client library itself is missing or broken
        raise NasUnavailable(
            f"NAS {nas_id!r}: the Firebird client library could not be loaded "
            f"({type(exc).__name__}: {exc}). Install libfbclient2 (Debian: "
            "scripts/install-system-deps.sh) or set 'fb_library' to its path.") from None


def explain(nas_id: str, database: str, user: str, password_env: str | None,
            exc: fdb.DatabaseError) -> str:
    """An operator message for a failed connection: no password, no data."""
    code = exc.args[2] if len(exc.args) > 2 else None
    text = str(exc.args[0]) if exc.args else str(exc)
    where = f"NAS {nas_id!r}: database {database}"
    if code == LOGIN_FAILED:
        return (f"{where}: the server refused user {user!r} (wrong user name or password). "
                f"Put the right password in the environment variable {password_env} "
                "(password_env) or fix 'user'.")
    if code == NETWORK_ERROR or "network request" in text:
        return (f"{where}: cannot reach the Firebird server (is it down, or the host/port "
                "wrong?). Start the server or fix 'database' (host[/port]:path).")
    if code == BAD_ODS or "on-disk structure" in text:
        found = re.search(r"found ([\d.]+), support ([\d.]+)", text)
        detail = f" (file has ODS {found[1]}, this engine reads {found[2]})" if found else ""
        return (f"{where}: unsupported on-disk structure{detail}: the file was made by "
                "another Firebird major version. Connect through a server of the PACS's own "
                "version (database = 'host/port:path'), or use a matching client engine.")
    if code in (IO_ERROR, NOT_A_DATABASE) and ("No such file" in text or "open" in text):
        return (f"{where}: the database file does not exist or cannot be opened. "
                "Fix the path in 'database' (for a server: the path as the server sees it).")
    if code == NOT_A_DATABASE or "not a valid database" in text:
        return f"{where}: the file is not a Firebird database. Fix 'database'."
    if code == IO_ERROR and "lock" in text:
        return (f"{where}: the file is in use by another Firebird engine. Connect through "
                "that server (database = 'host/port:path') instead of opening the file.")
    first = text.splitlines()[-1].lstrip("- ") if text else type(exc).__name__
    return f"{where}: connection failed ({first}). Check 'database', 'user' and the server."
