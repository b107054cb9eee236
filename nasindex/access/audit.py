"""The audit trail in the index: the record of truth. One row per look and per act,
written before the data is returned; append-only (the application only inserts, and
triggers of migration 0004 refuse UPDATE and DELETE).

A row may hold a query text (that is what an audit trail is for); nothing else in
nasindex logs one. Failures are reported without the statement's parameters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from nasindex.access.principal import Principal
from nasindex.errors import AuditStorageError, AuditUnavailable
from nasindex.index.faults import storage_fault
from nasindex.index.models import AuditEvent
from nasindex.search.scope import Scope

OUTCOMES = ("success", "denied", "failed")
# What a record can be about: reads of patient data (a DICOMweb search is a query, a file
# sent whole is a retrieve), logins, the trail itself, admin actions and the
# application's start and stop.
ACTIONS = ("search", "query", "patient", "preview", "images", "retrieve", "login", "logout",
           "audit", "admin:sync", "admin:full", "admin:retry", "app:start", "app:stop")
# The fields of a listed record, as the CLI's --json and the CSV export name them.
COLUMNS = ("id", "at", "user", "door", "client", "action", "outcome", "nas", "patient_id",
           "study_uid", "series_uid", "query", "results", "detail")
_COLUMN = {"user": "username"}  # "user" is a reserved word in SQL


@dataclass(frozen=True)
class Target:
    """What an event is about (all optional)."""

    nas: str | None = None
    patient_id: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    query: str | None = None  # JSON of the search text and filters
    results: int | None = None
    detail: str | None = None


@dataclass
class Event:
    """One audit record as written (and as forwarded to syslog)."""

    principal: Principal
    action: str
    outcome: str
    target: Target
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    id: int | None = None

    def row(self) -> dict[str, Any]:
        p = self.principal
        return {"at": self.at, "username": p.user, "door": p.door, "client": p.client,
                "action": self.action, "outcome": self.outcome, **self.target.__dict__}


def write(engine: Engine, event: Event) -> Event:
    """Insert the record in its own transaction; AuditUnavailable if that fails."""
    try:
        with engine.begin() as conn:
            event.id = conn.execute(insert(AuditEvent).values(**event.row())
                                    .returning(AuditEvent.id)).scalar_one()
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(exc, engine) from None
    return event


def _unavailable(exc: BaseException, engine: Engine) -> AuditUnavailable:
    """Why nothing is shown: the index's storage (where it is and the fix), or else the
    driver's message."""
    fault = storage_fault(exc, str(engine.url), run=False)
    if fault is not None:  # a full, read-only or damaged index: not a usage mistake
        return AuditStorageError(f"The audit trail cannot be written, so nothing is shown. "
                                 f"{fault}")
    return AuditUnavailable(
        f"The audit trail cannot be written ({_cause(exc)}), so nothing is shown. "
        "Check the index database (disk space, permissions, `nasindex init`) and try "
        "again; tell your administrator if it persists.")


def _cause(exc: BaseException) -> str:
    """The driver's message alone: SQLAlchemy's own text repeats the statement and its
    parameters (a query text, a patient ID), which must not reach a log or a screen."""
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [""])[0]
    return f"{type(orig).__name__}: {first}"[:200]


def query_text(**filters: Any) -> str:
    """Search text and filters as stored: compact JSON of the ones that were set."""
    return json.dumps({k: v for k, v in filters.items() if v not in (None, "", [], ())},
                      ensure_ascii=False, sort_keys=True, default=str)


def since_date(value: str | date | None) -> datetime | None:
    """``YYYY-MM-DD`` as the start of that day (UTC)."""
    if value is None or value == "":
        return None
    day = value if isinstance(value, date) else date.fromisoformat(str(value))
    return datetime.combine(day, time(), UTC)


def events(engine: Engine, *, scope: Scope, user: str | None = None,
           patient_id: str | None = None, nas: str | None = None, action: str | None = None,
           since: datetime | None = None, until: datetime | None = None,
           limit: int = 10_000) -> list[dict[str, Any]]:
    """Audit rows, newest first, filtered. A NAS-scoped reader sees only the rows about
    its NAS devices (a search across NAS devices names none, so it is not among them)."""
    stmt = select(*(getattr(AuditEvent, _COLUMN.get(c, c)) for c in COLUMNS))
    if scope is not None:
        stmt = stmt.where(AuditEvent.nas.in_(sorted(scope)))
    for column, value in ((AuditEvent.username, user), (AuditEvent.patient_id, patient_id),
                          (AuditEvent.nas, nas), (AuditEvent.action, action)):
        if value:
            stmt = stmt.where(column == value)
    if since:
        stmt = stmt.where(AuditEvent.at >= since)
    if until:  # exclusive
        stmt = stmt.where(AuditEvent.at < until)
    stmt = stmt.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    with engine.connect() as conn:
        return [_plain(dict(zip(COLUMNS, row, strict=True))) for row in conn.execute(stmt)]


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    at = row["at"]
    row["at"] = (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()
    return row
