"""Against a Firebird server on 127.0.0.1 over TCP: another vendor's schema indexed by a
mapping alone; incremental sync on a live database; tombstones; snapshot reads."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import fb_support as fb
import numpy as np
from sqlalchemy import select
from typer.testing import CliRunner

from nasindex.cli import app
from nasindex.index.db import get_engine
from nasindex.index.models import Instance, RunKind
from nasindex_firebird_jp2.demo import encode
from support import run_nas


def test_other_vendor_schema_indexed_by_mapping_alone(tmp_path: Path, firebird_server,
                                                       server_password) -> None:
    share = tmp_path / "share"
    con = fb.make_vendor_b(firebird_server.dsn("vendor_b.fdb"), share, server_password)
    pixels = np.array([[0, 100], [4000, 65535]], dtype=np.uint16).repeat(8, 0).repeat(8, 1)
    data = encode(pixels, "j2k")
    cur = con.cursor()
    cur.execute("INSERT INTO PATIENTEN VALUES (10, 'B-0001', 'Søndergaard^Åse', "
                "'19711203', 'F')")
    cur.execute("INSERT INTO PATIENTEN VALUES (11, 'B-0002', 'Dubois^Chloé', '19800101', 'F')")
    for study, pid in ((100, 10), (101, 11)):
        cur.execute("INSERT INTO UNTERSUCHUNG VALUES (?, ?, '20250102', 'MR KNIE', ?)",
                    (study, pid, f"ACC{study}"))
        cur.execute("INSERT INTO SERIE VALUES (?, ?, ?, 1, 'MR')",
                    (study * 10, study, f"1.2.3.{study}.1"))
        for n in (1, 2):
            folder = f"{2025}\\{study}"
            (share / "2025" / str(study)).mkdir(parents=True, exist_ok=True)
            (share / "2025" / str(study) / f"B{n}.j2k").write_bytes(data)
            cur.execute("INSERT INTO BILD (BILD_ID, SERIE_ID, ORDNER, DATEI, NR, GEAENDERT) "
                        "VALUES (?, ?, ?, ?, ?, CURRENT_TIMESTAMP)",
                        (study * 100 + n, study * 10, f"D:\\Archiv\\{folder}", f"B{n}.j2k", n))
    con.commit()
    con.close()
    (tmp_path / "vendor_b.toml").write_text(fb.VENDOR_B_MAPPING, encoding="utf-8")
    config = tmp_path / "nasindex.toml"
    settings = fb.write_config(config, {"pacs_b": {
        "type": "firebird-jp2", "root": str(share), "database": firebird_server.dsn(
            "vendor_b.fdb"), "password_env": fb.PASSWORD_ENV,
        "mapping": str(tmp_path / "vendor_b.toml")}})

    check = CliRunner().invoke(app, ["--config", str(config), "firebird", "check", "pacs_b"])
    assert check.exit_code == 0 and "fits its database" in check.output
    summary = run_nas(settings, "pacs_b", RunKind.FULL)
    assert (summary.status, summary.indexed, summary.failed) == ("succeeded", 4, 0)

    found = CliRunner().invoke(app, ["--config", str(config), "search", "sondergaard ase",
                                     "--json"])
    hits = json.loads(found.output)
    assert [(h["patient_id"], h["patient_name"], h["birth_date"]) for h in hits] == [
        ("B-0001", "Søndergaard^Åse", "19711203")]
    study = hits[0]["studies"][0]
    assert (study["date"], study["accession"], study["instance_count"]) == (
        "20250102", "ACC100", 2)
    assert study["study_uid"].startswith("2.25.")  # the vendor stores none: derived
    engine = get_engine(settings.index.url)
    with engine.connect() as conn:
        paths = sorted(conn.scalars(select(Instance.rel_path)))
    assert paths[0] == "2025/100/B1.j2k"  # prefix stripped, backslashes turned around


def _ref_config(tmp_path: Path, nas, dsn: str, reconcile_minutes: float) -> object:
    return fb.write_config(tmp_path / "nasindex.toml", {"pacs": {
        "type": "firebird-jp2", "root": str(nas.root), "database": dsn,
        "password_env": fb.PASSWORD_ENV, "reconcile_minutes": reconcile_minutes}})


def _add_image(cur, nas, key: int, series_key: int, folder: Path, stamp: datetime) -> None:
    source = next(folder.glob("*.jp2"))
    shutil.copyfile(source, folder / f"NEW{key}.jp2")
    cur.execute("INSERT INTO IMAGE VALUES (?, ?, NULL, ?, ?, ?, 32, 32, ?)",
                (key, series_key, key, f"NEW{key}.jp2", source.stat().st_size, stamp))


def _keys(settings, missing: bool = False) -> set[str]:
    with get_engine(settings.index.url).connect() as conn:
        q = select(Instance.item_key).where(Instance.missing_since.is_not(None) if missing
                                            else Instance.missing_since.is_(None))
        return set(conn.scalars(q))


def test_incremental_sync_finds_exactly_the_new_rows(tmp_path: Path, firebird_server,
                                                     server_password) -> None:
    dsn = firebird_server.dsn("incremental.fdb")
    nas = fb.make_reference_nas(tmp_path / "share", dsn, patients=2, slices=3,
                             password=server_password, default_charset="UTF8",
                             name_charset="UTF8")
    settings = _ref_config(tmp_path, nas, dsn, reconcile_minutes=60)
    first = run_nas(settings, "pacs", RunKind.INCREMENTAL)  # no cursor yet: lists every row
    assert first.new == nas.images
    con = nas.con
    cur = con.cursor()
    cur.execute("SELECT MAX(MODIFIED_AT), MIN(SERIES_KEY) FROM IMAGE")
    newest, series_key = cur.fetchone()
    cur.execute("SELECT STORAGE_DIR FROM SERIES WHERE SERIES_KEY = ?", (series_key,))
    folder = nas.root / cur.fetchone()[0].replace("\\", "/")
    _add_image(cur, nas, 9001, series_key, folder, newest + timedelta(seconds=5))
    # Committed late, with a stamp older than the newest row seen: inside the overlap.
    _add_image(cur, nas, 9002, series_key, folder, newest - timedelta(seconds=120))
    # Far older than the overlap window: only a reconciliation finds it.
    _add_image(cur, nas, 9003, series_key, folder, newest - timedelta(hours=2))
    cur.execute("UPDATE IMAGE SET IMAGE_NO = 77, MODIFIED_AT = ? WHERE IMAGE_KEY = 1",
                (newest + timedelta(seconds=6),))
    con.commit()
    # The PACS is writing at this very moment: uncommitted rows are not seen.
    writer = con.trans()
    writer.begin()
    _add_image(writer.cursor(), nas, 9004, series_key, folder, newest + timedelta(seconds=7))

    second = run_nas(settings, "pacs", RunKind.INCREMENTAL)
    assert (second.new, second.changed, second.missing) == (2, 1, 0)
    assert {"9001", "9002"} <= _keys(settings) and not {"9003", "9004"} & _keys(settings)

    writer.commit()
    third = run_nas(settings, "pacs", RunKind.INCREMENTAL)
    assert (third.new, third.changed) == (1, 0) and "9004" in _keys(settings)

    reconcile = run_nas(settings, "pacs", RunKind.FULL)
    assert reconcile.new == 1 and "9003" in _keys(settings)
    con.close()


def test_reconciliation_tombstones_deleted_rows_and_rereads_replaced_files(
        tmp_path: Path, firebird_server, server_password) -> None:
    dsn = firebird_server.dsn("tombstones.fdb")
    nas = fb.make_reference_nas(tmp_path / "share", dsn, patients=3, slices=4,
                             password=server_password, default_charset="UTF8",
                             name_charset="UTF8")
    settings = _ref_config(tmp_path, nas, dsn, reconcile_minutes=0)  # reconcile every run
    run_nas(settings, "pacs", RunKind.INCREMENTAL)
    cur = nas.con.cursor()
    cur.execute("SELECT FIRST 2 I.IMAGE_KEY, S.STORAGE_DIR, I.FILE_NAME FROM IMAGE I "
                "JOIN SERIES S ON S.SERIES_KEY = I.SERIES_KEY ORDER BY I.IMAGE_KEY DESC")
    gone = cur.fetchall()
    for key, folder, name in gone:
        cur.execute("DELETE FROM IMAGE WHERE IMAGE_KEY = ?", (key,))
        (nas.root / folder.replace("\\", "/") / name).unlink()
    nas.con.commit()
    # A file replaced on the share, its row untouched (same size, new content and mtime).
    cur.execute("SELECT S.STORAGE_DIR, I.FILE_NAME FROM IMAGE I JOIN SERIES S ON "
                "S.SERIES_KEY = I.SERIES_KEY WHERE I.IMAGE_KEY = 1")
    folder, name = cur.fetchone()
    replaced = nas.root / folder.replace("\\", "/") / name
    replaced.write_bytes(replaced.read_bytes())
    # A file gone from the share while its row stays.
    cur.execute("SELECT S.STORAGE_DIR, I.FILE_NAME FROM IMAGE I JOIN SERIES S ON "
                "S.SERIES_KEY = I.SERIES_KEY WHERE I.IMAGE_KEY = 2")
    folder, name = cur.fetchone()
    vanished = nas.root / folder.replace("\\", "/") / name
    kept = vanished.read_bytes(), vanished.stat().st_mtime_ns
    vanished.unlink()

    summary = run_nas(settings, "pacs", RunKind.INCREMENTAL)

    # missing: 2 rows + 1 file; changed: the replaced file; failed: the error item (new
    # to the index, but not committed: new counts only what a run committed)
    assert (summary.missing, summary.changed, summary.new, summary.failed) == (3, 1, 0, 1)
    assert _keys(settings, missing=True) == {str(k) for k, _, _ in gone} | {"2"}
    assert len(_keys(settings)) == nas.images - 3
    assert fb.dump(settings)["errors"] == [("2#file-missing", "file missing")]

    vanished.write_bytes(kept[0])  # the share comes back
    os.utime(vanished, ns=(kept[1], kept[1]))
    back = run_nas(settings, "pacs", RunKind.INCREMENTAL)
    assert (back.revived, back.missing, back.failed) == (1, 0, 0)
    assert fb.dump(settings)["errors"] == [] and "2" in _keys(settings)
    nas.con.close()
