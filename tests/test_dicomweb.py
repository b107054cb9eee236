"""DICOMweb as a viewer uses it: ``dicomweb-client`` against ``nasindex serve`` (real
uvicorn) over the CLI's demo (a DICOM-folder NAS ``ct`` and two Firebird PACS with JPEG
2000 files), and the same QIDO-RS queries against a real Orthanc holding the same
instances (its DICOMweb plugin): the same UIDs and the same values."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from api_support import ApiServer
from dicomweb_client.api import DICOMwebClient
from orthanc import Orthanc
from PIL import Image

from nasindex.config import load_settings
from nasindex.index.db import get_engine

PN, NUMBERS = "PN", {"IS", "US", "UL"}
# What Orthanc returns and nasindex does not, on purpose (docs/dicomweb.md, conformance):
NOT_INDEXED = {
    "00080005",  # Specific Character Set: DICOM JSON is UTF-8 whatever the files said
    "00080090",  # Referring Physician's Name: not in the index
    "00080201",  # Timezone Offset From UTC: not in the index
    "00200010",  # Study ID: not in the index
    "00081190",  # Retrieve URL: each server's own address
}


@pytest.fixture(scope="module")
def ours(api_demo: ApiServer) -> DICOMwebClient:
    return DICOMwebClient(url=f"{api_demo.url}/dicomweb")


@pytest.fixture(scope="module")
def reference(orthanc: Orthanc, ours: DICOMwebClient, cli_demo: Path) -> DICOMwebClient:
    """Orthanc holding every instance nasindex serves: the CT files as stored, and the
    Part 10 files nasindex makes of the PACS's JPEG 2000 files (retrieved through it)."""
    if not orthanc.loaded:
        ct = Path(load_settings(cli_demo / "nasindex.toml").nas["ct"].root)
        files = [p.read_bytes() for p in sorted(ct.rglob("*.dcm"))]
        for study in ours.search_for_studies():
            uid = study["0020000D"]["Value"][0]
            files += [_part10(ds) for ds in ours.retrieve_study(uid)
                      if ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"]
        orthanc.load(files)
        orthanc.loaded = True
    return DICOMwebClient(url=orthanc.dicomweb)


def _part10(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _values(answer: list[dict], uid_tag: str) -> dict[str, dict]:
    """Each result keyed by its UID, values normalised (PN as its alphabetic group,
    numbers as int, an absent Value as None) and what nasindex leaves out on purpose
    removed."""
    out = {}
    for item in answer:
        row = {}
        for tag, element in item.items():
            if tag in NOT_INDEXED:
                continue
            value = element.get("Value")
            if value and element["vr"] == PN:
                value = [v.get("Alphabetic") for v in value]
            elif value and element["vr"] in NUMBERS:
                value = [int(v) for v in value]
            row[tag] = value
        out[item[uid_tag]["Value"][0]] = row
    return out


def _demo_values(ours: DICOMwebClient) -> dict[str, str]:
    """Real values of the demo to query for (ASCII: see the %-escape rule below)."""
    studies = ours.search_for_studies(search_filters={"PatientID": "PAT00001"})
    first = studies[0]
    series = ours.search_for_series(first["0020000D"]["Value"][0])[0]
    instance = ours.search_for_instances(first["0020000D"]["Value"][0],
                                         series["0020000E"]["Value"][0])[0]
    day = first["00080020"]["Value"][0]
    return {"study": first["0020000D"]["Value"][0],
            "study2": studies[-1]["0020000D"]["Value"][0],
            "series": series["0020000E"]["Value"][0],
            "sop": instance["00080018"]["Value"][0],
            "day": day, "accession": first["00080050"]["Value"][0],
            "family": first["00100010"]["Value"][0]["Alphabetic"].split("^")[0]}


# (resource, query) pairs with {placeholders} from _demo_values; every supported key.
STANDARD_QUERIES = [
    ("studies", ""),
    ("studies", "PatientID=PAT00001"),
    ("studies", "PatientID=PAT0000?"),
    ("studies", "PatientName=g*"),
    ("studies", "PatientName=*a*"),
    ("studies", "PatientName=NGUYEN*"),
    ("studies", "StudyDate={day}"),
    ("studies", "StudyDate=20250101-"),
    ("studies", "StudyDate=-20250630"),
    ("studies", "StudyDate=20240101-20251231&ModalitiesInStudy=CT"),
    ("studies", "AccessionNumber={accession}"),
    ("studies", "AccessionNumber=A1*"),
    ("studies", "StudyInstanceUID={study},{study2}"),
    ("studies", "PatientBirthDate=19000101-19800101"),
    ("studies", "PatientSex=F"),
    ("studies", "00100020=PAT00002"),
    ("studies", "includefield=00081030&PatientID=PAT00003"),
    ("studies/{study}/series", ""),
    ("series", "Modality=CT"),
    ("series", "SeriesInstanceUID={series}"),
    ("series", "SeriesNumber=1&PatientID=PAT00001"),
    ("studies/{study}/series/{series}/instances", ""),
    ("instances", "SOPInstanceUID={sop}"),
    ("instances", "InstanceNumber=1&PatientID=PAT00002"),
    ("instances", "SOPClassUID=1.2.840.10008.5.1.4.1.1.7&PatientID=PAT00001"),
]
UID_OF = {"studies": "0020000D", "series": "0020000E", "instances": "00080018"}


@pytest.mark.parametrize(("resource", "query"), STANDARD_QUERIES)
def test_standard_queries_answer_as_orthanc_does(ours, reference, orthanc, resource, query):
    """Same UIDs, same values of every attribute both return. Rules where they differ on
    purpose: NOT_INDEXED; and Orthanc 1.10 does not decode %-escapes in query values, so
    it is asked with the raw characters (``*``, ``?``, ``\\``) while dicomweb-client
    escapes them for nasindex, which decodes them as HTTP says."""
    values = _demo_values(ours)
    resource, query = resource.format(**values), query.format(**values)
    params = [tuple(kv.split("=", 1)) for kv in query.split("&") if kv]
    level = resource.rsplit("/", 1)[-1]
    filters = {k: v for k, v in params if k != "includefield"}
    fields = [v for k, v in params if k == "includefield"] or None
    parts = resource.split("/")
    if level == "studies":
        mine = ours.search_for_studies(search_filters=filters, fields=fields)
    elif level == "series":
        mine = ours.search_for_series(parts[1] if len(parts) > 1 else None,
                                      search_filters=filters, fields=fields)
    else:
        mine = ours.search_for_instances(parts[1] if len(parts) > 1 else None,
                                         parts[3] if len(parts) > 3 else None,
                                         search_filters=filters, fields=fields)
    with httpx.Client(timeout=30) as http:
        answer = http.get(f"{orthanc.dicomweb}/{resource}" + (f"?{query}" if query else ""))
    answer.raise_for_status()
    theirs = _values(answer.json(), UID_OF[level])
    mine_ = _values(mine, UID_OF[level])
    assert mine_, "a query of the comparison must find something"
    assert set(mine_) == set(theirs)
    for uid, row in mine_.items():
        assert {t: v for t, v in theirs[uid].items() if t in row} == row, uid
        assert set(theirs[uid]) - set(row) == set(), "an attribute Orthanc returns is missing"


def test_fuzzy_names_follow_the_projects_rules(ours):
    """fuzzymatching=true: names in any order, case and accents ignored, typos tolerated
    (Orthanc ignores the parameter: no comparison)."""
    standard = ours.search_for_studies(search_filters={"PatientName": "MULLER*"})
    assert standard == []  # the stored name is MÜLLER: accents count in standard matching
    for typed in ("muller", "mueller", "MÜLLER"):  # PAT90001: MÜLLER^JÖRG, on pacs2 only
        found = ours.search_for_studies(search_filters={"PatientName": typed},
                                        fuzzymatching=True)
        assert {s["00100020"]["Value"][0] for s in found} == {"PAT00001", "PAT90001"}, typed
    given = ours.search_for_studies(search_filters={"PatientID": "PAT00001"})[0][
        "00100010"]["Value"][0]["Alphabetic"].split("^")[1]
    reversed_ = ours.search_for_studies(search_filters={"PatientName": f"{given} muller"},
                                        fuzzymatching=True)
    assert {s["00100020"]["Value"][0] for s in reversed_} == {"PAT00001"}


def _study_on(cli_demo: Path, nas: str) -> str:
    from sqlalchemy import select

    from nasindex.index.models import Nas, Study

    settings = load_settings(cli_demo / "nasindex.toml")
    with get_engine(settings.index.url).connect() as conn:
        return conn.scalar(select(Study.study_uid).join(Nas, Nas.id == Study.nas_id)
                           .where(Nas.name == nas).order_by(Study.study_uid).limit(1))


@pytest.mark.parametrize("nas", ["ct", "pacs2", "pacs3"])
def test_a_viewer_retrieves_a_study_its_metadata_and_a_rendered_frame(ours, cli_demo, nas):
    settings = load_settings(cli_demo / "nasindex.toml")
    study = _study_on(cli_demo, nas)
    found = ours.search_for_instances(study)
    retrieved = ours.retrieve_study(study)
    assert {d.SOPInstanceUID for d in retrieved} == {i["00080018"]["Value"][0] for i in found}
    metadata = ours.retrieve_study_metadata(study)
    assert {m["00080018"]["Value"][0] for m in metadata} == {d.SOPInstanceUID for d in retrieved}
    files = {f["sop_instance_uid"]: Path(f["path"]) for f in _images(cli_demo, nas)}
    for ds in retrieved:
        pixels = ds.pixel_array  # pydicom decodes every instance
        assert pixels.shape == (ds.Rows, ds.Columns)
        stored = files[ds.SOPInstanceUID]
        if nas == "ct":
            assert stored.read_bytes()[132:] in _part10(ds)  # as stored
        else:
            assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
            with Image.open(stored) as im:
                assert np.array_equal(pixels, np.asarray(im))  # bit-exact
    ds = retrieved[0]
    jpeg = ours.retrieve_instance_frames_rendered(study, ds.SeriesInstanceUID,
                                                  ds.SOPInstanceUID, [1])
    with Image.open(io.BytesIO(jpeg)) as im:
        assert im.format == "JPEG" and max(im.size) == max(ds.Rows, ds.Columns)
        assert np.asarray(im).std() > 10  # an image, not a blank
    raw = ours.retrieve_instance_frames(study, ds.SeriesInstanceUID, ds.SOPInstanceUID, [1])
    assert raw[0] == ds.pixel_array.astype("<u2").tobytes()
    del settings


def _images(cli_demo: Path, nas: str) -> list[dict]:
    from nasindex.access.guard import Access
    from nasindex.access.principal import local_principal

    settings = load_settings(cli_demo / "nasindex.toml")
    access = Access(settings, get_engine(settings.index.url))
    people = {r["patient_id"] for r in _all_patients(access, nas)}
    return [f for pid in people for f in access.images(local_principal(), nas, pid)]


def _all_patients(access, nas: str) -> list[dict]:
    from nasindex.access.principal import local_principal
    from nasindex.search import SearchQuery

    result = access.search(local_principal(), SearchQuery(nas=[nas], limit=500))
    return [r.as_dict() for r in result.patients]


def test_http_errors_name_the_cause(api_demo: ApiServer, cli_demo):
    base = f"{api_demo.url}/dicomweb"
    with httpx.Client(base_url=base, timeout=30) as http:
        unknown = http.get("/studies/1.2.3.4.5.6.7.8")
        assert unknown.status_code == 404 and "not in the index" in unknown.text
        bad = http.get("/studies", params={"StudyDate": "2024-01-01"})
        assert bad.status_code == 400 and "StudyDate" in bad.text
        nonsense = http.get("/studies", params={"NotAKeyword": "x"})
        assert nonsense.status_code == 400 and "NotAKeyword" in nonsense.text
        ignored = http.get("/studies", params={"ReferringPhysicianName": "X*"})
        assert ignored.status_code == 200
        assert "ReferringPhysicianName" in ignored.headers["warning"]
        jp2 = _study_on(cli_demo, "pacs2")
        transcode = http.get(f"/studies/{jp2}", headers={
            "Accept": 'multipart/related; type="application/dicom"; '
                      "transfer-syntax=1.2.840.10008.1.2.1"})
        assert transcode.status_code == 406 and "1.2.840.10008.1.2.4.90" in transcode.text
