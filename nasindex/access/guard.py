"""The door every front end passes to read patient data or act: :class:`Access`.

Each method checks the role, applies the principal's NAS scope in the query, and writes
the audit record before it returns data; if that record cannot be written it raises
:class:`~nasindex.errors.AuditUnavailable` and returns nothing (fail closed). A refusal
is recorded too, then raised as :class:`~nasindex.errors.AccessDenied`.

Streamlit draws a page again on every click: the same look by the same session (same
action, same target) within ``REPEAT_SECONDS`` is one record, not one per redraw.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from threading import Lock
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from nasindex import health, search
from nasindex.access import audit
from nasindex.access.audit import Event, Target
from nasindex.access.dicomweb import DicomwebAccess
from nasindex.access.forward import Forwarder, forwarder
from nasindex.access.principal import ADMIN, CLINICIAN, Door, Principal
from nasindex.config import Settings
from nasindex.errors import AccessDenied, AuditUnavailable, NotFound
from nasindex.index.models import Instance, Nas, Patient, Series, Study
from nasindex.search.scope import nas_id_in

REPEAT_SECONDS = 60
NOTHING = Target()
_RECENT_MAX = 4096


class Access(DicomwebAccess):
    """The access layer over one index: create one per process and share it."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings, self.engine = settings, engine
        self.forwarder: Forwarder | None = forwarder(settings.audit)
        self._recent: OrderedDict[tuple, float] = OrderedDict()
        self._lock = Lock()

    # -- the record ---------------------------------------------------------------------
    def record(self, p: Principal, action: str, target: Target = NOTHING,
               outcome: str = "success") -> None:
        """Write one audit record (then forward it, best effort); AuditUnavailable if the
        index refuses it. A repeat within a session's window is already on record."""
        key = (p.session, p.user, action, outcome, tuple(target.__dict__.values()))
        now = time.monotonic()
        if p.session is not None and self._seen_recently(key, now):
            return
        event = audit.write(self.engine, Event(p, action, outcome, target))
        if p.session is not None:
            with self._lock:
                self._recent[key] = now
                while len(self._recent) > _RECENT_MAX:
                    self._recent.popitem(last=False)
        if self.forwarder is not None:
            self.forwarder.submit(event)

    def _seen_recently(self, key: tuple, now: float) -> bool:
        with self._lock:
            seen = self._recent.get(key)
            return seen is not None and now - seen < REPEAT_SECONDS

    def _require(self, p: Principal, role: str, action: str, target: Target = NOTHING
                 ) -> None:
        if not p.has(role):
            self._refuse(p, action, target, f"this needs the {role} role")
        if target.nas is not None and not p.sees(target.nas):
            self._refuse(p, action, target, f"NAS {target.nas} is not among the NAS "
                         "devices you may see")

    def _refuse(self, p: Principal, action: str, target: Target, why: str) -> None:
        """Record the refusal (if the trail is down, refuse all the same) and raise."""
        with contextlib.suppress(AuditUnavailable):
            self.record(p, action, replace(target, detail=why), "denied")
        raise AccessDenied(f"Not allowed: {why}. Ask your administrator if you need it.")

    def application_event(self, door: Door, action: str) -> None:
        """The start or stop of a door's server (``app:start``/``app:stop``: Application
        Activity), best effort: it never keeps a server from starting or stopping."""
        with contextlib.suppress(Exception):
            self.record(Principal("nasindex", frozenset(), None, None, door), action)
            if action == "app:stop" and self.forwarder is not None:
                self.forwarder.flush(3)

    # -- sessions -----------------------------------------------------------------------
    def login(self, p: Principal) -> None:
        """A successful login; a user with no role is recorded as refused."""
        if p.roles:
            self.record(p, "login")
        else:
            self.record(p, "login", Target(detail="no nasindex role"), "denied")

    def logout(self, p: Principal, why: str = "logout") -> None:
        self.record(p, "logout", Target(detail=why))

    # -- reads of patient data ------------------------------------------------------------
    def search(self, p: Principal, q: search.SearchQuery) -> search.SearchResult:
        """Patients matching ``q`` on the NAS devices ``p`` may see."""
        text = audit.query_text(text=q.text, patient_id=q.patient_id, accession=q.accession,
                                modalities=q.modalities, date_from=q.date_from,
                                date_to=q.date_to, birth_date=q.birth_date, nas=q.nas,
                                offset=q.offset or None)
        self._require(p, CLINICIAN, "search", Target(query=text))
        result = search.search(self.engine, q, scope=p.scope)
        self.record(p, "search", Target(query=text, results=result.total,
                                        patient_id=q.patient_id))
        return result

    def patient(self, p: Principal, nas: str, patient_id: str) -> search.PersonHit | None:
        """One patient record and the same person's records on NAS devices ``p`` sees."""
        target = Target(nas=nas, patient_id=patient_id)
        self._require(p, CLINICIAN, "patient", target)
        person = search.patient(self.engine, nas, patient_id, scope=p.scope)
        self.record(p, "patient", target)
        return person

    def study_tree(self, p: Principal, nas: str, patient_id: str) -> list[search.StudyNode]:
        """Studies, series and folders of one record (the patient page's body): the same
        look as :meth:`patient` for the audit trail."""
        target = Target(nas=nas, patient_id=patient_id)
        self._require(p, CLINICIAN, "patient", target)
        tree = search.study_tree(self.engine, nas, patient_id, scope=p.scope)
        self.record(p, "patient", target)
        return tree

    def series_files(self, p: Principal, nas: str, series_uid: str) -> list[dict[str, Any]]:
        """The present files of one series, to preview them: recorded as a preview."""
        owner = self._series_owner(p, nas, series_uid)
        files = search.series_files(self.engine, nas, series_uid, scope=p.scope)
        self.record(p, "preview", owner)
        return files

    def preview(self, p: Principal, nas: str, series_uid: str, rel_path: str, preset: str,
                size: int) -> bytes:
        """One indexed file of a series as a windowed JPEG (thumbnail or view)."""
        from nasindex import preview  # numpy, Pillow and the NAS types: only when drawing

        owner = self._series_owner(p, nas, series_uid, rel_path)
        self.record(p, "preview", owner)
        return preview.render(self.settings, self.engine, nas, rel_path, preset, size)

    def _series_owner(self, p: Principal, nas: str, series_uid: str,
                      rel_path: str | None = None) -> Target:
        """The patient and study a series (or one of its files) belongs to, if ``p`` may
        see it; refused (and recorded) otherwise, or when it is not in the index."""
        target = Target(nas=nas, series_uid=series_uid)
        self._require(p, CLINICIAN, "preview", target)
        stmt = (select(Patient.patient_id, Study.study_uid)
                .join(Study, Study.patient_pk == Patient.id)
                .join(Series, Series.study_pk == Study.id)
                .join(Nas, Nas.id == Series.nas_id)
                .where(Nas.name == nas, Series.series_uid == series_uid,
                       *nas_id_in(p.scope, Series.nas_id)))
        if rel_path is not None:
            stmt = stmt.join(Instance, Instance.series_pk == Series.id).where(
                Instance.rel_path == rel_path, Instance.missing_since.is_(None))
        with self.engine.connect() as conn:
            row = conn.execute(stmt.limit(1)).first()
        if row is None:
            self._refuse(p, "preview", target, "that file is not an indexed image of this "
                         "series")
        return Target(nas=nas, patient_id=row.patient_id, study_uid=row.study_uid,
                      series_uid=series_uid)

    def instance_file(self, p: Principal, nas: str, sop_uid: str) -> tuple[dict[str, Any], Path]:
        """One indexed file to send as stored (its index record, where it is): recorded as
        a retrieval. NotFound if it is not indexed (or not present) on ``nas``;
        NasUnavailable if the share is not reachable."""
        from nasindex import preview  # the NAS types: only when a file is read

        found = self._instance(p, nas, sop_uid, "retrieve")
        path = preview.stored_file(self.settings, self.engine, nas, found["rel_path"])
        self.record(p, "retrieve", _owner(found))
        return found, path

    def render_instance(self, p: Principal, nas: str, sop_uid: str, preset: str, size: int,
                        image_format: str = "jpeg") -> bytes:
        """One indexed image drawn as the patient page draws it: recorded as a preview."""
        from nasindex import preview

        found = self._instance(p, nas, sop_uid, "preview")
        self.record(p, "preview", _owner(found))
        return preview.render(self.settings, self.engine, nas, found["rel_path"], preset, size,
                              image_format)

    def _instance(self, p: Principal, nas: str, sop_uid: str, action: str) -> dict[str, Any]:
        """The present file of ``sop_uid`` on ``nas``, found inside ``p``'s NAS scope (its
        patient, study and series are the record's target)."""
        self._require(p, CLINICIAN, action, Target(nas=nas))
        found = search.instance(self.engine, nas, sop_uid, scope=p.scope)
        if found is None:
            raise NotFound(f"No image with SOP Instance UID {sop_uid} is indexed on NAS {nas}.")
        if found["missing_since"]:
            raise NotFound(f"The file of SOP Instance UID {sop_uid} is gone from NAS {nas} "
                           f"since {found['missing_since']} (moved or deleted).")
        return found

    def images(self, p: Principal, nas: str, patient_id: str) -> list[dict[str, Any]]:
        """Every indexed file of one patient on one NAS, with its paths."""
        self._require(p, CLINICIAN, "images", Target(nas=nas, patient_id=patient_id))
        rows = search.images(self.engine, nas, patient_id, scope=p.scope)
        self.record(p, "images", Target(nas=nas, patient_id=patient_id, results=len(rows)))
        return rows

    # -- what the pages offer (no patient data: not recorded) ----------------------------
    def facets(self, p: Principal) -> dict[str, Any]:
        self._require(p, CLINICIAN, "facets")
        return search.facets(self.engine, scope=p.scope)

    def status(self, p: Principal) -> list[dict[str, Any]]:
        """``nasindex status --json`` for the NAS devices ``p`` sees."""
        self._require(p, CLINICIAN, "health")
        return health.nas_status(self.engine, scope=p.scope)

    def health(self, p: Principal, now: datetime | None = None) -> list[dict[str, Any]]:
        self._require(p, CLINICIAN, "health")
        return health.nas_health(self.engine, self.settings, now, scope=p.scope)

    def runs(self, p: Principal, limit: int = 500) -> list[dict[str, Any]]:
        self._require(p, CLINICIAN, "health")
        return health.recent_runs(self.engine, limit=limit, scope=p.scope)

    def errors(self, p: Principal) -> list[dict[str, Any]]:
        self._require(p, CLINICIAN, "health")
        return health.error_list(self.engine, scope=p.scope)

    # -- acts -----------------------------------------------------------------------------
    def admin_action(self, p: Principal, nas: str, action: str, run: Callable[[], str]) -> str:
        """Run an admin action on one NAS (``run`` returns what was started). Recorded
        before it starts and again with its outcome; an action that cannot be recorded
        does not run."""
        name = f"admin:{action}"
        self._require(p, ADMIN, name, Target(nas=nas))
        self.record(p, name, Target(nas=nas, detail="requested"))
        try:
            started = run()
        except Exception as exc:
            self.record(p, name, Target(nas=nas, detail=f"{type(exc).__name__}: {exc}"[:500]),
                        "failed")
            raise
        self.record(p, name, Target(nas=nas, detail=started))
        return started

    def audit_events(self, p: Principal, **filters: Any) -> list[dict[str, Any]]:
        """The audit trail, filtered (see :func:`audit.events`); reading it is recorded."""
        shown = {k: v for k, v in filters.items() if k != "limit"}
        self._require(p, ADMIN, "audit", Target(query=audit.query_text(**shown)))
        rows = audit.events(self.engine, scope=p.scope, **filters)
        self.record(p, "audit", Target(query=audit.query_text(**shown), results=len(rows)))
        return rows


def _owner(found: dict[str, Any]) -> Target:
    """The record's target for one file :meth:`Access._instance` found."""
    return Target(nas=found["nas"], patient_id=found["patient_id"],
                  study_uid=found["study_uid"], series_uid=found["series_uid"])
