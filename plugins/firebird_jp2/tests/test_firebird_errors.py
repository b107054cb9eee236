"""Bad data becomes error rows and the run goes on; connection failures explain
themselves (NAS, cause, fix; never the password) and change nothing in the index."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from fb_support import (
    PASSWORD_ENV,
    VENDOR_B_MAPPING,
    dump,
    make_reference_nas,
    make_vendor_b,
    write_config,
)

from nasindex.errors import NasUnavailable
from nasindex.index.models import RunKind
from nasindex_firebird_jp2.demo import encode
from support import run_nas

GOOD = encode(np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 50, "jp2")


def _bild(cur, key, file, *, series=1, size=None, rows=None, folder="F") -> None:
    cur.execute("INSERT INTO BILD (BILD_ID, SERIE_ID, ORDNER, DATEI, NR, GEAENDERT, GROESSE, "
                "ZEILEN, SPALTEN) VALUES (?, ?, ?, ?, 1, CURRENT_TIMESTAMP, ?, ?, ?)",
                (key, series, folder, file, size, rows, rows))


def test_each_bad_row_is_an_error_row_and_the_run_goes_on(tmp_path: Path) -> None:
    share, folder = tmp_path / "share", tmp_path / "share" / "F"
    con = make_vendor_b(str(tmp_path / "VENDOR_B.FDB"), share)
    folder.mkdir()
    cur = con.cursor()
    cur.execute("INSERT INTO PATIENTEN VALUES (1, 'P1', 'Doe^Jane', '19700101', 'F')")
    cur.execute("INSERT INTO PATIENTEN VALUES (2, NULL, 'Nobody^Known', '19700101', 'M')")
    cur.execute("INSERT INTO UNTERSUCHUNG VALUES (1, 1, '20250101', 'CT', 'A1')")
    cur.execute("INSERT INTO UNTERSUCHUNG VALUES (2, 2, '20250101', 'CT', 'A2')")
    cur.execute("INSERT INTO SERIE VALUES (1, 1, '1.2.3.1', 1, 'CT')")
    cur.execute("INSERT INTO SERIE VALUES (2, 2, '1.2.3.2', 1, 'CT')")
    for name in ("good.jp2", "bad_size.jp2", "bad_dims.jp2", "dup.jp2", "orphan.jp2",
                 "nopid.jp2", "nullkey.jp2"):
        (folder / name).write_bytes(GOOD)
    (folder / "text.jp2").write_text("not an image at all\n")
    (folder / "cut.jp2").write_bytes(GOOD[:60])
    (folder / "adir.jp2").mkdir()  # the row points at something no one can read as a file
    _bild(cur, 1, "good.jp2", size=len(GOOD), rows=32)
    _bild(cur, 2, "missing.jp2")
    _bild(cur, 3, "adir.jp2")
    _bild(cur, 4, "text.jp2")
    _bild(cur, 5, "cut.jp2")
    _bild(cur, 6, "bad_size.jp2", size=len(GOOD) + 1)
    _bild(cur, 7, "bad_dims.jp2", rows=64)
    _bild(cur, 8, None)  # NULL in a path column
    _bild(cur, 9, "dup.jp2")
    _bild(cur, 9, "dup.jp2")  # duplicate key
    _bild(cur, 10, "orphan.jp2", series=99)  # no such series
    _bild(cur, 11, "nopid.jp2", series=2)  # its patient has a NULL patient ID
    _bild(cur, None, "nullkey.jp2")  # NULL key
    con.commit()
    con.close()
    (tmp_path / "b.toml").write_text(VENDOR_B_MAPPING, encoding="utf-8")
    settings = write_config(tmp_path / "nasindex.toml", {"b": {
        "type": "firebird-jp2", "root": str(share), "database": str(tmp_path / "VENDOR_B.FDB"),
        "mapping": str(tmp_path / "b.toml")}})

    summary = run_nas(settings, "b", RunKind.FULL)

    assert (summary.status, summary.indexed, summary.failed) == ("succeeded", 1, 11)
    reasons = dict(dump(settings)["errors"])
    expected = {
        "2#file-missing": "file missing",
        "3": "unreadable: Is a directory",
        "4": "not JPEG 2000",
        "5": "broken JP2 file",
        "6": f"file size {len(GOOD)} disagrees with the database ({len(GOOD) + 1})",
        "7": "image rows 32 in the file header disagree with the database (64)",
        "8": "NULL in required path column(s) image.DATEI",
        "9": "duplicate key: image key occurs in 2 joined rows",
        "10": "no series row for this image",
        "11": "NULL in required column patient.PATNR",
        "null-key:F/nullkey.jp2": "NULL in required column image.BILD_ID",
    }
    assert set(reasons) == set(expected)
    for key, start in expected.items():
        assert reasons[key].startswith(start), (key, reasons[key])
    assert not any("Nobody" in r or "Doe" in r for r in reasons.values())  # no PHI

    again = run_nas(settings, "b", RunKind.INCREMENTAL)  # failures wait for their retry time
    assert (again.status, again.indexed, again.failed) == ("succeeded", 0, 0)


def _patch_ods(path: Path, major: int) -> None:
    with open(path, "r+b") as f:  # header page: hdr_ods_version at byte 18
        f.seek(18)
        f.write(struct.pack("<H", 0x8000 | major))


def test_connection_failures_explain_and_change_nothing(tmp_path: Path, firebird_server,
                                                       server_password, monkeypatch) -> None:
    dsn = firebird_server.dsn("failures.fdb")
    nas = make_reference_nas(tmp_path / "share", dsn, patients=2, slices=2,
                             password=server_password, default_charset="UTF8",
                             name_charset="UTF8")
    nas.con.close()
    good = {"type": "firebird-jp2", "root": str(nas.root), "database": dsn,
            "password_env": PASSWORD_ENV}
    config = tmp_path / "nasindex.toml"
    settings = write_config(config, {"pacs": good})
    run_nas(settings, "pacs", RunKind.FULL)
    before = dump(settings)

    embedded = tmp_path / "ODS13.FDB"
    make_reference_nas(tmp_path / "other", str(embedded), patients=1, slices=1).con.close()
    _patch_ods(embedded, 13)
    closed_port = firebird_server.port + 1 if firebird_server.port < 65000 else 1
    empty = tmp_path / "unmounted"
    empty.mkdir()
    cases = [
        ({"password_env": "NASINDEX_WRONG_PW"}, "refused user 'SYSDBA'"),
        ({"database": f"127.0.0.1/{closed_port}:{firebird_server.data / 'failures.fdb'}"},
         "cannot reach the Firebird server"),
        ({"database": firebird_server.dsn("no_such.fdb")}, "does not exist"),
        ({"database": str(embedded)}, "unsupported on-disk structure (file has ODS 13"),
        ({"password_env": "NASINDEX_UNSET_PW"}, "is not set"),
        ({"root": str(empty)}, "is empty"),
    ]
    monkeypatch.setenv("NASINDEX_WRONG_PW", "not-the-password")
    monkeypatch.delenv("NASINDEX_UNSET_PW", raising=False)
    for change, cause in cases:
        broken = write_config(config, {"pacs": {**good, **change}})
        with pytest.raises(NasUnavailable) as err:
            run_nas(broken, "pacs", RunKind.INCREMENTAL)
        message = str(err.value)
        assert "'pacs'" in message and cause in message, message
        assert server_password not in message and "not-the-password" not in message
        assert dump(settings) == before, change
    shutil.rmtree(empty)
