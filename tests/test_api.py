"""The JSON API as a program uses it: `nasindex serve` (real uvicorn) over the CLI's demo
index, httpx as the client. Without [auth] it is the loopback-only demo: every call acts
as the demo user and is in the audit trail as such. Login and roles: test_api_access.py.
"""

from __future__ import annotations

import getpass
import io
import json
import sqlite3
from pathlib import Path

import pytest
from api_support import ApiServer, serve_command
from PIL import Image

from nasindex import search
from nasindex.health import nas_status
from nasindex.index.db import get_engine
from support import CLI_ENV, run_cli

CT_PATIENT = ("ct", "PAT00001")


def cli_json(cli_demo: Path, *args: str):
    return json.loads(run_cli(*args, "--json", cwd=cli_demo).stdout)


def engine(api: ApiServer):
    return get_engine(api.settings.index.url)


def searched(api: ApiServer, **query) -> list[dict]:
    """What `nasindex search --json` prints for ``query`` (the same function, in process:
    test_search_answers_what_the_cli_answers_page_by_page runs the CLI itself)."""
    result = search.search(engine(api), search.SearchQuery(**query), scope=None)
    return [p.as_dict() for p in result.patients]


def test_health_needs_no_token_and_says_ready(api_demo: ApiServer):
    with api_demo.client() as http:
        answer = http.get("/health")
    assert answer.status_code == 200 and answer.json()["status"] == "ready"
    assert answer.headers["x-request-id"]


def test_search_answers_what_the_cli_answers_page_by_page(api_demo: ApiServer, cli_demo):
    whole = cli_json(cli_demo, "search", "--modality", "CT")
    people = sorted({r["person"] for r in whole})
    assert len(people) >= 3
    pages = []
    with api_demo.client() as http:
        url = "/patients?modality=CT&limit=1"
        while url:
            answer = http.get(url)
            assert answer.status_code == 200
            assert answer.headers["x-total-count"] == str(len(people))
            pages.append(answer.json())
            next_link = answer.links.get("next")
            url = next_link["url"] if next_link else None
            assert ("prev" in answer.links) == (len(pages) > 1)
    assert len(pages) == len(people)  # one person a page, records of a person together
    assert [r for page in pages for r in page] == whole  # the CLI's --json, the same order


def test_search_filters_combine_and_repeat(api_demo: ApiServer):
    with api_demo.client() as http:
        by_id = http.get("/patients", params={"patient_id": "PAT00001", "nas": "ct"}).json()
        both = http.get("/patients?q=PAT00001&nas=ct,pacs3").json()
        repeated = http.get("/patients?q=PAT00001&nas=ct&nas=pacs3").json()
    assert {(r["nas"], r["patient_id"]) for r in by_id} == {CT_PATIENT}
    assert both == repeated and {r["nas"] for r in both} <= {"ct", "pacs3"}
    born = by_id[0]["birth_date"]
    assert both == searched(api_demo, text="PAT00001", nas=["ct", "pacs3"])
    with api_demo.client() as http:
        hits = http.get("/patients", params={"born": born, "modality": "CT"}).json()
    assert CT_PATIENT in {(r["nas"], r["patient_id"]) for r in hits}


def test_a_patient_record_has_its_series_folders_and_linked_records(api_demo: ApiServer):
    with api_demo.client() as http:
        body = http.get("/patients/ct/PAT00001").json()
    found = [r for r in searched(api_demo, text="PAT00001") if r["nas"] == "ct"][0]
    same = ("nas", "patient_id", "patient_name", "birth_date", "sex", "linked_because")
    assert {k: body[k] for k in same} == {k: found[k] for k in same}
    study = body["studies"][0]
    assert study["folder"].startswith("\\\\nas1\\ct\\PAT00001\\")
    assert Path(study["host_folder"]).is_dir()
    assert sum(s["instances"] for s in study["series"]) == study["instance_count"]
    assert body["linked_records"] and body["linked_because"].startswith("Same Patient ID")
    assert {r["nas"] for r in body["linked_records"]} - {"ct"}


def test_a_patients_files_are_the_cli_images_json(api_demo: ApiServer):
    with api_demo.client() as http:
        rows = http.get("/patients/ct/PAT00001/images").json()
    assert rows == search.images(engine(api_demo), "ct", "PAT00001", scope=None)  # the CLI's


def _first_file(api: ApiServer, nas: str, patient_id: str) -> dict:
    with api.client() as http:
        return http.get(f"/patients/{nas}/{patient_id}/images").json()[0]


@pytest.mark.parametrize("nas", ["ct", "pacs2"])
def test_an_image_is_served_as_stored_with_ranges(api_demo: ApiServer, nas: str):
    row = _first_file(api_demo, nas, "PAT00001" if nas == "ct" else "PAT00002")
    stored = Path(row["path"]).read_bytes()
    url = f"/images/{nas}/{row['sop_instance_uid']}"
    with api_demo.client() as http:
        whole = http.get(url)
        part = http.get(url, headers={"Range": "bytes=128-131"})
        tail = http.get(url, headers={"Range": "bytes=-16"})
        multi = http.get(url, headers={"Range": "bytes=0-3,200-203"})
        past = http.get(url, headers={"Range": f"bytes={len(stored)}-"})
        bad = http.get(url, headers={"Range": "lines=1-2"})
    assert whole.status_code == 200 and whole.content == stored
    assert whole.headers["accept-ranges"] == "bytes"
    expected = "application/dicom" if nas == "ct" else ("image/jp2", "image/j2c")
    assert whole.headers["content-type"].startswith(expected)
    assert part.status_code == 206 and part.content == stored[128:132]
    assert part.headers["content-range"] == f"bytes 128-131/{len(stored)}"
    assert tail.status_code == 206 and tail.content == stored[-16:]
    assert multi.status_code == 206
    assert multi.headers["content-type"].startswith("multipart/byteranges")
    assert stored[0:4] in multi.content and stored[200:204] in multi.content
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(stored)}"
    assert past.headers["content-type"] == "application/problem+json"
    assert bad.status_code == 400 and bad.json()["parameter"] == "Range"


def test_an_image_is_rendered_as_jpeg_or_png_with_a_window(api_demo: ApiServer):
    row = _first_file(api_demo, *CT_PATIENT)
    url = f"/images/ct/{row['sop_instance_uid']}/rendered"
    with api_demo.client() as http:
        lung = http.get(url, params={"window": "lung", "size": 64})
        bone = http.get(url, params={"window": "bone", "size": 64, "format": "png"})
    assert lung.headers["content-type"] == "image/jpeg"
    assert bone.headers["content-type"] == "image/png"
    lung_img, bone_img = (Image.open(io.BytesIO(a.content)) for a in (lung, bone))
    assert lung_img.format == "JPEG" and bone_img.format == "PNG"
    assert max(lung_img.size) <= 64 and max(bone_img.size) <= 64
    assert lung_img.convert("L").tobytes() != bone_img.convert("L").tobytes()


def test_status_is_the_cli_status_json(api_demo: ApiServer):
    with api_demo.client() as http:
        assert http.get("/status").json() == nas_status(engine(api_demo), scope=None)


@pytest.mark.parametrize(("query", "parameter"), [
    ("limit=0", "limit"), ("limit=abc", "limit"), ("limit=501", "limit"),
    ("q=doe&offset=-1", "offset"), ("from=2024-13-01", "from"), ("to=yesterday", "to"),
    ("born=1970", "born"), ("patientid=PAT00001", "patientid"), ("q=*", "q"),
    ("q=" + "a" * 300, "q"), ("modality=" + ",".join(["CT"] * 40), "modality"),
])
def test_a_bad_parameter_is_a_400_naming_it(api_demo: ApiServer, query: str, parameter: str):
    with api_demo.client() as http:
        answer = http.get(f"/patients?{query}")
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["parameter"] == parameter and problem["status"] == 400
    assert f"'{parameter}'" in problem["detail"]


def test_bad_image_parameters_are_400s(api_demo: ApiServer):
    row = _first_file(api_demo, *CT_PATIENT)
    url = f"/images/ct/{row['sop_instance_uid']}/rendered"
    with api_demo.client() as http:
        for params, name in (({"window": "brain"}, "window"), ({"size": 5000}, "size"),
                             ({"format": "gif"}, "format")):
            answer = http.get(url, params=params)
            assert answer.status_code == 400 and answer.json()["parameter"] == name


def test_unknown_things_are_404s(api_demo: ApiServer):
    with api_demo.client() as http:
        for url in ("/patients/ct/NOBODY", "/patients/nowhere/PAT00001",
                    "/patients/ct/NOBODY/images", "/images/ct/1.2.3.4",
                    "/images/ct/1.2.3.4/rendered", "/no-such-endpoint"):
            answer = http.get(url)
            assert answer.status_code == 404, url
            assert answer.headers["content-type"] == "application/problem+json"
            assert "NOBODY" not in answer.text  # a Patient ID is not repeated back


def test_a_file_gone_is_404_and_a_nas_away_is_503_naming_it(api_demo: ApiServer):
    row = _first_file(api_demo, "pacs3", "PAT00001")
    url = f"/images/pacs3/{row['sop_instance_uid']}"
    path = Path(row["path"])
    root = Path(api_demo.settings.nas["pacs3"].root)
    aside = root.with_name("pacs3-unmounted")
    with api_demo.client() as http:
        path.rename(path.with_suffix(".moved"))
        try:
            gone = http.get(url)
        finally:
            path.with_suffix(".moved").rename(path)
        root.rename(aside)  # the share is not mounted
        try:
            away, drawn = http.get(url), http.get(url + "/rendered")
        finally:
            aside.rename(root)
        back = http.get(url)
    assert gone.status_code == 404 and "not on NAS 'pacs3' any more" in gone.json()["detail"]
    for answer in (away, drawn):
        assert answer.status_code == 503 and "NAS 'pacs3' cannot be reached" in answer.text
    assert back.status_code == 200


def test_the_openapi_description_is_at_api_docs(api_demo: ApiServer):
    with api_demo.client() as http:
        page = http.get(f"{api_demo.url}/api/docs")
        spec = http.get(f"{api_demo.url}/api/openapi.json").json()
    assert page.status_code == 200 and "swagger" in page.text.lower()
    assert {"/api/v1/patients", "/api/v1/patients/{nas}/{patient_id}",
            "/api/v1/patients/{nas}/{patient_id}/images", "/api/v1/images/{nas}/{key}",
            "/api/v1/images/{nas}/{key}/rendered", "/api/v1/status",
            "/api/v1/health"} <= set(spec["paths"])


def test_without_login_it_refuses_any_address_but_loopback(cli_demo):
    import subprocess

    proc = subprocess.run(serve_command(cli_demo / "nasindex.toml", "--host", "0.0.0.0",
                                        "--port", "9"),
                          env=CLI_ENV, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "refusing to serve patient data on 0.0.0.0 without login" in lines[0]
    assert "[auth]" in lines[0] and "--host 127.0.0.1" in lines[0]


def test_every_call_is_in_the_audit_trail_as_the_demo_user(api_demo: ApiServer):
    row = _first_file(api_demo, *CT_PATIENT)
    with api_demo.client() as http:
        http.get("/patients?q=muller")
        http.get("/patients/ct/PAT00001")
        http.get(f"/images/ct/{row['sop_instance_uid']}")
    trail = audit_rows(api_demo, 5)
    assert [r["action"] for r in trail][:3] == ["retrieve", "patient", "search"]
    for r in trail[:3]:
        assert r["user"] == f"{getpass.getuser()} (no login)"
        assert r["door"] == "api" and r["client"] == "127.0.0.1" and r["outcome"] == "success"
    assert trail[0]["patient_id"] == "PAT00001" and trail[0]["series_uid"] == row["series_uid"]
    assert json.loads(trail[2]["query"]) == {"text": "muller"}


def audit_rows(api: ApiServer, limit: int) -> list[dict]:
    """The newest audit records, read from the index as `nasindex audit` lists them."""
    db = api.settings.index.url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT username AS user, * FROM audit_event ORDER BY id DESC "
                            "LIMIT ?", (limit,)).fetchall()
    return [dict(r) for r in rows]


def test_zz_the_service_log_holds_no_patient_data_or_traceback(api_demo: ApiServer):
    """Runs after the tests above (names, IDs and dates went into URLs and errors)."""
    people = searched(api_demo, modalities=["CT"])
    log = api_demo.log_text()
    assert '"GET /api/v1/patients/{nas}/{patient_id}" 404' in log  # the log has lines
    for person in people:
        for value in (person["patient_name"], person["birth_date"], person["patient_id"],
                      *person["patient_name"].split("^")):
            assert value not in log, value
    assert "Traceback" not in log and "muller" not in log.lower()
