"""Quiet hours in the dispatcher: a survey's outbox rows go out only inside its window.

A wave longer than its window (166,000 SMS at one a second last two days) stops at the close and
goes on at the next opening, each row once and in order, while a citizen's reply at night goes
at once. On SQLite and PostgreSQL; the passes read the date, so the clock is fixed
(time-machine) and moved across the close and the next opening, as the worker's one-second
passes would see it; the rate-limit buckets run on a fake monotonic clock moved a second a pass.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import time_machine
from sqlmodel import Session, select

from citoyen.channels.base import OutboundMessage, SendResult, TransientSendError
from citoyen.db import write_session
from citoyen.models import Outbox
from citoyen.runtime import Runtime
from citoyen.services.contacts import get_or_create_contact
from citoyen.services.dispatch import Dispatcher
from citoyen.services.outbox import enqueue_many, queued_row
from citoyen.services.quiet_hours import spec
from citoyen.services.sendtime import estimate
from tests.services.test_dispatch import FakeClock, dispatch_together

BAMAKO = ZoneInfo("Africa/Bamako")  # UTC+0 all year
WINDOW = spec((time(8, 0), time(20, 0)), BAMAKO)  # "08:00-20:00 Africa/Bamako"
WAVE_DUE = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)  # Saturday: the run's opening
CLOSE = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)
OPENING = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


class RecordingSender:
    """Records each send with the (fixed) wall clock's time; ``fail`` makes some sends fail."""

    channel = "sms"

    def __init__(self, fail: set[int] | None = None) -> None:
        self.sent: list[tuple[int, datetime]] = []
        self.fail = set(fail or ())
        self.lock = threading.Lock()

    def send(self, message: OutboundMessage) -> SendResult:
        if message.outbox_id in self.fail:
            self.fail.discard(message.outbox_id)
            raise TransientSendError("twilio 503: try later")
        with self.lock:
            self.sent.append((message.outbox_id, datetime.now(UTC)))
        return SendResult(provider_id=f"SM{message.outbox_id:032d}")

    def ids(self) -> list[int]:
        return [outbox_id for outbox_id, _at in self.sent]


@pytest.fixture
def runtime(settings) -> Runtime:  # type: ignore[no-untyped-def]
    return Runtime(settings)


def contacts(runtime: Runtime, count: int) -> list[int]:
    with write_session(runtime.engine) as session:
        found = [
            get_or_create_contact(session, runtime.vault, f"tel:+2237620{i:04d}", WAVE_DUE)[0]
            for i in range(count)
        ]
        session.flush()
        return [c.id for c in found if c.id is not None]


def queue(
    runtime: Runtime,
    contact_ids: list[int],
    count: int,
    *,
    kind: str = "survey",
    quiet_hours: str | None = WINDOW,
    due: datetime = WAVE_DUE,
) -> list[int]:
    """``count`` rows, round the contacts, as a survey run queues its invitations; their ids."""
    rows = [
        queued_row(
            channel="sms",
            idempotency_key=f"{kind}:{due.isoformat()}:{i}",
            body=f"message {i}",
            contact_id=contact_ids[i % len(contact_ids)],
            kind=kind,
            now=min(due, WAVE_DUE),
            send_at=due,
            quiet_hours=quiet_hours,
        )
        for i in range(count)
    ]
    with write_session(runtime.engine) as session:
        enqueue_many(session, rows)
        keys = [r["idempotency_key"] for r in rows]
        found = session.exec(select(Outbox.id).where(Outbox.idempotency_key.in_(keys))).all()
    return sorted(found)


def rows(runtime: Runtime, ids: list[int]) -> list[Outbox]:
    with Session(runtime.engine) as session:
        return list(session.exec(select(Outbox).where(Outbox.id.in_(ids)).order_by(Outbox.id)))


@contextmanager
def outbox_updates(runtime: Runtime) -> Iterator[list[str]]:
    """The UPDATE statements on the outbox run meanwhile."""
    updates: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("UPDATE OUTBOX"):
            updates.append(statement)

    sa.event.listen(runtime.engine, "before_cursor_execute", seen)
    try:
        yield updates
    finally:
        sa.event.remove(runtime.engine, "before_cursor_execute", seen)


def passes(dispatcher: Dispatcher, clock: FakeClock, traveller, start: datetime, seconds: int):
    """The worker's passes, one a second from ``start`` for ``seconds`` seconds."""
    for second in range(seconds):
        traveller.move_to(start + timedelta(seconds=second))
        clock.advance(1.0)
        dispatcher.run_once()


def test_a_wave_stops_at_the_close_and_goes_on_at_the_next_opening(runtime: Runtime) -> None:
    """20 survey SMS at one a second, from ten seconds before the close: ten go before 20:00,
    none in the night, the other ten from 08:00, each once and in order; a reply at 23:00 goes
    at 23:00. The estimate made at the start said when the last one would be done."""
    wave = queue(runtime, contacts(runtime, 4), 20)
    start = CLOSE - timedelta(seconds=10)
    with Session(runtime.engine) as session:
        [sms] = estimate(session, runtime.settings, start)
    assert sms.finishes_at == OPENING + timedelta(seconds=10)  # 10 before the close, 10 after
    sender, clock = RecordingSender(), FakeClock()
    dispatcher = Dispatcher(runtime, {"sms": sender}, clock=clock)  # SMS: one a second
    night = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as traveller:
        passes(dispatcher, clock, traveller, start, 10)  # 19:59:50 to 19:59:59
        assert sender.ids() == wave[:10]

        traveller.move_to(CLOSE)
        clock.advance(1.0)
        stats = dispatcher.run_once()  # 20:00:00: the window is closed
        assert (stats.sent, stats.held) == (0, 10)
        later = rows(runtime, wave[10:])
        assert {(r.status, r.attempts, r.next_attempt_at) for r in later} == {
            ("pending", 0, OPENING)
        }
        # The rest of the night's passes find nothing due: they write nothing.
        with outbox_updates(runtime) as updates:
            passes(dispatcher, clock, traveller, CLOSE + timedelta(seconds=1), 20)
        assert updates == []

        # A citizen writes at 23:00: the reply is no survey message, it goes at once.
        contact_id = later[0].contact_id
        assert contact_id is not None
        [reply] = queue(runtime, [contact_id], 1, kind="reply", quiet_hours=None, due=night)
        passes(dispatcher, clock, traveller, night, 3)
        assert sender.ids() == [*wave[:10], reply]
        with outbox_updates(runtime) as updates:
            passes(dispatcher, clock, traveller, datetime(2026, 11, 29, 3, 0, tzinfo=UTC), 3)
        assert updates == []

        passes(dispatcher, clock, traveller, OPENING - timedelta(seconds=5), 5)  # 07:59:55
        assert len(sender.sent) == 11
        passes(dispatcher, clock, traveller, OPENING, 15)  # 08:00:00 to 08:00:14

    assert sender.ids() == [*wave[:10], reply, *wave[10:]]  # in order
    assert set(Counter(sender.ids()).values()) == {1}  # each once
    at = dict(sender.sent)
    assert all(at[i] < CLOSE for i in wave[:10])
    assert at[reply] == night
    assert [at[i] for i in wave[10:]] == [OPENING + timedelta(seconds=s) for s in range(10)]
    assert {r.status for r in rows(runtime, wave)} == {"sent"}
    # The estimate's end is the moment after the last send, at one a second.
    assert sms.finishes_at == at[wave[-1]] + timedelta(seconds=1)


def test_the_window_is_read_in_the_surveys_time_zone(runtime: Runtime) -> None:
    """08:00-20:00 in Lagos (UTC+1): 19:30 UTC is 20:30 there, closed until 07:00 UTC."""
    lagos = spec((time(8, 0), time(20, 0)), ZoneInfo("Africa/Lagos"))
    wave = queue(runtime, contacts(runtime, 1), 3, quiet_hours=lagos)
    sender = RecordingSender()
    dispatcher = Dispatcher(runtime, {"sms": sender}, channel_limits={})
    stats = dispatcher.run_once(datetime(2026, 11, 28, 19, 30, tzinfo=UTC))
    assert (stats.sent, stats.held) == (0, 3)
    opening = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)
    assert {r.next_attempt_at for r in rows(runtime, wave)} == {opening}
    assert dispatcher.run_once(opening - timedelta(seconds=1)).sent == 0
    assert dispatcher.run_once(opening).sent == 3
    assert sender.ids() == wave


def test_a_send_claimed_before_the_close_waits_for_the_opening(runtime: Runtime) -> None:
    """Two rows claimed at 19:59:59.5 for one recipient; the first send takes a second: the
    second would start after the close, so it is put back untouched, due at the opening."""
    first, second = queue(runtime, contacts(runtime, 1), 2)
    clock = FakeClock()

    class Slow(RecordingSender):
        def send(self, message: OutboundMessage) -> SendResult:
            clock.advance(1.0)
            return super().send(message)

    sender = Slow()
    dispatcher = Dispatcher(runtime, {"sms": sender}, channel_limits={}, clock=clock)
    stats = dispatcher.run_once(CLOSE - timedelta(seconds=0.5))
    assert (stats.claimed, stats.sent, stats.held) == (2, 1, 1)
    [held] = rows(runtime, [second])
    assert (held.status, held.attempts, held.next_attempt_at) == ("pending", 0, OPENING)
    assert dispatcher.run_once(OPENING).sent == 1
    assert [i for i, _at in sender.sent] == [first, second]


def test_a_retry_or_a_lost_claim_at_night_waits_for_the_opening(runtime: Runtime) -> None:
    """A send that fails just before the close is retried 10 s later, in the night: held. A row
    whose dispatcher died while sending it is found after the close: held too, not re-sent."""
    failing, lost, other = queue(runtime, contacts(runtime, 3), 3)
    with write_session(runtime.engine) as session:
        row = session.get_one(Outbox, lost)
        row.status, row.attempts = "sending", 1
        row.locked_until = CLOSE + timedelta(minutes=1)  # its dispatcher's lease, lapsed at night
    sender = RecordingSender(fail={failing})
    dispatcher = Dispatcher(
        runtime, {"sms": sender}, channel_limits={}, clock=FakeClock(), rng=lambda: 0.5
    )
    stats = dispatcher.run_once(CLOSE - timedelta(seconds=5))
    assert (stats.sent, stats.retried) == (1, 1)  # "other" went; "failing" retries at 20:00:05
    [retry] = rows(runtime, [failing])
    assert retry.next_attempt_at == CLOSE + timedelta(seconds=5)
    stats = dispatcher.run_once(CLOSE + timedelta(minutes=5))
    assert (stats.sent, stats.held) == (0, 2)
    found = {
        r.id: (r.status, r.attempts, r.next_attempt_at) for r in rows(runtime, [failing, lost])
    }
    assert found == {failing: ("pending", 1, OPENING), lost: ("pending", 1, OPENING)}
    assert dispatcher.run_once(OPENING).sent == 2
    # The two held rows go in one pass to two contacts, sent in parallel: no order between them.
    sent = sender.ids()
    assert sent[0] == other and sorted(sent[1:]) == sorted([failing, lost])
    assert {r.attempts for r in rows(runtime, [failing, lost])} == {2}


def test_two_dispatchers_hold_a_wave_and_send_it_once(runtime: Runtime) -> None:
    """Two workers at night: the replies go once, the wave waits; at the opening the two send
    the wave together, each row once."""
    people = contacts(runtime, 10)
    wave = queue(runtime, people, 300)
    night = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
    replies = queue(runtime, people, 5, kind="reply", quiet_hours=None, due=night)
    sender = RecordingSender()
    dispatch_together(runtime, {"sms": sender}, night + timedelta(seconds=1))
    assert sorted(sender.ids()) == replies
    assert {r.next_attempt_at for r in rows(runtime, wave)} == {OPENING}
    dispatch_together(runtime, {"sms": sender}, OPENING)
    counts = Counter(sender.ids())
    assert sorted(counts) == sorted(wave + replies) and set(counts.values()) == {1}
