"""Audit records as DICOM audit messages (PS3.15 Annex A.5, the IHE ATNA format) in
RFC 5424 syslog frames, for the clinic's audit record repository.

=========================  ===================================  ======  =======================
nasindex action            EventID (DCM)                        action  participant objects
=========================  ===================================  ======  =======================
search, query (QIDO-RS)    110112 Query                         E       query; patient if an ID
patient, images, preview   110103 DICOM Instances Accessed      R       patient; study
retrieve (a file sent)     110104 DICOM Instances Transferred   R       patient; study
login, logout              110114 User Authentication           E       (type 110122 / 110123)
audit (the trail read)     110101 Audit Log Used                R       the audit trail
admin:*, app:start/stop    110100 Application Activity          E       the NAS acted on
=========================  ===================================  ======  =======================

A refusal keeps its EventID with EventOutcomeIndicator 4 (minor failure); an action that
failed has 8.
"""

from __future__ import annotations

import base64
import os
import socket
import xml.etree.ElementTree as ET
from datetime import datetime

from nasindex.access.audit import Event

# EventID code, its meaning, EventActionCode
EVENTS: dict[str, tuple[str, str, str]] = {
    "search": ("110112", "Query", "E"),
    "query": ("110112", "Query", "E"),
    "patient": ("110103", "DICOM Instances Accessed", "R"),
    "images": ("110103", "DICOM Instances Accessed", "R"),
    "preview": ("110103", "DICOM Instances Accessed", "R"),
    "retrieve": ("110104", "DICOM Instances Transferred", "R"),
    "login": ("110114", "User Authentication", "E"),
    "logout": ("110114", "User Authentication", "E"),
    "audit": ("110101", "Audit Log Used", "R"),
}
APPLICATION_ACTIVITY = ("110100", "Application Activity", "E")
EVENT_TYPES = {"login": ("110122", "Login"), "logout": ("110123", "Logout"),
               "app:start": ("110120", "Application Start"),
               "app:stop": ("110121", "Application Stop")}
OUTCOME = {"success": "0", "denied": "4", "failed": "8"}
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"  # the model of a QIDO-RS query
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"  # the query model a patient search is
# RFC 5424 PRI: facility 10 (security/authorization), severity 5 (notice), as ITI-20 asks.
PRI = 10 * 8 + 5
MSGID = "DICOM+RFC3881"
BOM = "\ufeff"


def _code(parent: ET.Element, tag: str, code: str, system: str, text: str) -> None:
    ET.SubElement(parent, tag, {"csd-code": code, "codeSystemName": system,
                                "originalText": text})


def _object(root: ET.Element, oid: str, type_code: str, role: str,
            id_type: tuple[str, str, str], query: str | None = None) -> None:
    obj = ET.SubElement(root, "ParticipantObjectIdentification", {
        "ParticipantObjectID": oid, "ParticipantObjectTypeCode": type_code,
        "ParticipantObjectTypeCodeRole": role})
    _code(obj, "ParticipantObjectIDTypeCode", *id_type)
    if query is not None:
        ET.SubElement(obj, "ParticipantObjectQuery").text = base64.b64encode(
            query.encode()).decode()


def audit_message(event: Event, source_id: str) -> str:
    """The XML of one audit record."""
    code, name, verb = EVENTS.get(event.action, APPLICATION_ACTIVITY)
    root = ET.Element("AuditMessage")
    ident = ET.SubElement(root, "EventIdentification", {
        "EventActionCode": verb, "EventDateTime": event.at.isoformat(timespec="milliseconds"),
        "EventOutcomeIndicator": OUTCOME.get(event.outcome, "8")})
    _code(ident, "EventID", code, "DCM", name)
    if event.action in EVENT_TYPES:
        type_code, type_name = EVENT_TYPES[event.action]
        _code(ident, "EventTypeCode", type_code, "DCM", type_name)
    p = event.principal
    user = ET.SubElement(root, "ActiveParticipant", {
        "UserID": p.user, "UserIsRequestor": "true",
        **({"NetworkAccessPointID": p.client, "NetworkAccessPointTypeCode": "2"}
           if p.client and p.client != "local" else {})})
    _code(user, "RoleIDCode", "110153", "DCM", "Source Role ID")
    app = ET.SubElement(root, "ActiveParticipant", {
        "UserID": f"nasindex-{p.door}", "AlternativeUserID": str(os.getpid()),
        "UserIsRequestor": "false", "NetworkAccessPointID": socket.gethostname(),
        "NetworkAccessPointTypeCode": "1"})
    _code(app, "RoleIDCode", "110152", "DCM", "Destination Role ID")
    source = ET.SubElement(root, "AuditSourceIdentification", {"AuditSourceID": source_id})
    _code(source, "AuditSourceTypeCode", "4", "DCM", "Application Server Process")
    _objects(root, event)
    return ET.tostring(root, encoding="unicode")


def _objects(root: ET.Element, event: Event) -> None:
    t = event.target
    if event.action in ("search", "query"):
        model = PATIENT_ROOT_FIND if event.action == "search" else STUDY_ROOT_FIND
        _object(root, model, "2", "24", ("110181", "DCM", "SOP Class UID"),
                query=t.query or "")
    if t.patient_id:
        _object(root, t.patient_id, "1", "1", ("2", "RFC-3881", "Patient Number"))
    if t.study_uid:
        _object(root, t.study_uid, "2", "3", ("110180", "DCM", "Study Instance UID"))
    if event.action == "audit":
        _object(root, "nasindex audit_event", "2", "13", ("12", "RFC-3881", "URI"))
    elif event.action.startswith(("admin:", "app:")) and t.nas:
        _object(root, f"nas:{t.nas}", "2", "4", ("12", "RFC-3881", "URI"))


def syslog_frame(xml: str, at: datetime, app: str = "nasindex") -> bytes:
    """One RFC 5424 message: header, no structured data, the XML as UTF-8 with a BOM."""
    stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    header = f"<{PRI}>1 {stamp} {socket.gethostname()} {app} {os.getpid()} {MSGID} - "
    return (header + BOM + xml).encode("utf-8")
