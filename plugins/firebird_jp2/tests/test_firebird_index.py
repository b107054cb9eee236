"""Indexing a reference-schema database with the embedded engine, and searching it."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import fdb
import numpy as np
import pytest
from fb_support import dump, make_reference_nas, write_config
from PIL import Image
from typer.testing import CliRunner

from nasindex.cli import app
from nasindex.demo import DemoPatient, DemoSeries, DemoStudy
from nasindex.index.models import RunKind
from nasindex.registry import open_nas
from nasindex_firebird_jp2.connection import client_library
from nasindex_firebird_jp2.mapping import reference_file
from nasindex_firebird_jp2.rows import derived_uid
from support import run_nas

JOERG = DemoPatient("PAT77001", "MÜLLER^JÖRG", "19580412", "M", [
    DemoStudy("1.2.826.0.1.3680043.10.1104.7", "20251003", "101500", "CT THORAX", "CT",
              "B77001", [DemoSeries("1.2.826.0.1.3680043.10.1104.7.1", 1, "AXIAL", 2)])])


def cli(config: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["--config", str(config), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_full_index_in_worker_processes_and_latin1_search(tmp_path: Path) -> None:
    """240+ images: read in two worker processes (which never open the embedded
    database); a Latin-1 stored accented name is found by typing it plainly."""
    (tmp_path / "db").mkdir()
    nas = make_reference_nas(tmp_path / "share", str(tmp_path / "db" / "PACS.FDB"),
                             patients=8, slices=16, extra=[JOERG])
    nas.con.close()
    assert nas.images >= 200  # the engine's threshold for worker processes
    config = tmp_path / "nasindex.toml"
    settings = write_config(config, {"pacs": {
        "type": "firebird-jp2", "root": str(nas.root), "database": nas.database,
        "workers": 2, "rescale_intercept": -1024}})

    summary = run_nas(settings, "pacs", RunKind.FULL)

    assert (summary.status, summary.indexed, summary.failed) == ("succeeded", nas.images, 0)
    # Stored as Latin-1 bytes in an ISO8859_1 column (read raw, without transliteration).
    raw = fdb.connect(database=nas.database, user="SYSDBA", password="", charset="UTF8",
                      fb_library_name=client_library(None))
    cur = raw.cursor()
    cur.execute("SELECT CAST(PAT_NAME AS VARCHAR(160) CHARACTER SET OCTETS) FROM PATIENT "
                "WHERE PAT_ID = 'PAT77001'")
    assert cur.fetchone()[0] == "MÜLLER^JÖRG".encode("latin-1")
    cur.close()
    raw.close()

    hits = json.loads(cli(config, "search", "muller jorg", "--json"))
    assert [(h["nas"], h["patient_id"], h["patient_name"]) for h in hits] == [
        ("pacs", "PAT77001", "MÜLLER^JÖRG")]
    assert hits[0]["studies"][0]["instance_count"] == 2

    rows = json.loads(cli(config, "images", "--nas", "pacs", "--patient-id", "PAT77001",
                          "--json"))
    assert len(rows) == 2 and all(r["format"] == "jp2" for r in rows)


def test_records_headers_uids_and_preview(tmp_path: Path, embedded_nas) -> None:
    """Format, lossless flag and dimensions come from the JPEG 2000 header; a missing
    SOP Instance UID is derived deterministically; the preview is bit-exact."""
    cur = embedded_nas.con.cursor()
    cur.execute("UPDATE IMAGE SET SOP_UID = NULL WHERE IMAGE_KEY = 1")
    embedded_nas.con.commit()
    settings = write_config(tmp_path / "nasindex.toml", {"pacs": {
        "type": "firebird-jp2", "root": str(embedded_nas.root),
        "database": embedded_nas.database, "rescale_intercept": -1024}})
    nas = open_nas(settings.get_nas("pacs"))
    nas.check()
    items = {fp.key: fp for fp in nas.scan(None).items}
    records = {r.key: r for r in nas.read(list(items.values()))}

    assert len(records) == embedded_nas.images
    first = records["1"]
    assert first.sop_instance_uid == derived_uid("pacs", "image", "1")
    assert first.sop_instance_uid.startswith("2.25.")
    assert records["2"].sop_instance_uid.startswith("1.2.826.0.1.3680043")  # stored one
    assert (first.file_format, first.lossless, first.rows, first.columns) == (
        "jp2", True, 32, 32)
    assert first.patient_name and first.study_date and first.modality == "CT"
    assert "\\" not in first.rel_path and first.rel_path.endswith("IM00001.jp2")

    pixels = nas.open_image(first.rel_path)
    stored = np.asarray(Image.open(embedded_nas.root / first.rel_path))
    assert np.array_equal(pixels, stored.astype(np.float32) - 1024)
    assert pixels.min() < -500  # air in Hounsfield units


def test_rerun_is_idempotent_and_nothing_new_reads_nothing(tmp_path: Path,
                                                          embedded_nas) -> None:
    settings = write_config(tmp_path / "nasindex.toml", {"pacs": {
        "type": "firebird-jp2", "root": str(embedded_nas.root),
        "database": embedded_nas.database}})
    run_nas(settings, "pacs", RunKind.INCREMENTAL)
    before = dump(settings)
    again = run_nas(settings, "pacs", RunKind.INCREMENTAL)
    assert (again.new, again.changed, again.indexed, again.missing) == (0, 0, 0, 0)
    assert dump(settings) == before
    full = run_nas(settings, "pacs", RunKind.FULL)
    assert full.indexed == embedded_nas.images
    assert dump(settings) == before  # same UIDs, same rows: derived UIDs are stable


def test_rising_key_cursor_from_an_inline_mapping(tmp_path: Path, embedded_nas) -> None:
    """The mapping as a table in the NAS config; a rising-key cursor with an overlap
    finds a row committed late with a lower key, and only a reconciliation finds one
    older than the overlap."""
    mapping = tomllib.loads(reference_file("mapping.toml").read_text(encoding="utf-8"))
    mapping["cursor"] = {"column": "IMAGE_KEY", "kind": "key", "overlap": 5}
    settings = write_config(tmp_path / "nasindex.toml", {"pacs": {
        "type": "firebird-jp2", "root": str(embedded_nas.root),
        "database": embedded_nas.database, "mapping": mapping, "reconcile_minutes": 60}})
    top = embedded_nas.images  # keys run 1..images
    cur = embedded_nas.con.cursor()
    cur.execute("SELECT I.SERIES_KEY, S.STORAGE_DIR, I.FILE_NAME, I.FILE_SIZE FROM IMAGE I "
                "JOIN SERIES S ON S.SERIES_KEY = I.SERIES_KEY WHERE I.IMAGE_KEY = 1")
    series_key, folder, name, size = cur.fetchone()

    def add(key: int) -> None:
        cur.execute("INSERT INTO IMAGE VALUES (?, ?, NULL, ?, ?, ?, 32, 32, CURRENT_TIMESTAMP)",
                    (key, series_key, key, name, size))  # same file: fine for the index
        embedded_nas.con.commit()

    assert run_nas(settings, "pacs", RunKind.INCREMENTAL).new == top
    add(top + 10)
    assert run_nas(settings, "pacs", RunKind.INCREMENTAL).new == 1
    add(top + 7)  # committed late, inside the overlap below the highest key seen
    add(top + 2)  # older than the overlap
    embedded_nas.con.close()  # one process at a time on an embedded file
    window = run_nas(settings, "pacs", RunKind.INCREMENTAL)
    keys = {k for k, *_ in dump(settings)["instances"]}
    assert window.new == 1 and str(top + 7) in keys and str(top + 2) not in keys
    assert run_nas(settings, "pacs", RunKind.FULL).new == 1
    assert str(top + 2) in {k for k, *_ in dump(settings)["instances"]}


@pytest.mark.parametrize("charset", ["UTF8", "ISO8859_1"])
def test_connection_charset_keeps_accented_names(tmp_path: Path, embedded_nas,
                                                 charset: str) -> None:
    embedded_nas.con.close()
    settings = write_config(tmp_path / "nasindex.toml", {"pacs": {
        "type": "firebird-jp2", "root": str(embedded_nas.root),
        "database": embedded_nas.database, "charset": charset}})
    nas = open_nas(settings.get_nas("pacs"))
    names = {r.patient_name for r in nas.read(list(nas.scan(None).items))}
    assert names == {"MÜLLER^José", "GARCÍA^María", "NGUYEN^Ingrid"}
