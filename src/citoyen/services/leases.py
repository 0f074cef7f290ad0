"""Leases in ``scheduler_leases``: the one scheduler of a deployment, and the live dispatchers.

The worker (:mod:`citoyen.worker`) decides *when* to take, renew or give up a lease; the rows
and their conditional updates live here, so the face runs no SQL of its own. The rules are the
worker's (its module docstring says why): one row per lease, a holder keeps it by renewing it
before ``expires_at``, anyone may take it once it lapsed; works alike on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from citoyen.db import write_session
from citoyen.models import SchedulerLease
from citoyen.services.dispatch import DISPATCHER_PREFIX

log = logging.getLogger(__name__)

LEASE_NAME = "scheduler"
LEASE_SECONDS = 30.0


def acquire_lease(
    engine: sa.Engine,
    holder: str,
    now: datetime | None = None,
    seconds: float = LEASE_SECONDS,
    name: str = LEASE_NAME,
) -> bool:
    """Take or renew the lease: True when ``holder`` holds it until ``now + seconds``.

    One conditional UPDATE (ours, or lapsed) decides; the first worker ever inserts the row and
    the primary key settles a race between two first workers.
    """
    now = now or datetime.now(UTC)
    until = now + timedelta(seconds=seconds)
    with write_session(engine) as session:
        result = session.execute(
            sa.update(SchedulerLease)
            .where(
                SchedulerLease.name == name,
                sa.or_(SchedulerLease.holder == holder, SchedulerLease.expires_at <= now),
            )
            .values(holder=holder, expires_at=until)
        )
        if result.rowcount:
            return True
        if session.get(SchedulerLease, name) is not None:
            return False
        try:
            with session.begin_nested():
                session.add(
                    SchedulerLease(name=name, holder=holder, acquired_at=now, expires_at=until)
                )
                session.flush()
        except IntegrityError:
            return False
        return True


def hold_lease(engine: sa.Engine, holder: str, seconds: float = LEASE_SECONDS) -> bool:
    """:func:`acquire_lease` of the scheduler lease, where a database error means "not held"
    (logged): a worker that cannot renew must pause its scheduler, not die."""
    try:
        return acquire_lease(engine, holder, seconds=seconds)
    except sa.exc.SQLAlchemyError:
        log.exception("scheduler lease: database error")
        return False


def release_lease(engine: sa.Engine, holder: str, name: str = LEASE_NAME) -> None:
    """Give the lease up at shutdown, so a standby worker takes over without waiting."""
    with write_session(engine) as session:
        session.execute(
            sa.update(SchedulerLease)
            .where(SchedulerLease.name == name, SchedulerLease.holder == holder)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def register_dispatcher(
    engine: sa.Engine,
    name: str,
    now: datetime | None = None,
    seconds: float = LEASE_SECONDS,
    holder: str | None = None,
) -> int:
    """Say this dispatcher is alive until ``now + seconds``; how many dispatchers are alive.

    One row per worker in ``scheduler_leases`` (``name`` starts with ``dispatcher:``, ``holder``
    is ``host:pid:id``); a worker that died stops counting when its row lapses (or at once when
    a worker on its host finds it dead, :func:`forget_dead_dispatchers`), and rows lapsed for a
    day are removed. The outbox rows it claimed are due again as soon as its row is gone or
    lapsed (docs/outbox.md, "Crash recovery").
    """
    now = now or datetime.now(UTC)
    acquire_lease(engine, holder or name, now, seconds, name=name)
    with write_session(engine) as session:
        session.execute(
            sa.delete(SchedulerLease).where(
                SchedulerLease.name.startswith(DISPATCHER_PREFIX),
                SchedulerLease.expires_at < now - timedelta(days=1),
            )
        )
        alive = session.exec(
            select(sa.func.count())
            .select_from(SchedulerLease)
            .where(
                SchedulerLease.name.startswith(DISPATCHER_PREFIX),
                SchedulerLease.expires_at > now,
            )
        ).one()
    return max(1, int(alive))


def _process_gone(pid: int) -> bool:
    """Whether no process ``pid`` runs on this host (our own pid: an earlier life of this
    process, as in a restarted container, where the worker is pid 1 again)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, as another user
    return False


def forget_dead_dispatchers(engine: sa.Engine, own_name: str, host: str | None = None) -> int:
    """Remove the registrations of this host's dispatchers whose process is gone; how many.

    A worker restarted after a crash runs this before its first pass: its earlier life no
    longer counts as one of the dispatchers ("one of 2"), and the outbox rows that life had
    claimed are due again at once instead of after their lease. Registrations of other hosts
    are left to lapse (their heartbeat stops).
    """
    host = host or socket.gethostname()
    with write_session(engine) as session:
        rows = session.exec(
            select(SchedulerLease).where(
                SchedulerLease.name.startswith(DISPATCHER_PREFIX),
                SchedulerLease.name != own_name,
            )
        ).all()
        gone = []
        for row in rows:
            parts = row.holder.split(":")
            local = len(parts) == 3 and parts[0] == host and parts[1].isdigit()
            if local and _process_gone(int(parts[1])):
                gone.append(row.name)
        if gone:
            session.execute(sa.delete(SchedulerLease).where(SchedulerLease.name.in_(gone)))
    if gone:
        log.warning(
            "outbox: %d dispatcher(s) of this host died; their claims are released", len(gone)
        )
    return len(gone)
