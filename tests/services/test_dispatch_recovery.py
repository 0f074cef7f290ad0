"""Crash recovery: the outbox rows of a dispatcher that died are due again as soon as its death
is known, not after their 120-second lease (docs/outbox.md, "Crash recovery")."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.models import Outbox, SchedulerLease
from citoyen.runtime import Runtime
from citoyen.services.contacts import get_or_create_contact
from citoyen.services.dispatch import Dispatcher, RateLimit
from citoyen.services.leases import forget_dead_dispatchers, register_dispatcher
from citoyen.services.outbox import enqueue
from tests.services.test_dispatch import FakeClock, FakeSender

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _claimed_row(runtime: Runtime, key: str, by: str) -> int:
    """A row claimed by ``by`` a second ago, its lease still running for two minutes."""
    with write_session(runtime.engine) as session:
        contact, _ = get_or_create_contact(session, runtime.vault, "tel:+22370000001", now=NOW)
        row = enqueue(
            session, channel="sms", idempotency_key=key, body="x", contact_id=contact.id, now=NOW
        )
        row.status, row.attempts, row.claimed_by = "sending", 1, by
        row.locked_until = NOW + timedelta(seconds=119)
        session.add(row)
        session.flush()
        return row.id


def _status(runtime: Runtime, outbox_id: int) -> str:
    with Session(runtime.engine) as session:
        return session.get(Outbox, outbox_id).status


def _dispatcher(runtime: Runtime, sender: FakeSender) -> Dispatcher:
    return Dispatcher(
        runtime,
        {"sms": sender},
        clock=FakeClock(),
        channel_limits={"sms": RateLimit(10, 10)},
        name="dispatcher:mine",
    )


def test_the_claims_of_a_dead_local_worker_are_sent_again_at_once(settings) -> None:
    runtime = Runtime(settings)
    host = socket.gethostname()
    register_dispatcher(
        runtime.engine, "dispatcher:dead", NOW, seconds=30, holder=f"{host}:{_dead_pid()}:aa"
    )
    register_dispatcher(runtime.engine, "dispatcher:alive", NOW, seconds=30, holder=f"{host}:1:bb")
    register_dispatcher(runtime.engine, "dispatcher:mine", NOW, seconds=30)
    dead = _claimed_row(runtime, "dead", "dispatcher:dead")
    alive = _claimed_row(runtime, "alive", "dispatcher:alive")
    sender = FakeSender()
    # While its registration stands, the dead worker's row waits for its lease.
    assert _dispatcher(runtime, sender).run_once(now=NOW + timedelta(seconds=1)).claimed == 0
    # A restarted worker finds it dead (its process is gone) and forgets it.
    assert forget_dead_dispatchers(runtime.engine, "dispatcher:mine", host=host) == 1
    stats = _dispatcher(runtime, sender).run_once(now=NOW + timedelta(seconds=2))
    assert (stats.claimed, stats.sent) == (1, 1)
    assert [m.outbox_id for m in sender.sent] == [dead]
    assert (_status(runtime, dead), _status(runtime, alive)) == ("sent", "sending")
    with Session(runtime.engine) as session:
        names = set(session.exec(select(SchedulerLease.name)).all())
    assert names == {"dispatcher:alive", "dispatcher:mine"}  # no "one of 3" any more


def test_the_claims_of_a_worker_whose_heartbeat_stopped_go_when_it_lapses(settings) -> None:
    runtime = Runtime(settings)
    register_dispatcher(runtime.engine, "dispatcher:far", NOW, seconds=30, holder="other:7:cc")
    row = _claimed_row(runtime, "far", "dispatcher:far")
    register_dispatcher(runtime.engine, "dispatcher:mine", NOW, seconds=300)
    sender = FakeSender()
    # Another host's worker cannot be checked: it counts until its registration lapses (30 s).
    assert forget_dead_dispatchers(runtime.engine, "dispatcher:mine") == 0
    assert _dispatcher(runtime, sender).run_once(now=NOW + timedelta(seconds=29)).claimed == 0
    stats = _dispatcher(runtime, sender).run_once(now=NOW + timedelta(seconds=31))
    assert stats.sent == 1
    assert _status(runtime, row) == "sent"  # 31 s, where the row's own lease had 88 s left


def test_a_dispatcher_writes_its_name_on_its_claims(settings) -> None:
    runtime = Runtime(settings)
    register_dispatcher(runtime.engine, "dispatcher:mine", NOW, seconds=30)
    with write_session(runtime.engine) as session:
        contact, _ = get_or_create_contact(session, runtime.vault, "tel:+22370000002", now=NOW)
        outbox_id = enqueue(
            session, channel="sms", idempotency_key="n", body="x", contact_id=contact.id, now=NOW
        ).id

    def look(message) -> str:
        with Session(runtime.engine) as session:
            seen.append(session.get(Outbox, outbox_id).claimed_by)
        return "SM1"

    seen: list[str | None] = []
    _dispatcher(runtime, FakeSender(behaviour=look)).run_once(now=NOW)
    assert seen == ["dispatcher:mine"]
