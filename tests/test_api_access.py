"""The API with [auth]: every JSON and DICOMweb request passes the access layer as the
dashboard's do (token checked, role, NAS scope in the query, audit record first).
Real tokens: the session's OIDC provider issues them to service clients by the
client-credentials grant (tests/identity.py: viewer-all, viewer-pacs2, sync-robot,
stranger)."""

from __future__ import annotations

import sqlite3

import httpx
import pytest
from api_support import ApiServer
from dicomweb_client.api import DICOMwebClient
from identity import OidcProvider

J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"


@pytest.fixture(scope="module")
def tokens(oidc_provider: OidcProvider) -> dict[str, str]:
    return {c: oidc_provider.service_token(c)
            for c in ("viewer-all", "viewer-pacs2", "sync-robot", "stranger")}


def viewer(api: ApiServer, token: str) -> DICOMwebClient:
    return DICOMwebClient(url=f"{api.url}/dicomweb", headers={"Authorization":
                                                              f"Bearer {token}"})


def studies_by_nas(api: ApiServer) -> dict[str, set[str]]:
    """Study UIDs with a present file, per NAS, from the index itself."""
    with sqlite3.connect(api.settings.index.url.removeprefix("sqlite:///")) as conn:
        rows = conn.execute(
            "SELECT DISTINCT nas.name, study.study_uid FROM study JOIN nas ON nas.id = "
            "study.nas_id JOIN series ON series.study_pk = study.id JOIN instance ON "
            "instance.series_pk = series.id WHERE instance.missing_since IS NULL").fetchall()
    out: dict[str, set[str]] = {}
    for nas, uid in rows:
        out.setdefault(nas, set()).add(uid)
    return out


def trail(api: ApiServer, user: str) -> list[dict]:
    """The user's audit records, newest first."""
    with sqlite3.connect(api.settings.index.url.removeprefix("sqlite:///")) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM audit_event WHERE username = ? ORDER BY id DESC",
                            (user,)).fetchall()
    return [dict(r) for r in rows]


@pytest.mark.parametrize("path", ["/dicomweb/studies", "/api/v1/patients?q=muller",
                                  "/dicomweb/studies/1.2.3/metadata", "/api/v1/status"])
def test_without_a_token_every_data_route_is_a_401(api_login: ApiServer, path: str):
    answer = httpx.get(api_login.url + path, timeout=30)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.headers["content-type"] == "application/problem+json"
    assert "bearer access token" in answer.json()["detail"]


def test_a_forged_or_foreign_token_is_a_401_and_a_refused_login(api_login: ApiServer,
                                                               tokens: dict[str, str]):
    header, payload, _sig = tokens["viewer-all"].split(".")
    for bad in ("not-a-jwt", f"{header}.{payload}.AAAA"):
        answer = httpx.get(f"{api_login.url}/dicomweb/studies", timeout=30,
                           headers={"Authorization": f"Bearer {bad}"})
        assert answer.status_code == 401 and 'error="invalid_token"' in answer.headers[
            "www-authenticate"]
        assert bad not in answer.text
    refused = trail(api_login, "(invalid token)")
    assert refused and refused[0]["action"] == "login" and refused[0]["outcome"] == "denied"


def test_a_user_without_a_role_is_refused_and_recorded(api_login: ApiServer, tokens):
    answer = httpx.get(f"{api_login.url}/dicomweb/studies", timeout=30,
                       headers={"Authorization": f"Bearer {tokens['stranger']}"})
    assert answer.status_code == 403 and "clinician" in answer.json()["detail"]
    assert trail(api_login, "stranger")[0]["outcome"] == "denied"


def test_a_nas_scoped_token_never_sees_another_nas(api_login: ApiServer, tokens):
    on = studies_by_nas(api_login)
    everything = {s["0020000D"]["Value"][0]
                  for s in viewer(api_login, tokens["viewer-all"]).search_for_studies()}
    assert everything == set().union(*on.values())
    limited = viewer(api_login, tokens["viewer-pacs2"])
    seen = {s["0020000D"]["Value"][0] for s in limited.search_for_studies()}
    assert seen == on["pacs2"] and seen < everything
    by_name = limited.search_for_series(search_filters={"Modality": "CT"})
    assert {s["0020000D"]["Value"][0] for s in by_name} <= on["pacs2"]
    for study in seen:  # a study also on ct comes from the pacs2 copy only
        assert {ds.file_meta.TransferSyntaxUID for ds in limited.retrieve_study(study)} == {
            J2K_LOSSLESS}
    elsewhere = sorted((on["ct"] | on["pacs3"]) - on["pacs2"])
    assert elsewhere, "the demo has studies outside pacs2"
    headers = {"Authorization": f"Bearer {tokens['viewer-pacs2']}"}
    with httpx.Client(base_url=api_login.url, headers=headers, timeout=30) as http:
        for path in (f"/dicomweb/studies/{elsewhere[0]}", f"/dicomweb/studies/{elsewhere[0]}"
                     "/metadata", f"/dicomweb/studies/{elsewhere[0]}/series"):
            answer = http.get(path)
            assert answer.status_code in (404, 200), path
            assert answer.status_code == 404 or answer.json() == [], path
        # Asking for another NAS narrows to nothing (as on the dashboard).
        assert http.get("/api/v1/patients", params={"nas": "ct", "q": "muller"}).json() == []
        assert all(p["nas"] == "pacs2" for p in http.get(
            "/api/v1/patients", params={"q": "*a*"}).json())


def test_every_dicomweb_call_is_audited_as_the_caller(api_login: ApiServer, tokens):
    client = viewer(api_login, tokens["viewer-all"])
    found = client.search_for_studies(search_filters={"PatientID": "PAT00002"})
    uid = found[0]["0020000D"]["Value"][0]
    client.retrieve_study_metadata(uid)
    rows = trail(api_login, "viewer-all")
    assert [r["action"] for r in rows[:2]] == ["retrieve", "query"]
    retrieve, query = rows[:2]
    assert retrieve["study_uid"] == uid and retrieve["patient_id"] == "PAT00002"
    assert retrieve["door"] == "api" and retrieve["outcome"] == "success"
    assert "PAT00002" in query["query"] and query["results"] == len(found)


def test_only_an_admin_may_start_a_sync(api_login: ApiServer, tokens):
    def post(who: str, path: str) -> httpx.Response:
        return httpx.post(f"{api_login.url}/api/v1{path}", timeout=60,
                          headers={"Authorization": f"Bearer {tokens[who]}"})

    clinician = post("viewer-all", "/nas/ct/sync")
    assert clinician.status_code == 403 and "admin" in clinician.json()["detail"]
    assert (trail(api_login, "viewer-all")[0]["action"],
            trail(api_login, "viewer-all")[0]["outcome"]) == ("admin:sync", "denied")
    assert post("sync-robot", "/nas/ct/sync?kind=sideways").json()["parameter"] == "kind"
    down = post("sync-robot", "/nas/ct/sync?kind=full")
    assert down.status_code == 503 and "127.0.0.1:9" in down.json()["detail"]
    assert [(r["action"], r["outcome"]) for r in trail(api_login, "sync-robot")[:2]] == [
        ("admin:full", "failed"), ("admin:full", "success")]


def test_zz_a_caller_over_its_rate_is_a_429_with_retry_after(api_login: ApiServer, tokens):
    headers = {"Authorization": f"Bearer {tokens['sync-robot']}"}
    with httpx.Client(base_url=api_login.url, headers=headers, timeout=30) as http:
        answers = [http.get("/api/v1/status") for _ in range(41)]
    assert answers[0].status_code == 200
    limited = answers[-1]
    assert limited.status_code == 429, [a.status_code for a in answers]
    assert 0 < int(limited.headers["retry-after"]) <= 60
    assert limited.headers["content-type"] == "application/problem+json"
    # Another caller is not held up by this one.
    other = httpx.get(f"{api_login.url}/dicomweb/studies?limit=1", timeout=30,
                      headers={"Authorization": f"Bearer {tokens['viewer-all']}"})
    assert other.status_code == 200
