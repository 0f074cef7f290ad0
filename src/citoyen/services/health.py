"""What ``/healthz`` and ``/metrics`` report: is the database writable, what is waiting.

A database that answers ``SELECT 1`` may still refuse every write (SQLite on a full disk or a
read-only file, a PostgreSQL replica or a server out of space), and then every webhook fails
while a read-only check says all is well. So the check writes: one upsert of a row of its own in
``scheduler_leases`` (``health``), in a write transaction like a webhook's. Nothing in the
answer is personal: counts, ages and a yes/no.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from citoyen.db import insert, write_session
from citoyen.models import Outbox, SchedulerLease
from citoyen.services import spool

HEALTH_ROW = "health"
SCHEDULER_LEASE = "scheduler"  # citoyen.services.leases.LEASE_NAME
_LEASES = SchedulerLease.__table__  # type: ignore[attr-defined]
_OUTBOX = Outbox.__table__  # type: ignore[attr-defined]
QUEUED = ("pending", "sending")


def database_writable(engine: sa.Engine, now: datetime | None = None) -> bool:
    """True when a write transaction commits (the health row is upserted)."""
    now = now or datetime.now(UTC)
    values = {"name": HEALTH_ROW, "holder": "healthz", "acquired_at": now, "expires_at": now}
    try:
        with write_session(engine) as session:
            session.execute(
                insert(session, _LEASES)
                .values(values)
                .on_conflict_do_update(index_elements=["name"], set_={"expires_at": now})
            )
        return True
    except (sa.exc.SQLAlchemyError, *spool.DATABASE_DOWN):
        return False


@dataclass
class Health:
    database: str  # ok | unwritable
    spool_depth: int
    oldest_queued_seconds: float | None
    scheduler_lease_held: bool | None  # None: unknown (the database could not be read)

    @property
    def ok(self) -> bool:
        return self.database == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "error",
            "database": self.database,
            "spool_depth": self.spool_depth,
            "oldest_queued_seconds": self.oldest_queued_seconds,
            "scheduler_lease_held": self.scheduler_lease_held,
        }


def check(runtime: Any, now: datetime | None = None) -> Health:
    now = now or datetime.now(UTC)
    writable = database_writable(runtime.engine, now)
    oldest: float | None = None
    lease: bool | None = None
    try:
        with runtime.engine.connect() as conn:
            first = conn.execute(
                sa.select(sa.func.min(_OUTBOX.c.created_at)).where(_OUTBOX.c.status.in_(QUEUED))
            ).scalar_one()
            held = conn.execute(
                sa.select(sa.func.count())
                .select_from(_LEASES)
                .where(_LEASES.c.name == SCHEDULER_LEASE, _LEASES.c.expires_at > now)
            ).scalar_one()
        oldest = None if first is None else round(max(0.0, (now - first).total_seconds()), 1)
        lease = bool(held)
    except (sa.exc.SQLAlchemyError, *spool.DATABASE_DOWN):
        pass
    return Health(
        database="ok" if writable else "unwritable",
        spool_depth=spool.spool_of(runtime).depth(),
        oldest_queued_seconds=oldest,
        scheduler_lease_held=lease,
    )
