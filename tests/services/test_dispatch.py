"""The outbox dispatcher: sends, retries, failures, opt-out, consent, leases, concurrency, rates.

Every test runs on SQLite and PostgreSQL (the ``settings`` fixture). Time is injected: ``now`` for
database timestamps and a fake monotonic clock for rate limits, so no test sleeps.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from citoyen.channels.base import (
    OutboundMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)
from citoyen.db import write_session
from citoyen.models import Contact, Outbox
from citoyen.runtime import Runtime
from citoyen.services import dispatch as dispatch_module
from citoyen.services.contacts import get_or_create_contact
from citoyen.services.dispatch import (
    BACKOFF_CAP_SECONDS,
    MAX_ATTEMPTS,
    Dispatcher,
    RateLimit,
    backoff_seconds,
    dispatch_once,
)
from citoyen.services.outbox import enqueue

NOW = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
NUMBER = "+22376000101"


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakeSender:
    """Records every send; ``behaviour(message)`` may raise or return a provider id."""

    def __init__(
        self, channel: str = "sms", behaviour: Callable[[OutboundMessage], str] | None = None
    ) -> None:
        self.channel = channel
        self.behaviour = behaviour
        self.sent: list[OutboundMessage] = []
        self.lock = threading.Lock()

    def send(self, message: OutboundMessage) -> SendResult:
        with self.lock:
            self.sent.append(message)
        if self.behaviour is not None:
            return SendResult(provider_id=self.behaviour(message))
        return SendResult(provider_id=f"SM{message.outbox_id:032d}")

    def counts(self) -> Counter:
        return Counter(m.outbox_id for m in self.sent)


@pytest.fixture
def runtime(settings) -> Runtime:
    return Runtime(settings)


def make_contact(runtime: Runtime, number: str = NUMBER, **fields) -> int:
    with write_session(runtime.engine) as session:
        contact, _ = get_or_create_contact(session, runtime.vault, number, NOW)
        for name, value in fields.items():
            setattr(contact, name, value)
        session.flush()
        return contact.id


def queue(
    runtime: Runtime,
    contact_id: int | None,
    key: str,
    *,
    channel: str = "sms",
    kind: str = "reply",
    body: str = "Votre signalement est reçu.",
    now: datetime = NOW,
    address: str | None = None,
) -> int:
    with write_session(runtime.engine) as session:
        row = enqueue(
            session,
            channel=channel,
            idempotency_key=key,
            body=body,
            contact_id=contact_id,
            address_enc=runtime.vault.encrypt(address) if address else None,
            kind=kind,
            now=now,
        )
        session.flush()
        return row.id


def row(runtime: Runtime, outbox_id: int) -> Outbox:
    with Session(runtime.engine) as session:
        return session.get(Outbox, outbox_id)


def contact(runtime: Runtime, contact_id: int) -> Contact:
    with Session(runtime.engine) as session:
        return session.get(Contact, contact_id)


def dispatcher(runtime: Runtime, sender: FakeSender, clock: FakeClock | None = None, **kw):
    kw.setdefault("rng", lambda: 0.5)  # no jitter: delays are exact
    return Dispatcher(runtime, {sender.channel: sender}, clock=clock or FakeClock(), **kw)


# --- sending ---------------------------------------------------------------------------------


def test_due_rows_are_sent_with_the_decrypted_address_and_provider_id(runtime) -> None:
    cid = make_contact(runtime)
    first = queue(runtime, cid, "a")
    later = queue(runtime, cid, "b", now=NOW + timedelta(minutes=5))
    sender = FakeSender()

    stats = dispatcher(runtime, sender).run_once(now=NOW)

    assert (stats.claimed, stats.sent) == (1, 1)
    [message] = sender.sent
    assert message.outbox_id == first
    assert message.address == f"tel:{NUMBER}"
    assert message.body == "Votre signalement est reçu."
    sent = row(runtime, first)
    assert sent.status == "sent"
    assert sent.provider_id == f"SM{first:032d}"
    assert sent.sent_at == NOW
    assert sent.attempts == 1
    assert sent.locked_until is None
    assert row(runtime, later).status == "pending"
    # Sent rows are not sent again; the later one goes when it is due.
    assert dispatcher(runtime, sender).run_once(now=NOW + timedelta(hours=1)).sent == 1
    assert sender.counts() == {first: 1, later: 1}


def test_rows_without_contact_go_to_their_own_encrypted_address(runtime) -> None:
    oid = queue(runtime, None, "alert-1", kind="alert", address="tel:+22366000001")
    sender = FakeSender()
    dispatcher(runtime, sender).run_once(now=NOW)
    assert [m.address for m in sender.sent] == ["tel:+22366000001"]
    assert row(runtime, oid).status == "sent"


# --- retries -----------------------------------------------------------------------------------


def test_transient_errors_back_off_exponentially_then_fail(runtime) -> None:
    cid = make_contact(runtime)
    oid = queue(runtime, cid, "a")

    def flaky(message: OutboundMessage) -> str:
        raise TransientSendError("twilio 503: service unavailable", code=503)

    sender = FakeSender(behaviour=flaky)
    d = dispatcher(runtime, sender, channel_limits={})
    now = NOW
    delays = []
    for attempt in range(1, MAX_ATTEMPTS):
        stats = d.run_once(now=now)
        assert stats.retried == 1, f"attempt {attempt}: {stats}"
        r = row(runtime, oid)
        assert (r.status, r.attempts) == ("pending", attempt)
        assert "503" in r.error
        delays.append((r.next_attempt_at - now).total_seconds())
        # Not due a second before its time.
        assert d.run_once(now=r.next_attempt_at - timedelta(seconds=1)).claimed == 0
        now = r.next_attempt_at
    assert delays == [10, 20, 40, 80, 160, 320, 640]
    stats = d.run_once(now=now)
    assert stats.failed == 1
    r = row(runtime, oid)
    assert (r.status, r.attempts) == ("failed", MAX_ATTEMPTS)
    assert f"gave up after {MAX_ATTEMPTS} attempts" in r.error
    assert len(sender.sent) == MAX_ATTEMPTS
    assert d.run_once(now=now + timedelta(days=1)).claimed == 0


def test_retry_after_is_honoured(runtime) -> None:
    oid = queue(runtime, make_contact(runtime), "a")

    def limited(message: OutboundMessage) -> str:
        raise TransientSendError("429 too many requests", code=429, retry_after=300)

    dispatcher(runtime, FakeSender(behaviour=limited)).run_once(now=NOW)
    assert row(runtime, oid).next_attempt_at == NOW + timedelta(seconds=300)


def test_backoff_jitter_and_cap() -> None:
    assert backoff_seconds(1, lambda: 0.0) == pytest.approx(8.0)
    assert backoff_seconds(1, lambda: 1.0) == pytest.approx(12.0)
    assert backoff_seconds(3, lambda: 0.5) == pytest.approx(40.0)
    assert backoff_seconds(30, lambda: 1.0) == BACKOFF_CAP_SECONDS
    assert backoff_seconds(1, lambda: 0.5, retry_after=7200) == 7200


def test_a_sender_bug_is_retried_and_does_not_stop_other_rows(runtime) -> None:
    cid = make_contact(runtime)
    bad = queue(runtime, cid, "bad")
    good = queue(runtime, cid, "good")

    def buggy(message: OutboundMessage) -> str:
        if message.outbox_id == bad:
            raise KeyError("oops")
        return "SM-good"

    stats = dispatcher(runtime, FakeSender(behaviour=buggy), channel_limits={}).run_once(now=NOW)
    assert (stats.sent, stats.retried) == (1, 1)
    assert row(runtime, bad).status == "pending"
    assert row(runtime, good).status == "sent"


# --- permanent failures and opt-out ------------------------------------------------------------


def test_permanent_error_fails_the_row_with_the_provider_code(runtime) -> None:
    cid = make_contact(runtime)
    oid = queue(runtime, cid, "a")

    def invalid(message: OutboundMessage) -> str:
        raise PermanentSendError("twilio 21211: invalid 'To' number", code=21211)

    stats = dispatcher(runtime, FakeSender(behaviour=invalid)).run_once(now=NOW)
    assert stats.failed == 1
    r = row(runtime, oid)
    assert r.status == "failed"
    assert "21211" in r.error
    assert contact(runtime, cid).opted_out is False
    assert dispatcher(runtime, FakeSender()).run_once(now=NOW + timedelta(days=1)).claimed == 0


def test_provider_opt_out_opts_the_contact_out_and_later_surveys_are_skipped(runtime) -> None:
    cid = make_contact(runtime, survey_consent=True)
    first = queue(runtime, cid, "notif-1", kind="notification")

    def unsubscribed(message: OutboundMessage) -> str:
        raise PermanentSendError("twilio 21610: unsubscribed recipient", code=21610, opt_out=True)

    dispatcher(runtime, FakeSender(behaviour=unsubscribed)).run_once(now=NOW)
    assert row(runtime, first).status == "failed"
    assert "21610" in row(runtime, first).error
    c = contact(runtime, cid)
    assert (c.opted_out, c.survey_consent) == (True, False)

    survey = queue(runtime, cid, "survey-1", kind="survey", now=NOW + timedelta(seconds=1))
    reply = queue(runtime, cid, "reply-1", kind="reply", now=NOW + timedelta(seconds=1))
    sender = FakeSender()
    stats = dispatcher(runtime, sender, channel_limits={}).run_once(now=NOW + timedelta(seconds=2))
    assert (stats.skipped, stats.sent) == (1, 1)
    assert [m.outbox_id for m in sender.sent] == [reply]
    assert row(runtime, survey).status == "skipped"
    assert "opted out" in row(runtime, survey).error


@pytest.mark.parametrize("flag", ["opted_out", "blocked"])
def test_unsolicited_rows_to_refusing_contacts_are_skipped_replies_and_alerts_go(
    runtime, flag
) -> None:
    cid = make_contact(runtime, **{flag: True})
    ids = {kind: queue(runtime, cid, kind, kind=kind) for kind in ("survey", "notification")}
    ids |= {kind: queue(runtime, cid, kind, kind=kind) for kind in ("reply", "alert")}
    sender = FakeSender()
    stats = dispatcher(runtime, sender, channel_limits={}).run_once(now=NOW)
    assert (stats.skipped, stats.sent) == (2, 2)
    assert sorted(m.outbox_id for m in sender.sent) == sorted([ids["reply"], ids["alert"]])
    for kind in ("survey", "notification"):
        r = row(runtime, ids[kind])
        assert r.status == "skipped"
        assert r.attempts == 0
        assert ("blocked" if flag == "blocked" else "opted out") in r.error


# --- leases ------------------------------------------------------------------------------------


def _stick(runtime: Runtime, oid: int, locked_until: datetime, attempts: int = 1) -> None:
    """Leave a row as a dispatcher that died mid-send would."""
    with write_session(runtime.engine) as session:
        r = session.get(Outbox, oid)
        r.status, r.locked_until, r.attempts = "sending", locked_until, attempts


def test_a_row_stuck_in_sending_is_claimed_again_once_its_lease_expired(runtime) -> None:
    cid = make_contact(runtime)
    oid = queue(runtime, cid, "a")
    _stick(runtime, oid, NOW + timedelta(seconds=30))
    sender = FakeSender()
    assert dispatcher(runtime, sender).run_once(now=NOW).claimed == 0  # lease still held
    stats = dispatcher(runtime, sender).run_once(now=NOW + timedelta(seconds=31))
    assert stats.sent == 1
    r = row(runtime, oid)
    assert (r.status, r.attempts) == ("sent", 2)


def test_a_row_stuck_after_its_last_attempt_fails(runtime) -> None:
    oid = queue(runtime, make_contact(runtime), "a")
    _stick(runtime, oid, NOW - timedelta(seconds=1), attempts=MAX_ATTEMPTS)
    sender = FakeSender()
    assert dispatcher(runtime, sender).run_once(now=NOW).failed == 1
    assert sender.sent == []
    assert row(runtime, oid).status == "failed"


def test_claim_is_committed_before_the_provider_is_called(runtime) -> None:
    oid = queue(runtime, make_contact(runtime), "a")
    seen = {}

    def look(message: OutboundMessage) -> str:
        # Another connection sees the claim while the provider call is in progress.
        r = row(runtime, message.outbox_id)
        seen.update(status=r.status, attempts=r.attempts, locked_until=r.locked_until)
        return "SM1"

    dispatcher(runtime, FakeSender(behaviour=look)).run_once(now=NOW)
    assert seen["status"] == "sending"
    assert seen["attempts"] == 1
    assert seen["locked_until"] == NOW + timedelta(seconds=dispatch_module.LEASE_SECONDS)
    assert row(runtime, oid).status == "sent"


def test_a_dispatcher_that_lost_its_lease_does_not_overwrite_the_new_claim(runtime) -> None:
    oid = queue(runtime, make_contact(runtime), "a")

    def slow(message: OutboundMessage) -> str:
        # Meanwhile the lease expired and another dispatcher claimed the row again.
        with write_session(runtime.engine) as session:
            r = session.get(Outbox, message.outbox_id)
            r.attempts += 1
        return "SM-late"

    stats = dispatcher(runtime, FakeSender(behaviour=slow)).run_once(now=NOW)
    assert (stats.sent, stats.lease_lost) == (0, 1)
    r = row(runtime, oid)
    assert (r.status, r.attempts, r.provider_id) == ("sending", 2, None)


def test_no_send_starts_when_the_lease_is_nearly_over(runtime) -> None:
    cid = make_contact(runtime)
    a, b = queue(runtime, cid, "a"), queue(runtime, cid, "b")
    clock = FakeClock()

    def very_slow(message: OutboundMessage) -> str:
        clock.advance(dispatch_module.LEASE_SECONDS)  # this call took the whole lease
        return "SM-slow"

    sender = FakeSender(behaviour=very_slow)
    stats = dispatcher(runtime, sender, clock, channel_limits={}).run_once(now=NOW)
    assert (stats.sent, stats.deferred) == (1, 1)
    assert [m.outbox_id for m in sender.sent] == [a]
    r = row(runtime, b)
    assert (r.status, r.attempts, r.locked_until) == ("pending", 0, None)


def test_the_results_of_a_pass_are_written_together(runtime) -> None:
    """One transaction records a pass of fast sends: not one per message (docs/performance.md)."""
    cid = make_contact(runtime)
    ids = [queue(runtime, cid, f"k{n}") for n in range(20)]
    updates: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("UPDATE OUTBOX"):
            updates.append(statement)

    sa.event.listen(runtime.engine, "before_cursor_execute", count)
    try:
        stats = dispatcher(runtime, FakeSender(), channel_limits={}).run_once(now=NOW)
    finally:
        sa.event.remove(runtime.engine, "before_cursor_execute", count)
    assert stats.sent == 20
    assert len(updates) <= 2  # the claim, the results (each one executemany)
    assert {row(runtime, i).status for i in ids} == {"sent"}
    assert [row(runtime, i).provider_id for i in ids] == [f"SM{i:032d}" for i in ids]


def test_results_wait_at_most_a_second_before_they_are_written(runtime) -> None:
    cid = make_contact(runtime)
    a, b, c = (queue(runtime, cid, key) for key in "abc")
    clock = FakeClock()
    seen: dict[int, str] = {}

    def slowish(message: OutboundMessage) -> str:
        seen[message.outbox_id] = row(runtime, a).status  # what another process sees of a
        clock.advance(1.0)
        return f"SM{message.outbox_id}"

    sender = FakeSender(behaviour=slowish)
    # One send at a time, so that "before c's send" is a moment (sends in parallel: below).
    d = dispatcher(runtime, sender, clock, channel_limits={}, max_in_flight=1)
    stats = d.run_once(now=NOW)
    assert stats.sent == 3
    # a's result waited during b's send (1 s), and was written before c's.
    assert seen == {a: "sending", b: "sending", c: "sent"}
    assert {row(runtime, i).status for i in (a, b, c)} == {"sent"}


def test_results_are_written_even_when_the_pass_breaks_off(runtime, monkeypatch) -> None:
    cid = make_contact(runtime)
    a, b = queue(runtime, cid, "a"), queue(runtime, cid, "b")
    d = dispatcher(runtime, FakeSender(), channel_limits={})
    real_deliver = d._deliver

    def deliver(claim, current, results) -> None:
        if claim.id == b:
            raise RuntimeError("the process is being stopped")
        real_deliver(claim, current, results)

    monkeypatch.setattr(d, "_deliver", deliver)
    with pytest.raises(RuntimeError):
        d.run_once(now=NOW)
    assert row(runtime, a).status == "sent"  # a was sent: its result is not lost
    assert row(runtime, b).status == "sending"  # b's lease expires and it is sent later


# --- concurrency -------------------------------------------------------------------------------


def dispatch_together(runtime: Runtime, senders: dict, now: datetime, dispatchers: int = 2) -> None:
    """``dispatchers`` dispatchers (no rate limit) started at once, each passing (7 rows at most
    a pass) until it claims nothing; fails on any error of theirs."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(dispatchers)

    def work() -> None:
        d = Dispatcher(runtime, senders, channel_limits={})
        try:
            barrier.wait()
            while d.run_once(now=now, limit=7).claimed:
                pass
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(dispatchers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors


def test_two_dispatchers_at_once_never_send_a_row_twice(runtime) -> None:
    cid = make_contact(runtime)
    with write_session(runtime.engine) as session:
        ids = [
            enqueue(session, channel="sms", idempotency_key=f"k{n}", body=f"m{n}", contact_id=cid)
            for n in range(200)
        ]
        session.flush()
        ids = [r.id for r in ids]
    sender = FakeSender()
    dispatch_together(runtime, {"sms": sender}, datetime.now(UTC) + timedelta(seconds=1))
    counts = sender.counts()
    assert sorted(counts) == sorted(ids)
    assert set(counts.values()) == {1}
    with Session(runtime.engine) as session:
        statuses = Counter(r.status for r in session.exec(select(Outbox)).all())
    assert statuses == {"sent": 200}


# --- rate limits -------------------------------------------------------------------------------


def test_sms_rate_limit_holds_across_passes(runtime) -> None:
    cid = make_contact(runtime)
    ids = [queue(runtime, cid, f"k{n}") for n in range(5)]
    clock = FakeClock()
    sender = FakeSender()
    d = dispatcher(runtime, sender, clock)  # default limits: SMS 1 message/s

    assert d.run_once(now=NOW).sent == 1
    again = d.run_once(now=NOW)
    assert (again.claimed, again.sent) == (0, 0)  # nothing claimed just to be put back
    assert row(runtime, ids[1]).attempts == 0
    clock.advance(0.5)
    assert d.run_once(now=NOW).sent == 0
    clock.advance(0.5)
    assert d.run_once(now=NOW).sent == 1
    clock.advance(10)  # the bucket holds one token at most: no burst after a quiet spell
    assert d.run_once(now=NOW).sent == 1
    assert [m.outbox_id for m in sender.sent] == ids[:3]


def test_dispatchers_share_the_provider_limits(runtime) -> None:
    """Two workers dispatching: each sends at half the rate, so together they keep to it."""
    cid = make_contact(runtime)
    ids = [queue(runtime, cid, f"k{n}") for n in range(8)]
    clock = FakeClock()
    sender = FakeSender()
    d = dispatcher(runtime, sender, clock, channel_limits={"sms": RateLimit(2.0, 2.0)})
    assert d.run_once(now=NOW).sent == 2  # alone: the whole burst
    d.set_share(2)
    clock.advance(1.0)
    assert d.run_once(now=NOW).sent == 1  # one of two: burst and rate halved
    clock.advance(0.5)
    assert d.run_once(now=NOW).sent == 0
    clock.advance(0.5)
    assert d.run_once(now=NOW).sent == 1
    d.set_share(1)  # the other worker is gone: the whole limit again
    clock.advance(1.0)
    assert d.run_once(now=NOW).sent == 2
    assert [m.outbox_id for m in sender.sent] == ids[:6]


def test_telegram_limits_overall_and_per_chat(runtime) -> None:
    contacts = [make_contact(runtime, f"telegram:{1000 + n}") for n in range(30)]
    chatty = contacts[0]
    ids = [queue(runtime, c, f"t{n}", channel="telegram") for n, c in enumerate(contacts)]
    extra = [queue(runtime, chatty, f"extra{n}", channel="telegram") for n in range(2)]
    clock = FakeClock()
    sender = FakeSender("telegram")
    d = dispatcher(runtime, sender, clock)  # default limits: 25/s overall, 1/s per chat

    stats = d.run_once(now=NOW)
    assert stats.sent == 25
    # The first 25 in queue order (chats are sent in parallel: their order among each other
    # is the threads', and only each chat's own order is promised).
    assert sorted(m.outbox_id for m in sender.sent) == ids[:25]
    assert all(row(runtime, i).status == "pending" for i in ids[25:] + extra)

    clock.advance(1)
    stats = d.run_once(now=NOW + timedelta(seconds=1))
    # The five other chats, plus one more message for the chatty chat (1/s)...
    assert stats.sent == 6
    assert sorted(m.outbox_id for m in sender.sent[25:]) == sorted([*ids[25:], extra[0]])
    # ...whose next message waits for its chat's bucket, in order.
    assert row(runtime, extra[1]).status == "pending"
    clock.advance(1)
    assert d.run_once(now=NOW + timedelta(seconds=2)).sent == 1
    assert sender.sent[-1].outbox_id == extra[1]
    per_chat = Counter(m.address for m in sender.sent)
    assert per_chat["telegram:1000"] == 3


def test_a_busy_chat_does_not_hold_back_the_others(runtime) -> None:
    busy = make_contact(runtime, "telegram:1")
    busy_ids = [queue(runtime, busy, f"b{n}", channel="telegram") for n in range(10)]
    others = [make_contact(runtime, f"telegram:{2 + n}") for n in range(3)]
    other_ids = [queue(runtime, c, f"o{c}", channel="telegram") for c in others]
    clock = FakeClock()
    sender = FakeSender("telegram")
    d = dispatcher(runtime, sender, clock)
    # A pass that looks at five rows at most: the busy chat's ten come first in the queue.
    stats = d.run_once(now=NOW, limit=5)
    assert stats.sent == 4
    assert sorted(m.outbox_id for m in sender.sent) == sorted([busy_ids[0], *other_ids])
    # The busy chat's other rows were not touched: no attempt counted, still due, in order.
    for oid in busy_ids[1:]:
        r = row(runtime, oid)
        assert (r.status, r.attempts, r.next_attempt_at) == ("pending", 0, NOW)
    clock.advance(1)
    d.run_once(now=NOW, limit=5)
    assert [m.outbox_id for m in sender.sent][4:] == [busy_ids[1]]


def test_a_dispatcher_limited_to_some_channels_leaves_the_others(runtime) -> None:
    cid = make_contact(runtime)
    sms = queue(runtime, cid, "s")
    tg = queue(runtime, make_contact(runtime, "telegram:77"), "t", channel="telegram")
    sender = FakeSender("telegram")
    stats = Dispatcher(runtime, {"telegram": sender}, channels=("telegram",)).run_once(now=NOW)
    assert stats.sent == 1
    assert [m.outbox_id for m in sender.sent] == [tg]
    r = row(runtime, sms)
    assert (r.status, r.attempts) == ("pending", 0)


# --- senders -----------------------------------------------------------------------------------


def test_without_credentials_messages_go_to_the_log_channel_by_alias(runtime, caplog) -> None:
    cid = make_contact(runtime)
    oid = queue(runtime, cid, "a", body="Bonjour du service")
    alias = contact(runtime, cid).alias
    caplog.set_level(logging.DEBUG)
    stats = dispatch_once(runtime, now=NOW)
    assert stats.sent == 1
    r = row(runtime, oid)
    assert (r.status, r.provider_id) == ("sent", f"log-{oid}")
    line = f"outbox {oid} -> Citoyen {alias} via sms (log channel): Bonjour du service"
    assert line in caplog.messages
    digits = NUMBER.removeprefix("+")
    assert not [m for m in caplog.messages if digits in m or digits[3:] in m]


def test_registered_senders_are_used_and_unconfigured_ones_fall_back_to_the_log(
    runtime, monkeypatch, caplog
) -> None:
    pigeon = FakeSender("pigeon")
    runtime.register_sender("pigeon", lambda rt: pigeon)
    runtime.register_sender("smoke", lambda rt: None)  # e.g. no credentials
    cid = make_contact(runtime)
    p = queue(runtime, cid, "p", channel="pigeon")
    s = queue(runtime, cid, "s", channel="smoke")
    u = queue(runtime, cid, "u", channel="no-such-channel")
    caplog.set_level(logging.INFO)
    stats = dispatch_once(runtime, now=NOW)
    assert stats.sent == 3
    assert [m.outbox_id for m in pigeon.sent] == [p]
    assert row(runtime, s).provider_id == f"log-{s}"
    assert row(runtime, u).provider_id == f"log-{u}"
    assert any(
        f"outbox {u} -> Citoyen" in m and "via no-such-channel" in m for m in caplog.messages
    )


def test_sms_uses_twilio_when_configured(runtime) -> None:
    from citoyen.channels.sms import SmsSender, TwilioSmsProvider

    configured = Runtime(
        runtime.settings.model_copy(
            update={
                "twilio_account_sid": "AC" + "1" * 32,
                "twilio_auth_token": "secret",
                "twilio_from_number": "+22320200000",
                "public_url": "https://citoyen.example.ml/",
            }
        )
    )
    sender = Dispatcher(configured).sender_for("sms")
    assert isinstance(sender, SmsSender)
    assert isinstance(sender.provider, TwilioSmsProvider)
    assert sender.provider.status_callback == "https://citoyen.example.ml/twilio/status"
    from citoyen.services.log_sender import LogSender

    assert isinstance(Dispatcher(runtime).sender_for("sms"), LogSender)


def test_a_channel_keeps_a_second_of_its_rate_in_flight(runtime) -> None:
    """A rate of 10/s keeps 10 sends going at once: each send here (to ten citizens) waits until
    ten are in flight together, which one-at-a-time sending would never reach (the barrier
    breaks)."""
    cids = [make_contact(runtime, f"+2237650{n:04d}") for n in range(10)]
    ids = [queue(runtime, cid, f"p{n}") for n, cid in enumerate(cids)]
    together = threading.Barrier(10, timeout=10)

    def parallel(message: OutboundMessage) -> str:
        together.wait()
        return f"SM{message.outbox_id}"

    d = dispatcher(
        runtime, FakeSender(behaviour=parallel), channel_limits={"sms": RateLimit(10, 10)}
    )
    assert d.in_flight("sms") == 10
    try:
        stats = d.run_once(now=NOW)
    finally:
        d.close()
    assert (stats.sent, stats.retried) == (10, 0)
    assert {row(runtime, i).status for i in ids} == {"sent"}
    d.set_share(2)  # two workers: each keeps half the rate in flight
    assert d.in_flight("sms") == 5


def test_one_citizens_messages_go_one_after_the_other_in_order(runtime) -> None:
    """Sends run in parallel across citizens, never for one: the question must not overtake the
    text that leads to it, and a chat gets one message at a time."""
    cid = make_contact(runtime)
    ids = [queue(runtime, cid, f"o{n}") for n in range(6)]
    busy = threading.Lock()
    order: list[int] = []

    def one_at_a_time(message: OutboundMessage) -> str:
        assert busy.acquire(blocking=False), "two sends to one citizen at once"
        try:
            time.sleep(0.02)
            order.append(message.outbox_id)
        finally:
            busy.release()
        return f"SM{message.outbox_id}"

    d = dispatcher(
        runtime, FakeSender(behaviour=one_at_a_time), channel_limits={"sms": RateLimit(10, 10)}
    )
    try:
        stats = d.run_once(now=NOW)
    finally:
        d.close()
    assert (stats.sent, stats.retried) == (6, 0)
    assert order == ids


def test_a_paced_pass_sends_the_next_second_of_tokens_without_exceeding_the_rate(runtime) -> None:
    """With ``pace_seconds`` (the worker's) a pass takes what the bucket makes during the next
    second too, each send waiting for its token: 15 rows at 10/s with a burst of 10 all go in
    one pass, the last five a tenth of a second apart, never sooner."""
    cid = make_contact(runtime)
    ids = [queue(runtime, cid, f"paced{n}") for n in range(15)]
    times: list[float] = []

    def timed(message: OutboundMessage) -> str:
        times.append(time.monotonic())
        return f"SM{message.outbox_id}"

    d = Dispatcher(
        runtime,
        {"sms": FakeSender(behaviour=timed)},
        channel_limits={"sms": RateLimit(10, 10)},
        pace_seconds=1.0,
    )
    started = time.monotonic()
    try:
        stats = d.run_once(now=NOW)  # the rows' time; the buckets and pacing use the real clock
    finally:
        d.close()
    assert stats.sent == 15
    assert {row(runtime, i).status for i in ids} == {"sent"}
    assert max(times) - started >= 0.45  # 5 tokens at 10/s after the burst
