"""The folders of a file-tree NAS as the index remembers them (table ``folder``), and the
indexed items directly in a set of folders.

A complete listing notes every folder with its mtime; a poll stats those and lists
again the ones that moved (see ``NasType.polls_folders``). What a poll saw is kept only
when its run succeeds, so a failed poll is simply repeated. Only this module writes
``folder``.

Items directly in a folder are found by key ranges: keys with prefix ``a/b/`` lie in
``["a/b/", "a/b0")`` ("0" follows "/"), minus the ranges of its known sub-folders,
which are polled on their own. Keys compare by code point: SQLite's default, and the
``COLLATE "C"`` index of migration 0007 on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.engine import Connection, Engine

from nasindex.contract import FolderMark, ScanResult
from nasindex.index.models import Folder

if TYPE_CHECKING:
    from nasindex.indexed import Known


def load(engine: Engine, nas_pk: int) -> dict[str, FolderMark]:
    """Every folder of the NAS the index knows ({} before the first complete listing)."""
    with engine.connect() as conn:
        rows = conn.execute(select(Folder.path, Folder.mtime_ns, Folder.settled)
                            .where(Folder.nas_id == nas_pk))
        return {path: FolderMark(path, mtime, bool(settled)) for path, mtime, settled in rows}


def save(engine: Engine, nas_pk: int, scan: ScanResult, unsettled: Iterable[str]) -> None:
    """Keep what ``scan`` saw of the folders: all of them after a complete listing, the
    ones it looked at (and those gone) after a poll. ``unsettled``: folders holding items
    that were still being written, listed again by the next poll whatever their mtime."""
    waiting = set(unsettled)
    rows = [{"nas": nas_pk, "path": m.path, "mtime": m.mtime_ns,
             "settled": m.settled and m.path not in waiting} for m in scan.folders]
    with engine.begin() as conn:
        if scan.complete:
            conn.execute(delete(Folder).where(Folder.nas_id == nas_pk))
        elif scan.folders_gone:
            conn.execute(delete(Folder).where(Folder.nas_id == nas_pk,
                                              Folder.path.in_(scan.folders_gone)))
        if rows:
            _upsert(conn, rows)
        rest = waiting - {m.path for m in scan.folders}
        if rest:
            conn.execute(update(Folder).where(Folder.nas_id == nas_pk,
                                              Folder.path.in_(sorted(rest)))
                         .values(settled=False))


def _upsert(conn: Connection, rows: list[dict]) -> None:
    conn.execute(text(
        "INSERT INTO folder (nas_id, path, mtime_ns, settled) "
        "VALUES (:nas, :path, :mtime, :settled) ON CONFLICT (nas_id, path) "
        "DO UPDATE SET mtime_ns = excluded.mtime_ns, settled = excluded.settled"), rows)


def folder_of(key: str) -> str:
    """The folder an item lies directly in (its scope): the key up to its last "/"."""
    return key[:key.rfind("/") + 1]


def items_in(engine: Engine, nas_pk: int, scopes: Iterable[str],
             known: Mapping[str, FolderMark]) -> dict[str, Known]:
    """The indexed items directly in the folders ``scopes`` (not in their known
    sub-folders), as indexed.Known rows by key."""
    children: dict[str, list[str]] = {}
    for path in known:
        if path:
            children.setdefault(folder_of(path[:-1]), []).append(path)
    postgres = engine.dialect.name == "postgresql"
    key = 'item_key COLLATE "C"' if postgres else "item_key"
    cols = ("SELECT item_key, size, mtime_ns, version, missing_since IS NOT NULL "
            f"FROM instance WHERE nas_id = :nas AND {key} >= :lo")
    bounded = text(cols + f" AND {key} < :hi").bindparams(bindparam("hi"))
    open_ended = text(cols)
    found: dict[str, Known] = {}
    with engine.connect() as conn:
        for scope in sorted(set(scopes)):
            for lo, hi in _gaps(scope, sorted(children.get(scope, ()))):
                stmt, args = (bounded, {"hi": hi}) if hi is not None else (open_ended, {})
                for row in conn.execute(stmt, {"nas": nas_pk, "lo": lo, **args}):
                    found[row[0]] = (row[0], row[1], row[2], row[3], int(bool(row[4])))
    return found


def _upper(prefix: str) -> str | None:
    """The first key after every key that starts with ``prefix`` (None: no end)."""
    return prefix[:-1] + "0" if prefix else None


def _gaps(scope: str, subfolders: list[str]) -> list[tuple[str, str | None]]:
    """Key ranges of ``scope`` with the ranges of its sub-folders cut out."""
    gaps, lo = [], scope
    for sub in subfolders:
        gaps.append((lo, sub))
        lo = _upper(sub)
    gaps.append((lo, _upper(scope)))
    return gaps
