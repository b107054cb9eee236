"""The access layer every door passes: roles, NAS scopes applied in the queries, and the
audit record written before any data is returned (fail closed), on a real index."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from access_support import ONLY_CT, ONLY_CT2, SHARED, clinician, two_nas_index
from nasindex.access.audit import events
from nasindex.access.guard import Access
from nasindex.access.principal import ADMIN, Principal, claim_groups, roles_and_scope
from nasindex.config import AuthSettings
from nasindex.errors import AccessDenied, AuditUnavailable
from nasindex.index.db import get_engine
from nasindex.search import SearchQuery

AUTH = AuthSettings(server_metadata_url="http://idp/.well-known/openid-configuration",
                    client_id="nasindex", redirect_uri="http://127.0.0.1:8501/oauth2callback",
                    groups={"radiology": "clinician", "cardiology": "clinician",
                            "it": "admin"},
                    nas_scopes={"cardiology": ["ct2"]})


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return two_nas_index(tmp_path_factory.mktemp("access"))


@pytest.fixture
def access(index) -> Access:
    return Access(index, get_engine(index.index.url))


def trail(access: Access, **filters) -> list[dict]:
    return events(access.engine, scope=None, **filters)


def test_groups_grant_roles_and_widen_the_nas_scope():
    assert roles_and_scope(["radiology"], AUTH) == (frozenset({"clinician"}), None)
    assert roles_and_scope(["cardiology"], AUTH) == (frozenset({"clinician"}),
                                                     frozenset({"ct2"}))
    # one unlimited group is enough to see every NAS; groups without a role add nothing
    assert roles_and_scope(["cardiology", "radiology", "x"], AUTH)[1] is None
    assert roles_and_scope(["cardiology", "it"], AUTH) == (frozenset({"clinician", "admin"}),
                                                           None)
    assert roles_and_scope(["visitors"], AUTH) == (frozenset(), frozenset())
    assert claim_groups({"realm_access": {"roles": ["it"]}}, "realm_access.roles") == ["it"]
    assert claim_groups({"groups": "radiology"}, "groups") == ["radiology"]


def test_a_nas_scoped_user_never_sees_the_other_nas(access):
    dave = clinician("dave", scope=frozenset({"ct2"}))
    everyone = access.search(dave, SearchQuery(modalities=["CT"], limit=100))
    assert {p.nas for p in everyone.patients} == {"ct2"}
    assert everyone.total == len(SHARED + ONLY_CT2)
    only_ct = ONLY_CT[0].patient_id
    assert access.search(dave, SearchQuery(text=only_ct)).total == 0
    assert access.search(dave, SearchQuery(text=only_ct, nas=["ct"])).total == 0
    shared = access.search(dave, SearchQuery(text=SHARED[0].patient_id))
    assert [(p.nas, p.linked_because) for p in shared.patients] == [("ct2", None)]
    person = access.patient(dave, "ct2", SHARED[0].patient_id)
    assert [r.nas for r in person.records] == ["ct2"]  # the ct record is not linked in
    for look in (lambda: access.patient(dave, "ct", only_ct),
                 lambda: access.study_tree(dave, "ct", only_ct),
                 lambda: access.images(dave, "ct", only_ct)):
        with pytest.raises(AccessDenied, match="NAS ct is not among"):
            look()
    ct_series = access.study_tree(clinician(), "ct", only_ct)[0].series[0].series_uid
    with pytest.raises(AccessDenied):
        access.series_files(dave, "ct", ct_series)
    with pytest.raises(AccessDenied):  # a ct file asked for as if it were on ct2
        access.preview(dave, "ct2", ct_series, f"{only_ct}/x.dcm", "auto", 64)
    facets = access.facets(dave)
    assert facets["nas"] == ["ct2"] and facets["patients"] == len(SHARED + ONLY_CT2)
    assert [r["nas"] for r in access.health(dave)] == ["ct2"]
    assert {r["nas"] for r in access.runs(dave)} == {"ct2"}
    refused = trail(access, user="dave", patient_id=only_ct)
    assert {r["outcome"] for r in refused} == {"denied"} and len(refused) >= 3


def test_every_look_is_recorded_with_who_what_and_how_many(access):
    alice = clinician("alice-records")
    person = SHARED[1]
    result = access.search(alice, SearchQuery(text="o'brien", modalities=["CT"]))
    tree = access.study_tree(alice, "ct", person.patient_id)
    series = tree[0].series[0]
    files = access.series_files(alice, "ct", series.series_uid)
    jpeg = access.preview(alice, "ct", series.series_uid, files[0]["rel_path"], "auto", 64)
    assert jpeg[:2] == b"\xff\xd8"
    rows = access.images(alice, "ct", person.patient_id)
    got = {r["action"]: r for r in trail(access, user="alice-records")}
    assert set(got) == {"search", "patient", "preview", "images"}
    search = got["search"]
    assert json.loads(search["query"]) == {"text": "o'brien", "modalities": ["CT"]}
    assert search["results"] == result.total == 1
    assert (search["door"], search["client"], search["outcome"]) == ("api", "192.0.2.10",
                                                                     "success")
    assert got["preview"]["study_uid"] == tree[0].study_uid
    assert got["preview"]["series_uid"] == series.series_uid
    assert got["preview"]["patient_id"] == person.patient_id
    assert got["images"]["results"] == len(rows)
    # without a session every request is its own record
    access.images(alice, "ct", person.patient_id)
    assert len(trail(access, user="alice-records", action="images")) == 2


def test_redraws_of_one_session_are_one_record(access):
    page = clinician("bea", session="login-1")
    for _ in range(3):
        access.patient(page, "ct", ONLY_CT[1].patient_id)
    assert len(trail(access, user="bea")) == 1
    access.patient(clinician("bea", session="login-2"), "ct", ONLY_CT[1].patient_id)
    assert len(trail(access, user="bea")) == 2


def test_admin_actions_and_the_trail_need_the_admin_role(access):
    started = []
    with pytest.raises(AccessDenied, match="admin role"):
        access.admin_action(clinician("carl"), "ct", "sync", lambda: started.append(1) or "")
    with pytest.raises(AccessDenied):
        access.audit_events(clinician("carl"))
    assert not started
    root = Principal("root-admin", frozenset({ADMIN}), None, "local", "cli")
    assert access.admin_action(root, "ct", "sync", lambda: "run 42") == "run 42"
    with pytest.raises(RuntimeError):
        access.admin_action(root, "ct2", "full", _no_prefect)
    outcomes = [(r["action"], r["nas"], r["outcome"], r["detail"])
                for r in reversed(trail(access, user="root-admin"))]
    assert outcomes == [("admin:sync", "ct", "success", "requested"),
                        ("admin:sync", "ct", "success", "run 42"),
                        ("admin:full", "ct2", "success", "requested"),
                        ("admin:full", "ct2", "failed", "RuntimeError: no Prefect server")]
    assert access.audit_events(root, user="carl")  # the refusals of carl are on record
    assert trail(access, user="root-admin", action="audit")


def _no_prefect() -> str:
    raise RuntimeError("no Prefect server")


def test_an_audit_trail_that_cannot_be_written_hides_the_data(tmp_path):
    settings = two_nas_index(tmp_path)
    access = Access(settings, get_engine(settings.index.url))
    with access.engine.begin() as conn:  # a damaged index: the table is gone
        conn.execute(text("ALTER TABLE audit_event RENAME TO audit_event_lost"))
    secret_query = ONLY_CT[0].name.split("^")[0]
    with pytest.raises(AuditUnavailable, match="nothing is shown") as refused:
        access.search(clinician(), SearchQuery(text=secret_query))
    assert secret_query not in str(refused.value)  # the query text stays out of the message
    with pytest.raises(AuditUnavailable):
        access.patient(clinician(), "ct", ONLY_CT[0].patient_id)
