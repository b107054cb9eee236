"""Audit records forwarded to a real rsyslog as DICOM audit messages (PS3.15 A.5, IHE
ATNA) over RFC 5424 syslog, TCP and UDP; and a repository that is away never blocks or
breaks a user's request (the index keeps the record, the failure is visible)."""

from __future__ import annotations

import atexit
import base64
import json
import time
from pathlib import Path

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from access_support import ONLY_CT, ONLY_CT2, SHARED, clinician, two_nas_index
from browser import free_port
from nasindex.access.atna import STUDY_ROOT_FIND
from nasindex.access.audit import ACTIONS, events
from nasindex.access.guard import Access
from nasindex.config import load_settings
from nasindex.errors import AccessDenied
from nasindex.index.db import get_engine
from nasindex.search import SearchQuery
from nasindex.search.dicom.qido import DicomQuery
from support import run_cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return two_nas_index(tmp_path_factory.mktemp("atna"))


def forwarding(index, target: str, extra: str = ""):
    """The index's settings with ``[audit] syslog = target``, and an Access over them."""
    config = index.path.with_name(f"atna-{target.split(':')[0]}.toml")
    config.write_text(index.path.read_text(encoding="utf-8")
                      + f'\n[audit]\nsyslog = "{target}"\nsource_id = "nasindex-test"\n'
                      + extra, encoding="utf-8")
    settings = load_settings(config)
    return settings, Access(settings, get_engine(settings.index.url))


def participant(message, type_code: str) -> list:
    return [o for o in message.findall("ParticipantObjectIdentification")
            if o.get("ParticipantObjectTypeCode") == type_code]


def requestor(message):
    return next(a for a in message.findall("ActiveParticipant")
                if a.get("UserIsRequestor") == "true")


def test_tcp_query_and_instances_accessed(index, rsyslog):
    _, access = forwarding(index, f"tcp://127.0.0.1:{rsyslog.tcp}")
    person = SHARED[0]
    access.search(clinician("tcp-user"), SearchQuery(patient_id=person.patient_id))
    access.patient(clinician("tcp-user"), "ct", person.patient_id)
    query = rsyslog.wait_for(lambda m: requestor(m).get("UserID") == "tcp-user" and
                             m.find("EventIdentification/EventID").get("csd-code") == "110112",
                             "the Query message")
    ident = query.find("EventIdentification")
    assert (ident.get("EventActionCode"), ident.get("EventOutcomeIndicator")) == ("E", "0")
    assert requestor(query).get("NetworkAccessPointID") == "192.0.2.10"
    asked = participant(query, "2")[0].find("ParticipantObjectQuery").text
    assert json.loads(base64.b64decode(asked)) == {"patient_id": person.patient_id}
    assert [p.get("ParticipantObjectID") for p in participant(query, "1")] == [
        person.patient_id]
    assert query.find("AuditSourceIdentification").get("AuditSourceID") == "nasindex-test"
    seen = rsyslog.wait_for(lambda m: requestor(m).get("UserID") == "tcp-user" and
                            m.find("EventIdentification/EventID").get("csd-code") == "110103",
                            "the DICOM Instances Accessed message")
    patient = participant(seen, "1")[0]
    assert patient.get("ParticipantObjectID") == person.patient_id
    assert patient.find("ParticipantObjectIDTypeCode").get("csd-code") == "2"
    headers = [head for head, _ in rsyslog.messages()]
    assert all(" nasindex " in h and " DICOM+RFC3881 " in h for h in headers)  # RFC 5424


def test_a_dicomweb_query_is_a_query_message(index, rsyslog):
    _, access = forwarding(index, f"tcp://127.0.0.1:{rsyslog.tcp}")
    person = SHARED[0]
    found = access.dicom_query(clinician("qido-user"),
                               DicomQuery("study", keys={"PatientID": person.patient_id}))
    assert found.rows
    query = rsyslog.wait_for(lambda m: requestor(m).get("UserID") == "qido-user",
                             "the QIDO-RS query's message")
    assert query.find("EventIdentification/EventID").get("csd-code") == "110112"
    [model] = participant(query, "2")
    assert model.get("ParticipantObjectID") == STUDY_ROOT_FIND
    asked = json.loads(base64.b64decode(model.find("ParticipantObjectQuery").text))
    assert asked["PatientID"] == person.patient_id and asked["level"] == "study"
    assert "query" in ACTIONS  # the Audit page's and `nasindex audit --action` filter


def test_udp_and_a_refusal(index, rsyslog):
    _, access = forwarding(index, f"udp://127.0.0.1:{rsyslog.udp}")
    dave = clinician("udp-dave", scope=frozenset({"ct2"}))
    with pytest.raises(AccessDenied):
        access.patient(dave, "ct", ONLY_CT[0].patient_id)
    refused = rsyslog.wait_for(lambda m: requestor(m).get("UserID") == "udp-dave",
                               "the refusal over UDP")
    assert refused.find("EventIdentification").get("EventOutcomeIndicator") == "4"
    assert participant(refused, "1")[0].get("ParticipantObjectID") == ONLY_CT[0].patient_id


def test_tls_with_the_repositorys_certificate(index, rsyslog):
    _, access = forwarding(index, f"tls://127.0.0.1:{rsyslog.tls}",
                           f'syslog_ca_file = "{rsyslog.ca_file}"\n')
    access.images(clinician("tls-user"), "ct2", ONLY_CT2[0].patient_id)
    seen = rsyslog.wait_for(lambda m: requestor(m).get("UserID") == "tls-user",
                            "the message over TLS")
    assert participant(seen, "1")[0].get("ParticipantObjectID") == ONLY_CT2[0].patient_id
    assert access.forwarder.status()["ok"]


def test_a_repository_that_is_away_blocks_nothing_and_shows(index, monkeypatch):
    closed = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    settings, access = forwarding(index, closed)
    start = time.perf_counter()
    for _ in range(5):
        access.search(clinician("away"), SearchQuery(text="maria"))
    assert time.perf_counter() - start < 2  # the searches did not wait for the repository
    assert len(events(access.engine, scope=None, user="away")) == 5  # the record of truth
    deadline = time.monotonic() + 10
    while access.forwarder.status()["ok"] and time.monotonic() < deadline:
        time.sleep(0.05)
    status = access.forwarder.status()
    assert not status["ok"] and "Connection refused" in status["last_error"]
    # the Health page says so (the demo user is an admin)
    st_config.set_option("server.address", "127.0.0.1")
    monkeypatch.setenv("NASINDEX_CONFIG", str(settings.path))
    at = AppTest.from_file(str(ROOT / "dashboard" / "main.py"), default_timeout=30)
    at.switch_page("views/health.py").run()
    assert any(f"Audit forwarding to {closed} is failing" in e.value for e in at.error)
    # a command line says on stderr what it could not deliver, and still does its job
    proc = run_cli("--config", str(settings.path), "search", "maria", "--json",
                   cwd=settings.path.parent, check=False)
    assert proc.returncode == 0 and json.loads(proc.stdout)
    assert "audit message(s) not forwarded" in proc.stderr and closed in proc.stderr
    # This process's forwarder to the closed port would say the same when pytest ends,
    # below the suite's summary: it has been checked, so it is silenced.
    atexit.unregister(access.forwarder._at_exit)
