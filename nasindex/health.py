"""Indexing health per NAS: counts, the latest runs, staleness, reachability. Read-only;
the CLI's `status` and the dashboard's health page both read it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from nasindex import heartbeat
from nasindex.config import NasSettings, Settings
from nasindex.index.models import (
    RUN_COUNTS,
    IndexRun,
    Instance,
    ItemError,
    Nas,
    NasWatch,
    Patient,
    RunKind,
    RunStatus,
    Study,
)
from nasindex.runlock import lock_held
from nasindex.search.scope import Scope, nas_id_in

RUN_FIELDS = ("kind", "status", *RUN_COUNTS, "message", "flow_run_id")
# A run's files/s means something once it read this many files: below, the run's fixed
# costs (listing the NAS, starting the worker processes, committing) outweigh reading,
# and an incremental run that read one file would show "4 files/s".
MEANINGFUL_RUN_FILES = 200


def _count_by_nas(conn, stmt) -> dict[int, int]:
    return dict(conn.execute(stmt).all())


def nas_status(engine: Engine, *, scope: Scope) -> list[dict[str, Any]]:
    """One entry per NAS known to the index (and in ``scope``), with counts and its last
    run. A NAS outside the scope is not listed, named or counted."""
    with Session(engine) as conn:
        nas_rows = conn.execute(select(Nas).where(*nas_id_in(scope, Nas.id))
                                .order_by(Nas.name)).all()
        patients = _count_by_nas(conn, select(Patient.nas_id, func.count())
                                 .group_by(Patient.nas_id))
        studies = _count_by_nas(conn, select(Study.nas_id, func.count()).group_by(Study.nas_id))
        present = _count_by_nas(conn, select(Instance.nas_id, func.count())
                                .where(Instance.missing_since.is_(None)).group_by(Instance.nas_id))
        missing = _count_by_nas(conn, select(Instance.nas_id, func.count())
                                .where(Instance.missing_since.is_not(None))
                                .group_by(Instance.nas_id))
        errors = _count_by_nas(conn, select(ItemError.nas_id, func.count())
                               .where(ItemError.skipped.is_(False), ItemError.note.is_(False))
                               .group_by(ItemError.nas_id))
        result = []
        for (nas,) in nas_rows:
            result.append({
                "nas": nas.name, "type": nas.type, "root": nas.root,
                "display_root": nas.display_root,
                "patients": patients.get(nas.id, 0), "studies": studies.get(nas.id, 0),
                "instances": present.get(nas.id, 0), "missing": missing.get(nas.id, 0),
                "errors": errors.get(nas.id, 0),
                "last_run": _run_dict(_last_run(conn, nas.id), engine, nas.name),
                "last_success": _run_dict(_last_run(conn, nas.id, RunStatus.SUCCEEDED)),
            })
    return result


def _last_run(conn, nas_pk: int, status: str | None = None) -> IndexRun | None:
    stmt = select(IndexRun).where(IndexRun.nas_id == nas_pk)
    if status:
        stmt = stmt.where(IndexRun.status == status)
    row = conn.execute(stmt.order_by(IndexRun.started_at.desc(), IndexRun.id.desc()).limit(1)
                       ).first()
    return row[0] if row else None


# What a record left "running" by a process that died (SIGKILL, power loss) shows: its
# NAS's run lock is free, so no run is going (the next run also marks it in the index).
DEAD_RUN = ("interrupted", "the run's process ended without recording its end (killed?); "
            "what it committed is kept and the next run goes on from there")


def _run_dict(run: IndexRun | None, engine: Engine | None = None, nas: str | None = None
              ) -> dict[str, Any] | None:
    """A run record as the CLI and the dashboard show it; with ``engine`` and ``nas``, a
    ``running`` record whose run is dead shows as interrupted."""
    if run is None:
        return None
    seconds = ((run.ended_at - run.started_at).total_seconds()
               if run.ended_at and run.started_at else None)
    fields = {f: getattr(run, f) for f in RUN_FIELDS}
    if run.status == "running" and engine is not None and not lock_held(engine, nas):
        fields["status"], fields["message"] = DEAD_RUN
    return {"id": run.id, **fields,
            "started_at": _iso(run.started_at), "ended_at": _iso(run.ended_at),
            "seconds": seconds, "files_read": _files_read(run),
            "files_per_second": round(_files_read(run) / seconds, 1) if seconds else None}


def _files_read(run: IndexRun) -> int:
    """Files the run opened: every listed one for a full index, else the new, changed
    and failed ones (an incremental run does not open unchanged files)."""
    if run.kind == RunKind.FULL:
        return max(run.seen - run.deferred - run.skipped, 0)
    return run.new + run.changed + run.failed


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def recent_runs(engine: Engine, nas: str | None = None, limit: int = 200, *, scope: Scope
                ) -> list[dict[str, Any]]:
    stmt = (select(IndexRun, Nas.name).join(Nas, Nas.id == IndexRun.nas_id)
            .where(*nas_id_in(scope, Nas.id))
            .order_by(IndexRun.started_at.desc(), IndexRun.id.desc()).limit(limit))
    if nas:
        stmt = stmt.where(Nas.name == nas)
    with Session(engine) as conn:
        return [{"nas": name, **_run_dict(run, engine, name)} for run, name in conn.execute(stmt)]


def error_list(engine: Engine, nas: str | None = None, limit: int = 500, *, scope: Scope
               ) -> list[dict[str, Any]]:
    stmt = (select(ItemError, Nas.name).join(Nas, Nas.id == ItemError.nas_id)
            .where(ItemError.skipped.is_(False), *nas_id_in(scope, Nas.id))
            .order_by(ItemError.last_seen.desc()).limit(limit))
    if nas:
        stmt = stmt.where(Nas.name == nas)
    with Session(engine) as conn:
        return [{"nas": name, "path": e.rel_path, "reason": e.reason, "attempts": e.attempts,
                 "note": e.note,
                 "first_seen": _iso(e.first_seen), "last_seen": _iso(e.last_seen)}
                for e, name in conn.execute(stmt)]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def nas_health(engine: Engine, settings: Settings, now: datetime | None = None, *,
               scope: Scope) -> list[dict[str, Any]]:
    """:func:`nas_status` for every NAS in the index or in the config, plus the sync
    interval, the age of the last successful run, the files/s of the latest successful
    run that read at least :data:`MEANINGFUL_RUN_FILES` files (None if none did), its
    watch (:func:`watch_status`) and the lag of its newest indexed file, and whether it
    is stale: for a NAS with a watch (freshness_seconds), when its watch is not polling;
    for one without, when its last successful run is older than twice the sync interval,
    or never was; only the NAS devices in ``scope``. Reachability is separate:
    :func:`reachable`."""
    now = now or datetime.now(UTC)
    indexed = {row["nas"]: row for row in nas_status(engine, scope=scope)}
    watches = watch_status(engine, now, scope=scope)
    lags = newest_lags(engine, scope=scope)
    speed: dict[str, float] = {}
    for run in recent_runs(engine, limit=1000, scope=scope):
        if (run["status"] == RunStatus.SUCCEEDED and run["files_per_second"]
                and run["files_read"] >= MEANINGFUL_RUN_FILES):
            speed.setdefault(run["nas"], run["files_per_second"])
    result = []
    configured = {n for n in settings.nas if scope is None or n in scope}
    for name in sorted(set(indexed) | configured):
        row = indexed.get(name) or {
            "nas": name, "type": settings.nas[name].type, "root": str(settings.nas[name].root),
            "display_root": settings.nas[name].display_root, "patients": 0, "studies": 0,
            "instances": 0, "missing": 0, "errors": 0, "last_run": None, "last_success": None}
        cfg = settings.nas.get(name)
        minutes = cfg.sync_minutes if cfg else None
        success = row["last_success"]
        ended = success and (success["ended_at"] or success["started_at"])
        age = (now - _aware(datetime.fromisoformat(ended))).total_seconds() if ended else None
        stale = age is None or (minutes is not None and age > 2 * minutes * 60)
        fresh = cfg.freshness_seconds if cfg else 0
        watch = watches.get(name)
        if fresh:
            stale = not (watch and watch["watching"])
        lag, lag_at = lags.get(name, (None, None))
        result.append({**row, "in_config": cfg is not None, "in_index": name in indexed,
                       "sync_minutes": minutes, "last_success_age_seconds": age,
                       "stale": stale, "files_per_second": speed.get(name),
                       "freshness_seconds": fresh, "watch": watch,
                       "newest_lag_seconds": lag, "newest_lag_at": lag_at})
    return result


def newest_lags(engine: Engine, *, scope: Scope) -> dict[str, tuple[float, str]]:
    """Per NAS in ``scope``: seconds from the newest file its last run that indexed one
    had to read being written to searchable, and when that run ended."""
    latest = (select(IndexRun.nas_id, func.max(IndexRun.id).label("run"))
              .where(IndexRun.newest_lag_seconds.is_not(None),
                     *nas_id_in(scope, IndexRun.nas_id))
              .group_by(IndexRun.nas_id).subquery())
    stmt = (select(Nas.name, IndexRun.newest_lag_seconds, IndexRun.ended_at)
            .join(latest, latest.c.run == IndexRun.id).join(Nas, Nas.id == IndexRun.nas_id))
    with Session(engine) as conn:
        return {name: (lag, _iso(ended)) for name, lag, ended in conn.execute(stmt)}


def watch_status(engine: Engine, now: datetime | None = None, *, scope: Scope
                 ) -> dict[str, dict[str, Any]]:
    """Per NAS name in ``scope``: its watch as the heartbeat (:mod:`nasindex.heartbeat`)
    tells it, and whether it is watching (it beat within three intervals, at least a
    minute, and has not ended)."""
    now = now or datetime.now(UTC)
    with Session(engine) as session:
        rows = session.execute(select(Nas.name, NasWatch).join(Nas, Nas.id == NasWatch.nas_id)
                               .where(*nas_id_in(scope, NasWatch.nas_id))).all()
    found = {}
    for name, w in rows:
        age = (now - _aware(w.beat_at)).total_seconds()
        found[name] = {
            "watcher": w.watcher, "started_at": _aware(w.started_at).isoformat(),
            "beat_age_seconds": age, "interval_seconds": w.interval_seconds,
            "poll_seconds": w.poll_seconds, "polls": w.polls,
            "changed_polls": w.changed_polls, "message": w.message,
            "watching": age <= max(3 * w.interval_seconds, 60)
            and not (w.message or "").startswith(heartbeat.ENDED)}
    return found


def reachable(nas: NasSettings, timeout: float = 5.0) -> tuple[bool, str]:
    """Whether the NAS can be read now (its type's ``check()``), and why not. A check
    that hangs (a dead network mount) counts as unreachable after ``timeout``."""
    from nasindex.registry import open_nas  # the registry loads every plugin

    outcome: list[tuple[bool, str]] = []

    def run() -> None:
        try:
            open_nas(nas).check()
            outcome.append((True, "reachable"))
        except Exception as exc:  # any failure is the answer, shown to the operator
            outcome.append((False, str(exc) or type(exc).__name__))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    return outcome[0] if outcome else (False, f"no answer within {timeout:.0f} s")

