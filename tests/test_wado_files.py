"""Serving indexed instances as DICOM (nasindex.wado) through the access layer, on the
CLI's demo (a DICOM-folder NAS and two Firebird PACS with JP2 and J2K files): DICOM
files byte for byte; JPEG 2000 files as Part 10 files that pydicom decodes to exactly
the stored pixels; the copy chosen; tombstones and missing files refused with a reason."""

from __future__ import annotations

import io
import os
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from sqlalchemy import select

from nasindex.access.guard import Access
from nasindex.access.principal import local_principal
from nasindex.config import load_settings
from nasindex.demo import DemoPatient, DemoSeries, DemoStudy
from nasindex.errors import NotFound
from nasindex.index.db import get_engine, migrate
from nasindex.index.models import Instance, Nas, Series, Study
from nasindex.registry import nas_type
from nasindex.search.dicom import DicomQuery
from nasindex.wado import serve
from support import age, run_nas, write_config


@pytest.fixture(scope="module")
def demo(cli_demo: Path):
    settings = load_settings(cli_demo / "nasindex.toml")
    return settings, get_engine(settings.index.url), Access(settings,
                                                             get_engine(settings.index.url))


def _first_study(engine, nas: str) -> str:
    with engine.connect() as conn:
        return conn.scalar(select(Study.study_uid).join(Nas, Nas.id == Study.nas_id)
                           .where(Nas.name == nas).order_by(Study.study_uid).limit(1))


def _bytes(settings, engine, item) -> bytes:
    return b"".join(serve.part(settings, engine, item).chunks())


@pytest.mark.parametrize("nas", ["pacs2", "pacs3"])
def test_jpeg2000_files_become_dicom_with_the_stored_codestream(demo, nas):
    settings, engine, access = demo
    items = access.dicom_instances(local_principal(), _first_study(engine, nas))
    assert items and {i.nas for i in items} == {nas}
    for item in items:
        assert item.file_format == ("jp2" if nas == "pacs2" else "j2k")
        part = serve.part(settings, engine, item)
        data = b"".join(part.chunks())
        assert len(data) == part.size
        ds = pydicom.dcmread(io.BytesIO(data))
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
        assert (ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID) == (
            item.sop_instance_uid, item.study_uid, item.series_uid)
        assert (ds.PatientID, str(ds.PatientName)) == (item.patient_id, item.patient_name)
        stored = Path(settings.nas[nas].root) / item.rel_path
        with Image.open(stored) as im:
            expected = np.asarray(im)
        assert (ds.Rows, ds.Columns) == expected.shape
        assert (ds.BitsStored, ds.PixelRepresentation, ds.SamplesPerPixel) == (16, 0, 1)
        assert np.array_equal(ds.pixel_array, expected)  # bit-exact, never re-encoded
        codestream = serve.stored_codestream(settings, engine, item)
        assert codestream in data  # encapsulated as it is stored
        assert float(ds.RescaleIntercept) == -1024  # the NAS's configured rescale


def test_instance_searches_name_the_sop_class_each_is_served_as(demo):
    _settings, engine, access = demo
    me = local_principal()
    for nas, sop_class in (("ct", "1.2.840.10008.5.1.4.1.1.2"),  # CT Image, the file's own
                           ("pacs2", "1.2.840.10008.5.1.4.1.1.7"),  # Secondary Capture
                           ("pacs3", "1.2.840.10008.5.1.4.1.1.7")):
        found = access.dicom_query(me, DicomQuery("instance", study_uid=_first_study(
            engine, nas)))
        assert found.rows and {(r["SOPClassUID"], r["BitsAllocated"]) for r in found.rows} \
            == {(sop_class, 16)}
        same = access.dicom_query(me, DicomQuery("instance", {"SOPClassUID": sop_class},
                                                 study_uid=_first_study(engine, nas)))
        assert same.rows == found.rows


def test_dicom_files_are_served_as_stored_and_metadata_holds_the_header(demo):
    settings, engine, access = demo
    items = access.dicom_instances(local_principal(), _first_study(engine, "ct"))
    item = items[0]
    stored = (Path(settings.nas["ct"].root) / item.rel_path).read_bytes()
    assert _bytes(settings, engine, item) == stored
    meta = serve.metadata(settings, engine, item)
    assert meta["00080018"]["Value"] == [item.sop_instance_uid]
    assert "7FE00010" not in meta
    pixels = serve.frame(settings, engine, item, 1)
    ds = pydicom.dcmread(io.BytesIO(stored))
    assert pixels == ds.pixel_array.astype("<u2" if ds.PixelRepresentation == 0
                                           else "<i2").tobytes()
    with pytest.raises(NotFound, match="no frame 2"):
        serve.frame(settings, engine, item, 2)


def test_nothing_tombstoned_or_unknown_is_served(demo, tmp_path):
    settings, engine, access = demo
    me = local_principal()
    with pytest.raises(NotFound, match="not in the index"):
        access.dicom_instances(me, "1.2.3.4.5.6.7.8.9")
    study = _first_study(engine, "ct")
    item = access.dicom_instances(me, study)[0]
    # A file deleted since the last sync: refused with the reason, nothing half-sent.
    path = Path(settings.nas["ct"].root) / item.rel_path
    kept = tmp_path / "kept.dcm"
    path.rename(kept)
    try:
        with pytest.raises(NotFound, match="no longer on NAS 'ct'"):
            _bytes(settings, engine, item)
    finally:
        kept.rename(path)
    # Tombstoned in the index: not served, and the answer says since when.
    with engine.begin() as conn:
        pks = select(Instance.id).join(Series, Series.id == Instance.series_pk).join(
            Study, Study.id == Series.study_pk).where(Study.study_uid == study)
        before = conn.execute(select(Instance.id, Instance.missing_since)
                              .where(Instance.id.in_(pks))).all()
        conn.execute(Instance.__table__.update().where(Instance.id.in_(pks)).values(
            missing_since=datetime(2026, 1, 2, 3, 4, tzinfo=UTC)))
    try:
        with pytest.raises(NotFound, match="tombstoned since 2026-01-02 03:04"):
            access.dicom_instances(me, study)
    finally:
        with engine.begin() as conn:
            for pk, since in before:
                conn.execute(Instance.__table__.update().where(Instance.id == pk)
                             .values(missing_since=since))


def test_a_series_streams_one_chunk_at_a_time(tmp_path):
    """The retrieve path never holds a series, nor a whole file, in memory, and keeps
    one file open at a time: 40 slices of 512x512 (~21 MB) stream within ~2 MB."""
    root = tmp_path / "ct"
    series = DemoSeries("1.2.826.0.1.3680043.8.498.41.2", 1, "AXIAL", 40)
    study = DemoStudy("1.2.826.0.1.3680043.8.498.41.1", "20260101", "101500", "CT", "CT",
                      "A41", [series])
    nas_type("dicom-folder").create_demo("ct", root, [DemoPatient(
        "P41", "LONG^SERIES", "19600101", "F", [study])])
    age(root)
    settings = write_config(tmp_path / "nasindex.toml", {"ct": {"type": "dicom-folder",
                                                               "root": str(root)}})
    migrate(settings.index.url)
    run_nas(settings, "ct", "full")
    engine = get_engine(settings.index.url)
    items = Access(settings, engine).dicom_instances(local_principal(), study.uid)
    assert len(items) == 40
    fds = len(os.listdir("/proc/self/fd"))
    most_open, total, largest = 0, 0, 0
    tracemalloc.start()
    try:
        for item in items:
            for chunk in serve.part(settings, engine, item).chunks():
                total += len(chunk)
                largest = max(largest, len(chunk))
                most_open = max(most_open, len(os.listdir("/proc/self/fd")) - fds)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total > 20e6 and largest <= serve.CHUNK
    assert peak < 2.5e6, f"peak {peak / 1e6:.1f} MB while streaming {total / 1e6:.0f} MB"
    assert most_open <= 1
