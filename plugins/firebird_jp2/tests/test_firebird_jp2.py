"""JPEG 2000 headers (JP2, raw codestreams, DICOM), bit-exact previews with glymur and
with the Pillow fallback, and the `nasindex firebird inspect/check` commands."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pydicom.data
import pytest
from fb_support import write_config
from PIL import Image
from typer.testing import CliRunner

from nasindex.cli import app
from nasindex.errors import ConfigError
from nasindex.index.models import RunKind
from nasindex.registry import open_nas
from nasindex_firebird_jp2 import jp2
from nasindex_firebird_jp2.demo import encode
from nasindex_firebird_jp2.mapping import reference_file
from support import run_nas

DICOM_DIR = Path(pydicom.data.get_testdata_file("CT_small.dcm")).parent
PIXELS = (np.arange(48 * 40, dtype=np.uint32).reshape(48, 40) * 34).astype(np.uint16)


@pytest.mark.parametrize("fmt", ["jp2", "j2k"])
def test_lossless_header_and_bit_exact_decoding_both_ways(tmp_path: Path, fmt: str,
                                                          monkeypatch) -> None:
    path = tmp_path / f"x.{fmt}"
    path.write_bytes(encode(PIXELS, fmt))
    header = jp2.read_header(path)
    assert (header.file_format, header.rows, header.columns, header.bits, header.signed,
            header.lossless) == (fmt, 48, 40, 16, False, True)
    assert jp2.openjpeg_available()  # libopenjp2 is installed: glymur decodes
    assert np.array_equal(jp2.decode(path), PIXELS)
    monkeypatch.setattr(jp2, "openjpeg_available", lambda: False)  # Pillow's own OpenJPEG
    assert np.array_equal(jp2.decode(path), PIXELS)


def test_lossy_and_dicom_headers(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(PIXELS[:, :32].astype(np.uint8)).save(buf, "JPEG2000", irreversible=True,
                                                          quality_mode="rates",
                                                          quality_layers=[20])
    (tmp_path / "lossy.jp2").write_bytes(buf.getvalue())
    assert jp2.read_header(tmp_path / "lossy.jp2").lossless is False

    lossless = jp2.read_header(DICOM_DIR / "MR_small_jp2klossless.dcm")
    assert (lossless.file_format, lossless.transfer_syntax, lossless.lossless, lossless.rows) \
        == ("dicom", "1.2.840.10008.1.2.4.90", True, 64)
    assert lossless.sop_instance_uid
    with pytest.raises(jp2.NotJpeg2000, match="transfer syntax 1.2.840.10008.1.2.1"):
        jp2.read_header(DICOM_DIR / "CT_small.dcm")


def test_dicom_file_behind_a_row_and_its_own_sop_uid(tmp_path: Path, embedded_nas) -> None:
    cur = embedded_nas.con.cursor()
    cur.execute("SELECT S.STORAGE_DIR FROM SERIES S WHERE S.SERIES_KEY = 1")
    folder = embedded_nas.root / cur.fetchone()[0].replace("\\", "/")
    shutil.copyfile(DICOM_DIR / "MR_small_jp2klossless.dcm", folder / "MR.dcm")
    cur.execute("UPDATE IMAGE SET FILE_NAME = 'MR.dcm', SOP_UID = NULL, FILE_SIZE = NULL, "
                "IMG_ROWS = 64, IMG_COLS = 64 WHERE IMAGE_KEY = 1")
    embedded_nas.con.commit()
    settings = write_config(tmp_path / "nasindex.toml", {"pacs": {
        "type": "firebird-jp2", "root": str(embedded_nas.root),
        "database": embedded_nas.database}})
    nas = open_nas(settings.get_nas("pacs"))
    fp = next(f for f in nas.scan(None).items if f.key == "1")
    record = nas.read([fp])[0]
    expected = pydicom.dcmread(DICOM_DIR / "MR_small_jp2klossless.dcm")
    assert (record.file_format, record.lossless) == ("dicom", True)
    assert record.sop_instance_uid == expected.SOPInstanceUID
    assert np.array_equal(nas.open_image(fp.rel_path),
                          expected.pixel_array.astype(np.float32))


def test_inspect_and_check_commands(tmp_path: Path, embedded_nas) -> None:
    config = tmp_path / "nasindex.toml"
    mapping = reference_file("mapping.toml").read_text(encoding="utf-8")
    broken = mapping.replace('table = "PATIENT"', 'table = "PATIENTS"').replace(
        'description = "DESCRIPTION"\naccession', 'description = "DESCR"\naccession')
    (tmp_path / "broken.toml").write_text(broken, encoding="utf-8")
    write_config(config, {
        "good": {"type": "firebird-jp2", "root": str(embedded_nas.root),
                 "database": embedded_nas.database},
        "bad": {"type": "firebird-jp2", "root": str(embedded_nas.root),
                "database": embedded_nas.database, "mapping": str(tmp_path / "broken.toml")}})
    embedded_nas.con.close()  # the embedded engine lets one process open a file
    runner = CliRunner()

    shown = runner.invoke(app, ["--config", str(config), "firebird", "inspect", "good"])
    assert shown.exit_code == 0, shown.output
    assert f"IMAGE (table, {embedded_nas.images} rows)" in shown.output
    assert "PAT_NAME" in shown.output and "ISO8859_1" in shown.output

    ok = runner.invoke(app, ["--config", str(config), "firebird", "check", "good"])
    assert ok.exit_code == 0 and "fits its database" in ok.output
    bad = runner.invoke(app, ["--config", str(config), "firebird", "check", "bad"])
    assert bad.exit_code == 1
    assert "patient level: table PATIENTS: does not exist" in bad.output
    assert "study level: column 'DESCR' does not exist in table STUDY" in bad.output

    settings = write_config(config, {"bad": {
        "type": "firebird-jp2", "root": str(embedded_nas.root),
        "database": embedded_nas.database, "mapping": str(tmp_path / "broken.toml")}})
    with pytest.raises(ConfigError, match="DESCR"):
        run_nas(settings, "bad", RunKind.FULL)
