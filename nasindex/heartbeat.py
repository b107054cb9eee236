"""The heartbeat of a NAS's watch (table ``nas_watch``, one row per NAS): who watches,
when it last polled, how long that took, how many polls found changes. Every poll
rewrites it, changed or not; the health page reads it. Only this module writes it.

At most one watch polls a NAS: a watch that starts takes the row over, and the one it
replaced sees at its next beat that the row is no longer its own, and ends.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from nasindex.index.models import NasWatch, utcnow

ENDED = "the watch ended"


@dataclass(slots=True)
class Beat:
    """One poll, as the heartbeat records it."""

    poll_seconds: float
    changed: bool
    sweep_next: int
    message: str | None = None


def take_over(engine: Engine, nas_pk: int, watcher: str, interval: float) -> int:
    """Make ``watcher`` the NAS's watch; returns the rolling sweep's next share (kept
    from the watch before, so that a restart does not begin the sweep again)."""
    now = utcnow()
    fresh = {"watcher": watcher, "started_at": now, "beat_at": now, "interval_seconds": interval,
             "poll_seconds": None, "polls": 0, "changed_polls": 0, "message": None}
    table = NasWatch.__table__
    with engine.begin() as conn:
        sweep = _sweep_next(conn, nas_pk)
        insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)
        stmt = insert(table).values(nas_id=nas_pk, sweep_next=sweep, **fresh)
        conn.execute(stmt.on_conflict_do_update(index_elements=["nas_id"], set_=fresh))
    return sweep


def beat(engine: Engine, nas_pk: int, watcher: str, b: Beat) -> bool:
    """Record one poll; False if another watch has taken the NAS over (then stop)."""
    with engine.begin() as conn:
        done = conn.execute(update(NasWatch).where(
            NasWatch.nas_id == nas_pk, NasWatch.watcher == watcher).values(
            beat_at=utcnow(), poll_seconds=b.poll_seconds, polls=NasWatch.polls + 1,
            changed_polls=NasWatch.changed_polls + int(b.changed), sweep_next=b.sweep_next,
            message=b.message))
    return done.rowcount == 1


def sweep_next(engine: Engine, nas_pk: int) -> int:
    """The rolling sweep's next share, as the NAS's last watch left it (0 at first)."""
    with engine.connect() as conn:
        return _sweep_next(conn, nas_pk)


def _sweep_next(conn: Connection, nas_pk: int) -> int:
    return conn.scalar(select(NasWatch.sweep_next).where(NasWatch.nas_id == nas_pk)) or 0


def step_down(engine: Engine, nas_pk: int, watcher: str, reason: str) -> None:
    """A watch that ends says so (the health page then shows it as not watching)."""
    message = f"{ENDED}: {reason}"
    with engine.begin() as conn:
        conn.execute(update(NasWatch).where(NasWatch.nas_id == nas_pk,
                                            NasWatch.watcher == watcher)
                     .values(message=message, beat_at=utcnow()))
