"""NAS type ``firebird-jp2``: a PACS Firebird database pointing at JPEG 2000 files.

The vendor's schema is described by a mapping (configuration, see ``mapping.py`` and
docs/firebird.md). One run lists every image row in a single read-only snapshot
transaction; each listed row carries its metadata to ``read``, which then only opens the
file's header. So ``read`` never touches the database (it runs in worker processes, and
an embedded Firebird file can be opened by one process only) and the metadata and the
fingerprints of a run come from one consistent view.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any

import fdb
import numpy as np
from pydantic import Field

from nasindex.plugin import (
    ConfigError,
    DemoPatient,
    Fingerprint,
    InstanceRecord,
    ItemFailure,
    NasOptions,
    NasType,
    NasUnavailable,
    ScanResult,
    escape_path,
    progress,
    real_path,
)
from nasindex_firebird_jp2.connection import connect, snapshot
from nasindex_firebird_jp2.jp2 import NotJpeg2000, decode, read_header
from nasindex_firebird_jp2.mapping import (
    PLACEHOLDER,
    Mapping,
    Query,
    build_query,
    load_mapping,
)
from nasindex_firebird_jp2.rows import BadRow, RowReader, derived_uid, integer, key_text

__all__ = ["FirebirdJp2", "FirebirdJp2Options"]

MISSING_FILE = "#file-missing"  # suffix of the error key of a row whose file is gone


class FirebirdJp2Options(NasOptions):
    database: str  # local file (embedded engine) or host[/port]:path (server)
    user: str = "SYSDBA"
    password_env: str | None = None  # name of the environment variable with the password
    charset: str = "UTF8"  # connection character set; column charsets are converted to it
    mapping: str | dict[str, Any] = "reference"  # 'reference', a TOML path, or a table
    reconcile_minutes: float = Field(0, ge=0)  # 0: every run lists every row
    fb_library: str | None = None  # path of libfbclient, if not found by itself
    rescale_slope: float = 1.0  # previews: stored value * slope + intercept
    rescale_intercept: float = 0.0


@dataclass(frozen=True, slots=True)
class RowFingerprint(Fingerprint):
    """A fingerprint that carries its database row (and any problem found while
    listing) to ``read``; the engine passes it through untouched."""

    row: tuple = field(default=(), compare=False, repr=False)
    problem: str | None = field(default=None, compare=False)


@dataclass(slots=True)
class CursorState:
    """What the engine stores between runs: the highest cursor value seen and when the
    last full listing (reconciliation) ran."""

    column: str
    stamp: str | None = None
    reconciled_at: float = 0.0

    def dump(self) -> str:
        return json.dumps({"column": self.column, "stamp": self.stamp,
                           "reconciled_at": self.reconciled_at})

    @classmethod
    def load(cls, text: str | None, column: str) -> CursorState | None:
        try:
            raw = json.loads(text) if text else None
        except ValueError:
            return None
        if not isinstance(raw, dict) or raw.get("column") != column:
            return None  # first run, or the mapping changed: list everything
        return cls(column, raw.get("stamp"), float(raw.get("reconciled_at") or 0))


class FirebirdJp2(NasType):
    name = "firebird-jp2"
    description = "A PACS Firebird database pointing at JPEG 2000 files (read-only)."
    Options = FirebirdJp2Options
    demo_devices = ("pacs2", "pacs3")
    options: FirebirdJp2Options

    def __init__(self, nas_id: str, root: Path, options: FirebirdJp2Options) -> None:
        super().__init__(nas_id, root, options)
        self.mapping: Mapping = load_mapping(options.mapping)
        self.query: Query = build_query(self.mapping)
        self._con = None  # opened by check/scan in the main process only
        self._template = self._path_template()
        self._root = str(root)
        self._strip_prefix = (self.mapping.image.path_strip_prefix or "").replace(
            "\\", "/").lower()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_con"] = None  # a connection never travels to a worker process
        return state

    # -- connection ----------------------------------------------------------------
    def connect(self) -> fdb.Connection:
        """A new read-only connection (the caller closes it); NasUnavailable if none."""
        o = self.options
        return connect(self.nas_id, o.database, o.user, o.password_env, o.charset,
                       o.fb_library, self.root)

    def _connection(self) -> fdb.Connection:
        if self._con is None:
            self._con = self.connect()
        return self._con

    def _close(self) -> None:
        if self._con is not None:
            try:
                self._con.close()
            finally:
                self._con = None

    def check(self) -> None:
        if not self.root.is_dir() or not os.access(self.root, os.R_OK | os.X_OK):
            raise NasUnavailable(
                f"NAS {self.nas_id!r}: image share {self.root} does not exist or is not "
                "readable. Is it mounted? Mount it or fix 'root' (nothing was changed).")
        with os.scandir(self.root) as entries:
            empty = next(entries, None) is None
        if empty:
            raise NasUnavailable(
                f"NAS {self.nas_id!r}: image share {self.root} is empty. An unmounted share "
                "often looks like this; mount it (nothing was changed in the index).")
        from nasindex_firebird_jp2.schema import validate

        try:  # closed again: an embedded database admits one process at a time
            problems = validate(self._connection(), self.mapping)
        finally:
            self._close()
        if problems:
            raise ConfigError(f"NAS {self.nas_id!r}: the mapping does not fit the database: "
                              + "; ".join(problems)
                              + f". Fix the mapping (see `nasindex firebird check "
                              f"{self.nas_id}` and `nasindex firebird inspect {self.nas_id}`).")

    # -- listing -------------------------------------------------------------------
    def scan(self, cursor: str | None = None) -> ScanResult:
        spec = self.mapping.cursor
        state = CursorState.load(cursor, spec.column) if spec else None
        full = state is None or time.time() - state.reconciled_at >= \
            self.options.reconcile_minutes * 60
        sql, params = self.query.sql, ()
        if not full:
            sql += "\nWHERE " + self.query.cursor_filter
            params = (self._lower_bound(state),)
        try:
            with snapshot(self._connection()) as cur:
                cur.execute(sql, params)
                rows = _fetch_all(cur)
        finally:
            self._close()
        stamps = self._stamps(rows)
        items = list(self._fingerprints(rows, stamps))
        new_state = None
        if spec is not None:
            seen = [s for s in stamps if s is not None]
            if state is not None and state.stamp is not None:
                seen.append(self._parse_stamp(state.stamp))
            new_state = CursorState(spec.column, _dump_stamp(max(seen)) if seen else None,
                                    time.time() if full else state.reconciled_at)
        return ScanResult(items=items, complete=full,
                          cursor=new_state.dump() if new_state else None)

    def _stamps(self, rows: list[tuple]) -> list:
        """The cursor column's value of each row (None without a cursor)."""
        i = self.query.positions.get("cursor")
        if i is None:
            return [None] * len(rows)
        if self.mapping.cursor.kind == "key":
            return [integer(r[i]) for r in rows]
        return [_as_datetime(r[i]) for r in rows]

    def _parse_stamp(self, stamp: str) -> Any:
        return int(stamp) if self.mapping.cursor.kind == "key" else \
            datetime.fromisoformat(stamp)

    def _lower_bound(self, state: CursorState) -> Any:
        spec = self.mapping.cursor
        if state.stamp is None:
            return 0 if spec.kind == "key" else datetime(1, 1, 1)
        stamp = self._parse_stamp(state.stamp)
        if spec.kind == "key":
            return stamp - int(spec.overlap)
        return stamp - timedelta(seconds=spec.overlap)

    def _fingerprints(self, rows: list[tuple], stamps: list) -> Iterator[RowFingerprint]:
        key_at = self.query.positions["image.key"]
        keys = [key_text(r[key_at]) for r in rows]
        counts = Counter(keys)
        done: set[str] = set()
        for row, key, stamp in zip(rows, keys, stamps, strict=True):
            rel_path, path_problem = self._rel_path(row)
            if key is None:  # no identity: keyed by its path so the error row is stable
                yield RowFingerprint(f"null-key:{rel_path}", rel_path, -1, 0, row=row,
                                     problem="NULL in required column image."
                                     + self.mapping.image.key)
                continue
            if key in done:
                continue
            done.add(key)
            version = _version(row, stamp)
            if counts[key] > 1:
                problem = (f"duplicate key: image key occurs in {counts[key]} joined rows "
                           "(a duplicated key in the image, series, study or patient table)")
                yield RowFingerprint(key, rel_path, -1, 0, version, row, problem)
            elif path_problem:
                yield RowFingerprint(key, rel_path, -1, 0, version, row, path_problem)
            else:
                yield self._stat(key, rel_path, version, row)

    def _stat(self, key: str, rel_path: str, version: str, row: tuple) -> RowFingerprint:
        try:
            st = os.stat(real_path(self._root, rel_path))
        except FileNotFoundError:
            # Listed under its own key: the image itself goes unlisted, so a complete
            # listing tombstones it (under the engine's vanished-share guard), while
            # the error row says why; both clear when the file is back.
            return RowFingerprint(key + MISSING_FILE, rel_path, -1, 0, version, row,
                                  "file missing")
        except OSError as exc:
            return RowFingerprint(key, rel_path, -1, 0, version, row,
                                  f"unreadable: {exc.strerror or exc}")
        return RowFingerprint(key, rel_path, st.st_size, st.st_mtime_ns, version, row)

    def _path_template(self) -> tuple[str, list[tuple[int, str]]]:
        """The path template as a format string, and the row positions that fill it."""
        slots: list[tuple[int, str]] = []

        def slot(m) -> str:
            name = f"{m[1] or 'image'}.{m[2]}"
            slots.append((self.query.positions[f"path:{name}"], name))
            return "{}"

        return PLACEHOLDER.sub(slot, self.mapping.image.path), slots

    def _rel_path(self, row: tuple) -> tuple[str, str | None]:
        """The file's path under the root, from the template; or a problem."""
        fmt, slots = self._template
        values = [row[i] for i, _ in slots]
        if None in values:
            nulls = [name for (i, name) in slots if row[i] is None]
            values = ["" if v is None else v for v in values]
        else:
            nulls = []
        path = fmt.format(*(v.strip() if isinstance(v, str) else key_text(v) for v in values))
        path = path.replace("\\", "/")
        prefix = self._strip_prefix
        if prefix and path.lower().startswith(prefix):
            path = path[len(prefix):]
        rel = escape_path(posixpath.normpath(path.lstrip("/"))) if path.strip("/") else ""
        if nulls:
            return rel, "NULL in required path column(s) " + ", ".join(nulls)
        if rel == ".." or rel.startswith("../") or ":" in rel.split("/", 1)[0]:
            return rel, "path escapes the NAS root (absolute or '..'; set path_strip_prefix)"
        return rel, None

    # -- reading -------------------------------------------------------------------
    def read(self, batch: Sequence[Fingerprint]) -> list[InstanceRecord | ItemFailure]:
        reader = RowReader(self.nas_id, self.mapping, self.query)
        return [self._read_one(fp, reader) for fp in batch]

    def _read_one(self, fp: Fingerprint, reader: RowReader) -> InstanceRecord | ItemFailure:
        progress()
        problem = getattr(fp, "problem", None)
        row = getattr(fp, "row", ())
        if problem or not row:
            return ItemFailure(fp.key, fp.rel_path, problem or "listed without its row")
        try:
            record = reader.record(row, fp.key, fp.rel_path, fp.size, fp.mtime_ns, fp.version)
            header = read_header(real_path(self.root, fp.rel_path))
            self._agree(reader, row, fp, header)
        except (BadRow, NotJpeg2000) as exc:
            return ItemFailure(fp.key, fp.rel_path, str(exc))
        except FileNotFoundError:
            return ItemFailure(fp.key, fp.rel_path, "vanished between listing and reading",
                               io_error=True)
        except OSError as exc:
            return ItemFailure(fp.key, fp.rel_path, f"unreadable: {exc.strerror or exc}",
                               io_error=True)
        except Exception as exc:  # a broken file is an error row, never a failed run
            return ItemFailure(fp.key, fp.rel_path, f"{type(exc).__name__}: {exc}")
        record.sop_instance_uid = (record.sop_instance_uid or header.sop_instance_uid
                                   or derived_uid(self.nas_id, "image", fp.key))
        record.file_format = header.file_format
        record.transfer_syntax = header.transfer_syntax
        record.rows, record.columns = header.rows, header.columns
        record.lossless = header.lossless
        record.bits_allocated = 8 if header.bits <= 8 else 16
        record.sop_class_uid = header.sop_class_uid  # DICOM files only
        return record

    @staticmethod
    def _agree(reader: RowReader, row: tuple, fp: Fingerprint, header) -> None:
        """Refuse a file whose size or dimensions disagree with its database row."""
        size = integer(reader.get(row, "image.file_size"))
        if size is not None and size != fp.size:
            raise BadRow(f"file size {fp.size} disagrees with the database ({size})")
        for name, actual in (("rows", header.rows), ("columns", header.columns)):
            expected = integer(reader.get(row, f"image.{name}"))
            if expected is not None and expected != actual:
                raise BadRow(f"image {name} {actual} in the file header disagree with the "
                             f"database ({expected})")

    def open_image(self, rel_path: str) -> np.ndarray:
        path = self.inside_root(rel_path)
        pixels = decode(path)
        if pixels.ndim == 3 and pixels.shape[-1] not in (3, 4):
            pixels = pixels[0]
        with open(path, "rb") as f:
            is_dicom = f.read(132)[128:] == b"DICM"
        if is_dicom:
            import pydicom
            from pydicom.pixels import apply_modality_lut

            ds = pydicom.dcmread(path, stop_before_pixels=True)
            return np.asarray(apply_modality_lut(pixels, ds), dtype=np.float32)
        o = self.options
        return pixels.astype(np.float32) * o.rescale_slope + o.rescale_intercept

    def modality_rescale(self, rel_path: str) -> tuple[float, float]:
        """The configured rescale: JPEG 2000 files store no modality LUT."""
        return self.options.rescale_slope, self.options.rescale_intercept

    @classmethod
    def create_demo(cls, nas_id: str, root: Path, patients: Sequence[DemoPatient]
                    ) -> dict[str, Any]:
        from nasindex_firebird_jp2.demo import write_demo_nas

        return write_demo_nas(nas_id, root, patients, first=nas_id == cls.demo_devices[0])

    def describe(self) -> dict[str, Any]:
        o = self.options
        return {"type": self.name, "root": str(self.root), "database": o.database,
                "user": o.user, "charset": o.charset,
                "mapping": o.mapping if isinstance(o.mapping, str) else "(inline)"}


def _fetch_all(cur: fdb.Cursor, chunk: int = 2000) -> list[tuple]:
    """Every row of the query, telling the engine after each chunk that the database
    still answers (a frozen server then fails the run instead of hanging it)."""
    rows: list[tuple] = []
    while part := cur.fetchmany(chunk):
        rows += part
        progress()
    return rows


def _version(row: tuple, stamp: Any) -> str:
    """Changes whenever the row's values change (even if the vendor forgot to bump its
    stamp); a short digest, so no readable data lands in the index."""
    digest = hashlib.blake2b(repr(row).encode(), digest_size=8).hexdigest()
    return f"{_dump_stamp(stamp) if stamp is not None else ''}|{digest}"


def _as_datetime(value: Any) -> Any:
    """A DATE cursor column compares with the stored stamp as a datetime."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, dt_time())
    return value


def _dump_stamp(stamp: Any) -> str:
    return stamp.isoformat() if isinstance(stamp, datetime) else str(stamp)
