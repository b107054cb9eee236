"""Writes demo PACS devices: a real Firebird database with the reference schema and real
lossless 16-bit JPEG 2000 files. Also used by the tests and the benchmark."""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import fdb
import numpy as np
from PIL import Image
from pydicom.uid import generate_uid

from nasindex.plugin import DemoPatient, DemoSeries, DemoStudy, phantom_slice
from nasindex_firebird_jp2.connection import client_library
from nasindex_firebird_jp2.mapping import reference_file

HU_OFFSET = 1024  # stored = HU + 1024 (unsigned 16-bit), as CT scanners do
DB_DIR = "_database"
# A patient only this PACS knows, with a Latin-1 accented name.
EXTRA = DemoPatient("PAT90001", "MÜLLER^JÖRG", "19580412", "M", [
    DemoStudy("1.2.826.0.1.3680043.10.1104.1", "20251003", "101500", "CT THORAX", "CT",
              "B900011", [DemoSeries("1.2.826.0.1.3680043.10.1104.1.1", 1, "AXIAL 3mm", 6)])])


def create_database(database: str, user: str = "SYSDBA", password: str = "",
                    default_charset: str = "UTF8", fb_library: str | None = None
                    ) -> fdb.Connection:
    """Create an empty database (a local path, or host/port:path on a server); the
    connection talks UTF8 so any name can be sent and is transliterated by Firebird."""
    sql = (f"CREATE DATABASE '{database}' USER '{user}' PASSWORD '{password}' "
           f"PAGE_SIZE 8192 DEFAULT CHARACTER SET {default_charset}")
    library = client_library(fb_library)
    fdb.create_database(sql=sql, fb_library_name=library).close()
    # Reconnect: CREATE DATABASE leaves the connection without a character set.
    return fdb.connect(dsn=database, user=user, password=password, charset="UTF8",
                       fb_library_name=library)


def apply_ddl(con: fdb.Connection, ddl: str) -> None:
    """Run a script of ';'-separated statements (comments allowed)."""
    lines = [ln for ln in ddl.splitlines() if not ln.strip().startswith("--")]
    for statement in "\n".join(lines).split(";"):
        if statement.strip():
            con.execute_immediate(statement)
    con.commit()


def reference_ddl() -> str:
    return reference_file("schema.sql").read_text(encoding="utf-8")


def latin1_safe(name: str) -> str:
    """What a Latin-1 PACS stores for a name: accents it cannot hold are dropped."""
    return "".join(ch if ch.encode("latin-1", "ignore") else
                   unicodedata.normalize("NFKD", ch).encode("latin-1", "ignore").decode("latin-1")
                   for ch in name)


@cache
def encoded_slice(size: int, step: int, fmt: str) -> bytes:
    """A lossless 16-bit JPEG 2000 phantom slice (16 positions, cached)."""
    hu = phantom_slice(size, step / 15)
    return encode((hu.astype(np.int32) + HU_OFFSET).astype(np.uint16), fmt)


def encode(pixels: np.ndarray, fmt: str = "jp2") -> bytes:
    """Lossless (reversible wavelet) JPEG 2000 of 16-bit unsigned pixels; bit-exact."""
    im = Image.frombytes("I;16", (pixels.shape[1], pixels.shape[0]),
                         pixels.astype("<u2").tobytes())
    buf = io.BytesIO()
    im.save(buf, format="JPEG2000", irreversible=False, no_jp2=(fmt != "jp2"))
    return buf.getvalue()


@dataclass
class Keys:
    """Next free key per table, so several writes can share one database."""

    patient: int = 1
    study: int = 1
    series: int = 1
    image: int = 1


def write_patients(con: fdb.Connection, root: Path, patients: Sequence[DemoPatient],
                   fmt: str = "jp2", store_sop: bool = True, size: int | None = None,
                   keys: Keys | None = None, modified: datetime | None = None) -> int:
    """Insert ``patients`` into a reference-schema database and write their files under
    ``root``; returns the number of images. Images are ``size`` pixels square, else
    each series' own size."""
    keys = keys or Keys()
    stamp = modified or datetime(2026, 11, 1, 8, 0, 0)
    p_rows, st_rows, se_rows, im_rows = [], [], [], []
    for patient in patients:
        p_rows.append((keys.patient, patient.patient_id, latin1_safe(patient.name),
                       _date(patient.birth_date), patient.sex))
        for study in patient.studies:
            st_rows.append((keys.study, keys.patient, study.uid, _date(study.date),
                            _time(study.time), study.description, study.accession,
                            study.modality))
            for series in study.series:
                folder = f"{study.date[:4]}\\{study.date[4:6]}\\{study.accession}\\" \
                         f"S{series.number:03d}"  # Windows-style, as the PACS wrote it
                se_rows.append((keys.series, keys.study, series.uid, series.number,
                                study.modality, series.description, folder))
                target = root / folder.replace("\\", "/")
                target.mkdir(parents=True, exist_ok=True)
                side = size or series.size
                for i in range(series.slices):
                    data = encoded_slice(side, round(15 * i / max(series.slices - 1, 1)), fmt)
                    name = f"IM{i + 1:05d}.{fmt}"
                    (target / name).write_bytes(data)
                    im_rows.append((keys.image, keys.series,
                                    generate_uid() if store_sop else None, i + 1, name,
                                    len(data), side, side, stamp))
                    keys.image += 1
                    stamp += timedelta(seconds=30)  # images arrive over days
                keys.series += 1
            keys.study += 1
        keys.patient += 1
    cur = con.cursor()
    cur.executemany("INSERT INTO PATIENT VALUES (?, ?, ?, ?, ?)", p_rows)
    cur.executemany("INSERT INTO STUDY VALUES (?, ?, ?, ?, ?, ?, ?, ?)", st_rows)
    cur.executemany("INSERT INTO SERIES VALUES (?, ?, ?, ?, ?, ?, ?)", se_rows)
    cur.executemany("INSERT INTO IMAGE VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", im_rows)
    con.commit()
    return len(im_rows)


def write_demo_nas(nas_id: str, root: Path, patients: Sequence[DemoPatient],
                   first: bool) -> dict[str, Any]:
    """One demo PACS: pacs2-style (UTF8 database, JP2 files, SOP UIDs stored) for the
    first device, pacs3-style (Latin-1 database, raw .j2k codestreams, no SOP UIDs) else."""
    db_dir = root / DB_DIR
    db_dir.mkdir(parents=True, exist_ok=True)
    db_path = db_dir / "PACS.FDB"
    db_path.unlink(missing_ok=True)
    charset = "UTF8" if first else "ISO8859_1"
    con = create_database(str(db_path), default_charset=charset)
    try:
        apply_ddl(con, reference_ddl())
        people = [*patients, EXTRA] if first else list(patients)
        write_patients(con, root, people, fmt="jp2" if first else "j2k", store_sop=first)
    finally:
        con.close()
    return {"database": str(db_path), "user": "SYSDBA", "charset": charset,
            "mapping": "reference", "rescale_intercept": -HU_OFFSET}


def _date(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def _time(text: str) -> time:
    return time(int(text[:2]), int(text[2:4]), int(text[4:6]))
