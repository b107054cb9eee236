"""Indexing health per NAS: counts and the latest runs. Read-only; the CLI's `status`
and the dashboard's health page both read it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from nasindex.index.models import IndexRun, Instance, ItemError, Nas, Patient, Study

RUN_FIELDS = ("kind", "status", "seen", "new", "changed", "missing", "revived", "failed",
              "skipped", "deferred", "message", "flow_run_id")


def _count_by_nas(conn, stmt) -> dict[int, int]:
    return dict(conn.execute(stmt).all())


def nas_status(engine: Engine) -> list[dict[str, Any]]:
    """One entry per NAS known to the index, with counts and its last run."""
    with Session(engine) as conn:
        nas_rows = conn.execute(select(Nas).order_by(Nas.name)).all()
        patients = _count_by_nas(conn, select(Patient.nas_id, func.count())
                                 .group_by(Patient.nas_id))
        studies = _count_by_nas(conn, select(Study.nas_id, func.count()).group_by(Study.nas_id))
        present = _count_by_nas(conn, select(Instance.nas_id, func.count())
                                .where(Instance.missing_since.is_(None)).group_by(Instance.nas_id))
        missing = _count_by_nas(conn, select(Instance.nas_id, func.count())
                                .where(Instance.missing_since.is_not(None))
                                .group_by(Instance.nas_id))
        errors = _count_by_nas(conn, select(ItemError.nas_id, func.count())
                               .where(ItemError.skipped.is_(False)).group_by(ItemError.nas_id))
        result = []
        for (nas,) in nas_rows:
            result.append({
                "nas": nas.name, "type": nas.type, "root": nas.root,
                "display_root": nas.display_root,
                "patients": patients.get(nas.id, 0), "studies": studies.get(nas.id, 0),
                "instances": present.get(nas.id, 0), "missing": missing.get(nas.id, 0),
                "errors": errors.get(nas.id, 0),
                "last_run": _run_dict(_last_run(conn, nas.id)),
                "last_success": _run_dict(_last_run(conn, nas.id, "succeeded")),
            })
    return result


def _last_run(conn, nas_pk: int, status: str | None = None) -> IndexRun | None:
    stmt = select(IndexRun).where(IndexRun.nas_id == nas_pk)
    if status:
        stmt = stmt.where(IndexRun.status == status)
    row = conn.execute(stmt.order_by(IndexRun.started_at.desc(), IndexRun.id.desc()).limit(1)
                       ).first()
    return row[0] if row else None


def _run_dict(run: IndexRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    seconds = ((run.ended_at - run.started_at).total_seconds()
               if run.ended_at and run.started_at else None)
    return {"id": run.id, **{f: getattr(run, f) for f in RUN_FIELDS},
            "started_at": _iso(run.started_at), "ended_at": _iso(run.ended_at),
            "seconds": seconds}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def recent_runs(engine: Engine, nas: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    stmt = (select(IndexRun, Nas.name).join(Nas, Nas.id == IndexRun.nas_id)
            .order_by(IndexRun.started_at.desc(), IndexRun.id.desc()).limit(limit))
    if nas:
        stmt = stmt.where(Nas.name == nas)
    with Session(engine) as conn:
        return [{"nas": name, **_run_dict(run)} for run, name in conn.execute(stmt)]


def error_list(engine: Engine, nas: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    stmt = (select(ItemError, Nas.name).join(Nas, Nas.id == ItemError.nas_id)
            .where(ItemError.skipped.is_(False))
            .order_by(ItemError.last_seen.desc()).limit(limit))
    if nas:
        stmt = stmt.where(Nas.name == nas)
    with Session(engine) as conn:
        return [{"nas": name, "path": e.rel_path, "reason": e.reason, "attempts": e.attempts,
                 "first_seen": _iso(e.first_seen), "last_seen": _iso(e.last_seen)}
                for e, name in conn.execute(stmt)]
