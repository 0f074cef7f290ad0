"""The outbox dispatcher: claims due outbox rows, sends them, records what happened.

Why it is shaped like this (details and guarantees in docs/outbox.md):

- **Claim, commit, then send.** Due rows are claimed in one short transaction (PostgreSQL:
  ``SELECT ... FOR UPDATE SKIP LOCKED``; SQLite: ``BEGIN IMMEDIATE`` via :func:`write_session`)
  and set to ``sending`` with a lease (``locked_until``) and ``attempts + 1``. That is committed
  before any provider is called, so two dispatchers never send one row, and no database lock is
  held while waiting on the network. A dispatcher that dies mid-send leaves a ``sending`` row
  whose lease expires; it is then claimed again (the providers we use have no idempotency key,
  so what it sent in its last quarter second and its sends in flight, see below, are sent
  twice: :func:`duplicate_bound`).
- **Results are written only by the lease holder**: the update is guarded by
  ``status = 'sending' AND attempts = <the claim's attempts>``, so a dispatcher that lost its lease
  cannot overwrite a newer claim.
- **Results are recorded together**, one transaction for the results of up to a quarter second
  of sends instead of one per message: a transaction per message was most of the dispatcher's
  CPU on PostgreSQL. They are written before the next send whenever a pending result has waited
  ``RECORD_EVERY_SECONDS``, and always within their lease (the claims of a pass share one lease
  end, and no send starts without ``send_margin`` of it left). A crash loses at most those
  results: the rows are sent again once the dead dispatcher's registration is gone or their
  lease expires.
- **Retries** use exponential back-off with jitter (10 s, x2, capped at 1 h, ``retry_after``
  honoured) for at most 8 attempts; permanent errors end the row as ``failed`` with the
  provider's code. A provider's opt-out (Twilio 21610, Telegram "bot was blocked") opts the
  contact out.
- **Consent**: to an opted-out or blocked contact only ``reply`` and ``alert`` rows still go;
  anything else (survey invitations, notifications...) is ``skipped`` with the reason.
- **Quiet hours** hold a survey's rows outside its window, which each row carries
  (``outbox.quiet_hours``, written when the survey queues it; empty for every other message, so
  replies, notices and alerts are never held). Why on the row and why at claim time: a wave of
  166,000 SMS at one a second lasts two days, so a window that was open when the wave was queued
  closes while it is sent; the claim already reads each due row, so checking the row's own
  window there costs a comparison, not a look-up of the survey per row. When a claim meets a row
  whose window is closed, it moves that row, and every other pending row of the same channel and
  window due before the next opening, to the opening in one statement (:data:`HOLD_CHUNK` rows
  at a time): the rest of the wave is then simply not due, so the night's passes neither scan nor
  touch it, and the claim goes on with the rows behind it (a citizen's reply at night is sent).
  Held rows are never dropped and keep their order: they are all due at the opening and go in
  the order of the queue (``next_attempt_at``, then id), before anything queued for the opening
  after them. A send about to start after the window closed (a claim made just before it) is
  put back the same way, untouched.
- **Rate limits** are token buckets per channel (and per recipient where the provider limits
  that, e.g. a Telegram chat), held in the dispatcher process: rows are only claimed as far as
  the channel's bucket allows, so nothing is claimed just to be put back.
- **Senders per channel** come from the runtime's sender factories (``runtime.sender_factories``,
  registered explicitly in :mod:`citoyen.runtime`); a channel with no sender (or a factory that
  returns None because credentials are missing) goes to the log channel, so no message is
  silently dropped.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from citoyen.channels.base import (
    OutboundMessage,
    PermanentSendError,
    Sender,
    TransientSendError,
)
from citoyen.db import write_session
from citoyen.models import Contact, Outbox, SchedulerLease
from citoyen.services.quiet_hours import next_allowed, parse

log = logging.getLogger(__name__)

# --- policy ------------------------------------------------------------------------------------

LEASE_SECONDS = 120.0
# A send is not started when less than this is left of the lease: a provider call (Twilio's HTTP
# timeout is 20 s) must finish before the lease can expire and another dispatcher re-claim it.
SEND_MARGIN_SECONDS = 30.0
BACKOFF_BASE_SECONDS = 10.0
BACKOFF_FACTOR = 2.0
BACKOFF_CAP_SECONDS = 3600.0
BACKOFF_JITTER = 0.2  # each delay is scaled by a random factor in [0.8, 1.2]
MAX_ATTEMPTS = 8
# Results wait at most this long (monotonic clock) before they are written together: bounds what
# a crash between sending and recording sends twice, while one pass of fast sends costs one
# transaction instead of one per message.
RECORD_EVERY_SECONDS = 0.25
# Sends in flight at once per channel: one second's worth of its rate (a rate of 50/s keeps up to
# 50 provider calls going, so 50 ms or 500 ms answers alike still make 50 sends a second), at
# most this many threads; a channel without a rate limit gets DEFAULT_IN_FLIGHT.
MAX_IN_FLIGHT = 64
DEFAULT_IN_FLIGHT = 8
# Every worker's dispatcher registers as ``dispatcher:<id>`` in scheduler_leases (citoyen.worker);
# a ``sending`` row whose ``claimed_by`` names no live registration is due again at once.
DISPATCHER_PREFIX = "dispatcher:"

# Sent to opted-out and blocked contacts all the same: an answer to the citizen's own message,
# and alerts to stakeholders. Everything else is unsolicited and skipped for them.
ALWAYS_SEND_KINDS = frozenset({"reply", "alert"})
# Rows moved to their window's opening by one statement when a claim finds the window closed,
# and statements per channel and pass: the first night of a wave of 166,000 holds 80,000 rows a
# pass, each statement short enough for the webhooks waiting on SQLite's write lock.
HOLD_CHUNK = 10_000
HOLD_ROUNDS = 8


@dataclass(frozen=True)
class RateLimit:
    """``rate`` messages per second on average, bursts of up to ``burst``."""

    rate: float
    burst: float = 1.0


DEFAULT_CHANNEL_LIMITS: dict[str, RateLimit] = {
    "sms": RateLimit(1.0, 1.0),  # Twilio: 1 message/s per long-code number
    "telegram": RateLimit(25.0, 25.0),  # Bot API: ~30 messages/s overall, keep headroom
}
DEFAULT_RECIPIENT_LIMITS: dict[str, RateLimit] = {
    "telegram": RateLimit(1.0, 1.0),  # Bot API: about one message per second per chat
}

# Optional Settings fields (messages per second) that override the defaults above.
SETTINGS_RATES = {
    ("channel", "sms"): "outbox_rate_sms",
    ("channel", "telegram"): "outbox_rate_telegram",
    ("recipient", "telegram"): "outbox_rate_telegram_chat",
}


def limits_from_settings(
    settings: Any,
) -> tuple[dict[str, RateLimit], dict[str, RateLimit]]:
    """Channel and per-recipient limits: the defaults, overridden by settings when present."""
    channel = dict(DEFAULT_CHANNEL_LIMITS)
    recipient = dict(DEFAULT_RECIPIENT_LIMITS)
    for (scope, name), attr in SETTINGS_RATES.items():
        value = getattr(settings, attr, None)
        if value is None:
            continue
        rate = float(value)
        target = channel if scope == "channel" else recipient
        target[name] = RateLimit(rate, max(1.0, rate))
    return channel, recipient


# --- token buckets -----------------------------------------------------------------------------


class TokenBucket:
    """A token bucket on an injected monotonic clock (tests never sleep)."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float]) -> None:
        if limit.rate <= 0 or limit.burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")
        self.limit = limit
        self.clock = clock
        self.tokens = float(limit.burst)
        self.updated = clock()

    def _refill(self) -> None:
        now = self.clock()
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.limit.burst, self.tokens + elapsed * self.limit.rate)
        self.updated = now

    def available(self, within: float = 0.0) -> int:
        """Whole tokens available now, and made in the next ``within`` seconds."""
        self._refill()
        return math.floor(self.tokens + within * self.limit.rate + 1e-9)

    def take(self) -> bool:
        self._refill()
        if self.tokens + 1e-9 >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait(self) -> float:
        """Seconds until one token is available (0 when one is)."""
        self._refill()
        return max(0.0, (1.0 - self.tokens) / self.limit.rate)

    def full(self) -> bool:
        self._refill()
        return self.tokens >= self.limit.burst


# --- the dispatcher ----------------------------------------------------------------------------


@dataclass
class DispatchStats:
    """What one pass did; the worker logs it when anything happened."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0
    deferred: int = 0  # claimed but put back untouched (recipient rate limit, lease too short)
    held: int = 0  # survey rows moved to their window's opening (quiet hours)
    lease_lost: int = 0

    def __bool__(self) -> bool:
        return any(vars(self).values())


@dataclass
class _Claim:
    """What a send needs, copied out of the claiming transaction."""

    id: int
    attempts: int
    channel: str
    kind: str
    idempotency_key: str
    contact_id: int | None
    address_enc: str | None
    body: str | None
    payload: dict[str, Any] = field(default_factory=dict)
    locked_until: datetime | None = None
    quiet_hours: str | None = None

    @property
    def recipient_key(self) -> str:
        return recipient_key(self.contact_id, self.address_enc)


@dataclass
class _Result:
    """What to write for one claim once its attempt is over, and which stat it counts toward."""

    claim: _Claim
    values: dict[str, Any]
    outcome: str  # a DispatchStats counter: sent, retried, failed or deferred
    opt_out_contact: bool = False
    decided_at: float = 0.0  # the dispatcher's monotonic clock


_OUTBOX = Outbox.__table__  # type: ignore[attr-defined]


def recipient_key(contact_id: int | None, address_enc: str | None) -> str:
    """Who a row goes to, for per-recipient rate limits (never the address in clear)."""
    if contact_id is not None:
        return f"contact:{contact_id}"
    digest = hashlib.sha256((address_enc or "").encode()).hexdigest()[:16]
    return f"address:{digest}"


def live_dispatchers(now: datetime) -> Any:
    """The registrations of the dispatchers alive at ``now`` (a subquery of names)."""
    return select(SchedulerLease.name).where(
        SchedulerLease.name.startswith(DISPATCHER_PREFIX), SchedulerLease.expires_at > now
    )


def _due(now: datetime) -> Any:
    """Rows to claim: pending and due, or ``sending`` with a lapsed lease, or claimed by a
    dispatcher whose registration is gone (it died: its restart removed it, or it lapsed)."""
    return sa.or_(
        sa.and_(Outbox.status == "pending", Outbox.next_attempt_at <= now),
        sa.and_(
            Outbox.status == "sending",
            Outbox.locked_until.is_not(None),
            sa.or_(
                Outbox.locked_until <= now,
                sa.and_(
                    Outbox.claimed_by.is_not(None),
                    Outbox.claimed_by.not_in(live_dispatchers(now)),
                ),
            ),
        ),
    )


def duplicate_bound(rate: float, answer_seconds: float) -> int:
    """At most how many messages one crash of a dispatcher sends twice, at ``rate`` sends a second
    with a provider answering in ``answer_seconds``: the sends whose results waited to be written
    (``RECORD_EVERY_SECONDS``), those in flight while they were written, and those in flight at
    the crash (docs/outbox.md, "Crash recovery")."""
    return math.ceil(rate * (RECORD_EVERY_SECONDS + 2 * answer_seconds)) + 1


def held_until(quiet_hours: str | None, now: datetime) -> datetime | None:
    """When a row with this window (``outbox.quiet_hours``) may go, if not at ``now``: its next
    opening. None: it may go now (inside its window, or it has none)."""
    if quiet_hours is None:
        return None
    try:
        window, zone = parse(quiet_hours)
    except (ValueError, KeyError):  # not written by citoyen: better sent than stuck
        log.warning("outbox: unreadable quiet hours %r, not held", quiet_hours)
        return None
    opening = next_allowed(now, window, zone)
    return None if opening == now else opening


def unsolicited_refusal(kind: str, contact: Contact | None) -> str | None:
    """Why a row of ``kind`` must not go to ``contact`` (None: it may go)."""
    if contact is None or kind in ALWAYS_SEND_KINDS:
        return None
    if contact.blocked:
        return "contact blocked"
    if contact.opted_out:
        return "contact opted out"
    return None


def backoff_seconds(
    attempts: int,
    rng: Callable[[], float] = random.random,
    *,
    base: float = BACKOFF_BASE_SECONDS,
    factor: float = BACKOFF_FACTOR,
    cap: float = BACKOFF_CAP_SECONDS,
    jitter: float = BACKOFF_JITTER,
    retry_after: float | None = None,
) -> float:
    """Delay before the next attempt after ``attempts`` failed ones.

    ``base * factor**(attempts-1)``, scaled by a random factor in ``[1-jitter, 1+jitter]`` (so
    rows that failed together do not retry together), capped at ``cap``; never less than the
    provider's ``retry_after``.
    """
    delay = base * factor ** max(0, attempts - 1)
    delay = min(cap, delay * (1.0 + jitter * (2.0 * rng() - 1.0)))
    if retry_after is not None:
        delay = max(delay, float(retry_after))
    return delay


class Dispatcher:
    """Sends the outbox for one runtime. Keep one per process: it owns the rate-limit buckets.

    ``name`` is the dispatcher's registration in ``scheduler_leases`` (a worker's
    ``dispatcher:<id>``), written on every row it claims so that its death releases them; None
    for an unregistered dispatcher, whose claims wait for their lease.
    ``max_in_flight`` caps the sends in flight per channel (1: one at a time, in claim order).
    ``pace_seconds``: a pass also claims the tokens its channel's bucket makes in that time and
    each send waits for its token, so that a worker passing every second sends at the full rate
    (without it a rate of 1/s sends every other pass: the token of the last send is not quite
    back a second later); 0 (the default): only what the bucket holds now.
    ``senders`` overrides the registry per channel (tests, the simulator). ``channels`` limits
    this dispatcher to those channels (the Telegram bot process delivers ``telegram`` rows only
    and leaves the rest to the worker); None means every channel. ``clock`` is a monotonic clock
    for buckets and elapsed time; ``rng`` feeds the back-off jitter.
    """

    def __init__(
        self,
        runtime: Any,
        senders: Mapping[str, Sender] | None = None,
        *,
        channels: Collection[str] | None = None,
        channel_limits: Mapping[str, RateLimit] | None = None,
        recipient_limits: Mapping[str, RateLimit] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        lease_seconds: float = LEASE_SECONDS,
        send_margin_seconds: float = SEND_MARGIN_SECONDS,
        max_attempts: int = MAX_ATTEMPTS,
        name: str | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
        pace_seconds: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.runtime = runtime
        self.name = name
        self.max_in_flight = max_in_flight
        self.pace = pace_seconds
        self.sleep = sleep
        self.engine = runtime.engine
        default_channel, default_recipient = limits_from_settings(runtime.settings)
        self.channel_limits = dict(default_channel if channel_limits is None else channel_limits)
        self.recipient_limits = dict(
            default_recipient if recipient_limits is None else recipient_limits
        )
        self.clock = clock
        self.rng = rng
        self.lease = timedelta(seconds=lease_seconds)
        self.send_margin = send_margin_seconds
        self.max_attempts = max_attempts
        self.channels = frozenset(channels) if channels is not None else None
        self._senders: dict[str, Sender] = dict(senders or {})
        self._buckets: dict[str, TokenBucket] = {}
        self._recipient_buckets: dict[tuple[str, str], TokenBucket] = {}
        self._share = 1.0
        self._bucket_lock = threading.Lock()  # buckets are taken by the sending threads
        self._pools: dict[str, tuple[int, ThreadPoolExecutor]] = {}

    # -- senders and buckets ------------------------------------------------------------------

    def sender_for(self, channel: str) -> Sender:
        sender = self._senders.get(channel)
        if sender is None:
            factory = self.runtime.sender_factories.get(channel)
            sender = factory(self.runtime) if factory is not None else None
            if sender is None:
                from citoyen.services.log_sender import LogSender

                sender = LogSender(self.engine, channel)
                log.info("no sender configured for channel %s: using the log channel", channel)
            self._senders[channel] = sender
        return sender

    def set_share(self, dispatchers: int) -> None:
        """This process is one of ``dispatchers`` sending the same outbox (several workers):
        each takes an equal share of every provider limit, so together they keep to it. The
        buckets start afresh when the share changes."""
        share = 1.0 / max(1, dispatchers)
        if share != self._share:
            self._share = share
            with self._bucket_lock:
                self._buckets.clear()
                self._recipient_buckets.clear()
            log.info("outbox: this dispatcher is one of %d, rate limits shared", dispatchers)

    def _limit(self, limit: RateLimit) -> RateLimit:
        if self._share == 1.0:
            return limit
        return RateLimit(limit.rate * self._share, max(1.0, limit.burst * self._share))

    def _bucket(self, channel: str) -> TokenBucket | None:
        limit = self.channel_limits.get(channel)
        if limit is None:
            return None
        bucket = self._buckets.get(channel)
        if bucket is None:
            bucket = self._buckets[channel] = TokenBucket(self._limit(limit), self.clock)
        return bucket

    def _recipient_bucket(self, channel: str, key: str) -> TokenBucket | None:
        limit = self.recipient_limits.get(channel)
        if limit is None:
            return None
        bucket = self._recipient_buckets.get((channel, key))
        if bucket is None:
            if len(self._recipient_buckets) > 10_000:
                # Full buckets carry no state: drop them so the map does not grow forever.
                self._recipient_buckets = {
                    k: b for k, b in self._recipient_buckets.items() if not b.full()
                }
            bucket = self._recipient_buckets[(channel, key)] = TokenBucket(
                self._limit(limit), self.clock
            )
        return bucket

    # -- one pass -----------------------------------------------------------------------------

    def in_flight(self, channel: str) -> int:
        """How many sends of ``channel`` this dispatcher keeps going at once."""
        limit = self.channel_limits.get(channel)
        wanted = DEFAULT_IN_FLIGHT if limit is None else math.ceil(self._limit(limit).rate)
        return max(1, min(self.max_in_flight, wanted))

    def _pool(self, channel: str) -> ThreadPoolExecutor:
        size = self.in_flight(channel)
        known = self._pools.get(channel)
        if known is None or known[0] != size:
            if known is not None:
                known[1].shutdown(wait=False)
            pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"outbox-{channel}")
            known = self._pools[channel] = (size, pool)
        return known[1]

    def close(self) -> None:
        """Stop the sending threads (they finish the send they are in)."""
        for _size, pool in self._pools.values():
            pool.shutdown(wait=True)
        self._pools.clear()

    def run_once(self, now: datetime | None = None, limit: int | None = None) -> DispatchStats:
        """Claim what is due (within rate limits), send it, record the results.

        ``limit`` caps the rows claimed in this pass; None: a second's worth of every channel's
        limit, and at least 100.
        """
        if limit is None:
            limit = max(100, sum(math.ceil(v.burst) for v in self.channel_limits.values()))
        now = now or datetime.now(UTC)
        started = self.clock()

        def current() -> datetime:
            # ``now`` moved on by the monotonic clock: works with a given (test) ``now`` too.
            return now + timedelta(seconds=max(0.0, self.clock() - started))

        stats = DispatchStats()
        claims = self._claim(now, limit, stats)
        self._send_all(claims, current, stats)
        if stats:
            log.info("outbox dispatch: %s", stats)
        return stats

    def _send_all(
        self, claims: list[_Claim], current: Callable[[], datetime], stats: DispatchStats
    ) -> None:
        """Send the claims, each channel's up to :meth:`in_flight` at once on its own threads.

        One recipient's messages go one after the other, in claim order: a citizen reads the
        question after the text that leads to it, and a chat is never sent two at once.

        Results are written together: before a send starts when the oldest waiting result has
        waited ``RECORD_EVERY_SECONDS`` (by whichever thread starts it), by this thread when it
        notices the same while every send is slow, and once all are done.
        """
        if not claims:
            return
        by_channel: dict[str, list[_Claim]] = defaultdict(list)
        for claim in claims:
            by_channel[claim.channel].append(claim)
        results: list[_Result] = []
        lock = threading.Lock()  # guards results
        recording = threading.Lock()  # one _record at a time (it counts into stats)

        def record(force: bool = False) -> None:
            with recording:
                with lock:
                    due = bool(results) and (force or self._record_due(results))
                    batch = list(results) if due else []
                    del results[: len(batch)]
                self._record(batch, stats)

        def deliver(queue: list[_Claim]) -> None:
            for claim in queue:
                record()
                done: list[_Result] = []
                self._deliver(claim, current, done)
                with lock:
                    results.extend(done)

        pending: set[Future[None]] = set()
        try:
            for channel, group in by_channel.items():
                try:
                    self.sender_for(channel)  # made once, here, not by two threads at a time
                except Exception:
                    log.exception("outbox: the sender for %s cannot be made", channel)
                    # each send asks again and is retried with back-off, as a sender's bug is
                pool = self._pool(channel)
                by_recipient: dict[str, list[_Claim]] = defaultdict(list)
                for claim in group:
                    by_recipient[claim.recipient_key].append(claim)
                pending |= {pool.submit(deliver, queue) for queue in by_recipient.values()}
            while pending:
                done, pending = wait(
                    pending, timeout=RECORD_EVERY_SECONDS / 4, return_when=FIRST_COMPLETED
                )
                for future in done:
                    future.result()  # _deliver keeps a sender's errors; anything else is a bug
                record()
        finally:
            wait(pending)
            record(force=True)

    def _claim(self, now: datetime, limit: int, stats: DispatchStats) -> list[_Claim]:
        claims: list[_Claim] = []
        with write_session(self.engine) as session:
            which = select(Outbox.channel).where(_due(now)).distinct()
            if self.channels is not None:
                which = which.where(Outbox.channel.in_(sorted(self.channels)))
            for channel in sorted(session.exec(which).all()):
                remaining = limit - stats.claimed - stats.skipped - stats.failed
                if remaining <= 0:
                    break
                bucket = self._bucket(channel)
                budget = (
                    remaining if bucket is None else min(remaining, bucket.available(self.pace))
                )
                if budget <= 0:
                    continue
                claims += self._claim_channel(session, channel, now, budget, remaining, stats)
        return claims

    def _claim_channel(
        self,
        session: Session,
        channel: str,
        now: datetime,
        budget: int,
        window: int,
        stats: DispatchStats,
    ) -> list[_Claim]:
        """Claim up to ``budget`` due rows of one channel, oldest first.

        Where recipients have their own limit (a Telegram chat), only each recipient's first
        ``burst`` due rows are candidates, so one busy chat cannot fill the pass and hold back
        everybody else, and a recipient whose bucket is empty is left untouched until it refills.

        A survey row whose window is closed is not claimed: its window's rows are held until the
        opening (:meth:`_hold`), and the claim looks again for the rows behind them.
        """
        claims: list[_Claim] = []
        reserved: Counter[str] = Counter()
        for _round in range(HOLD_ROUNDS):
            rows = session.exec(self._due_rows(channel, now, budget - len(claims), window)).all()
            contacts = self._contacts(session, {r.contact_id for r in rows if r.contact_id})
            held: dict[str, datetime] = {}
            for row in rows:
                contact = contacts.get(row.contact_id) if row.contact_id else None
                allowed = unsolicited_refusal(row.kind, contact) is None
                opening = held_until(row.quiet_hours, now) if allowed else None
                if opening is not None and row.quiet_hours is not None:
                    held[row.quiet_hours] = opening
                    if row.status == "sending":
                        self._hold_row(row, opening, stats)
                    continue
                if allowed:
                    if len(claims) >= budget:
                        break
                    key = recipient_key(row.contact_id, row.address_enc)
                    recipient = self._recipient_bucket(channel, key)
                    if recipient is not None and recipient.available() - reserved[key] < 1:
                        continue  # this chat's bucket is empty: the row stays as it is
                    reserved[key] += 1
                claim = self._claim_row(row, contact, now, stats)
                if claim is not None:
                    claims.append(claim)
            if held:
                session.flush()  # the claims above are written before the statements below
                for quiet_hours, opening in held.items():
                    stats.held += self._hold(session, channel, quiet_hours, opening)
            if not held or len(claims) >= budget:
                break
        return claims

    def _due_rows(self, channel: str, now: datetime, budget: int, window: int) -> Any:
        """The due rows of ``channel`` a claim looks at, oldest first, locked."""
        stmt = select(Outbox).where(_due(now), Outbox.channel == channel)
        recipient_limit = self.recipient_limits.get(channel)
        if recipient_limit is None:
            stmt = stmt.limit(budget)
        else:
            rank = (
                sa.func.row_number()
                .over(
                    partition_by=(Outbox.contact_id, Outbox.address_enc),
                    order_by=(Outbox.next_attempt_at, Outbox.id),
                )
                .label("rank")
            )
            ranked = (
                select(Outbox.id.label("id"), rank)
                .where(_due(now), Outbox.channel == channel)
                .subquery()
            )
            firsts = select(ranked.c.id).where(ranked.c.rank <= max(1, int(recipient_limit.burst)))
            stmt = stmt.where(Outbox.id.in_(firsts)).limit(window)
        return stmt.order_by(Outbox.next_attempt_at, Outbox.id).with_for_update(
            skip_locked=True, of=Outbox
        )

    @staticmethod
    def _hold(session: Session, channel: str, quiet_hours: str, opening: datetime) -> int:
        """Move the pending rows of ``channel`` with this closed window that would go before its
        ``opening`` to the opening, oldest first, at most :data:`HOLD_CHUNK`; how many moved.

        Rows another dispatcher has locked are left to it (``SKIP LOCKED``: two dispatchers
        holding one wave never wait on each other). Moved rows keep their order: all due at the
        opening, they go by id, as the claim orders rows due at one moment.
        """
        before = (
            sa.select(_OUTBOX.c.id)
            .where(
                _OUTBOX.c.status == "pending",
                _OUTBOX.c.channel == channel,
                _OUTBOX.c.quiet_hours == quiet_hours,
                _OUTBOX.c.next_attempt_at < opening,
            )
            .order_by(_OUTBOX.c.next_attempt_at, _OUTBOX.c.id)
            .limit(HOLD_CHUNK)
            .with_for_update(skip_locked=True)
        )
        moved = session.connection().execute(
            sa.update(_OUTBOX).where(_OUTBOX.c.id.in_(before)).values(next_attempt_at=opening)
        )
        if moved.rowcount:
            log.info(
                "outbox: %d %s row(s) held until %s (quiet hours %s)",
                moved.rowcount,
                channel,
                opening.isoformat(),
                quiet_hours,
            )
        return int(moved.rowcount)

    @staticmethod
    def _hold_row(row: Outbox, opening: datetime, stats: DispatchStats) -> None:
        """A survey row whose dispatcher died mid-send, found after its window closed: back to
        ``pending`` at the opening (whether the provider had it is as unknown as before)."""
        log.warning(
            "outbox %s: %s is gone while sending (attempt %s); held until %s (quiet hours)",
            row.id,
            row.claimed_by or "its dispatcher",
            row.attempts,
            opening.isoformat(),
        )
        row.status = "pending"
        row.next_attempt_at = opening
        row.locked_until = None
        row.claimed_by = None
        stats.held += 1

    @staticmethod
    def _contacts(session: Session, ids: set[int]) -> dict[int, Contact]:
        if not ids:
            return {}
        return {c.id: c for c in session.exec(select(Contact).where(Contact.id.in_(ids))).all()}

    def _claim_row(
        self, row: Outbox, contact: Contact | None, now: datetime, stats: DispatchStats
    ) -> _Claim | None:
        if row.status == "sending":
            # Its dispatcher died (or hung) mid-send: the provider may or may not have it.
            log.warning(
                "outbox %s: its lease expired or %s is gone while sending (attempt %s); "
                "sending again",
                row.id,
                row.claimed_by or "its dispatcher",
                row.attempts,
            )
        reason = unsolicited_refusal(row.kind, contact)
        if reason is not None:
            row.status = "skipped"
            row.error = f"skipped: {reason}"
            row.locked_until = None
            stats.skipped += 1
            return None
        if row.attempts >= self.max_attempts:
            row.status = "failed"
            row.error = f"gave up after {row.attempts} attempts (last one never finished)"
            row.locked_until = None
            stats.failed += 1
            return None
        row.status = "sending"
        row.attempts += 1
        row.locked_until = now + self.lease
        row.claimed_by = self.name
        stats.claimed += 1
        return _Claim(
            id=row.id,  # type: ignore[arg-type]
            attempts=row.attempts,
            channel=row.channel,
            kind=row.kind,
            idempotency_key=row.idempotency_key,
            contact_id=row.contact_id,
            address_enc=contact.address_enc if contact is not None else row.address_enc,
            body=row.body,
            payload=dict(row.payload or {}),
            locked_until=row.locked_until,
            quiet_hours=row.quiet_hours,
        )

    # -- one message --------------------------------------------------------------------------

    def _deliver(
        self,
        claim: _Claim,
        current: Callable[[], datetime],
        results: list[_Result],
    ) -> None:
        """Send one claimed row; what happened is appended to ``results`` (written later)."""
        assert claim.locked_until is not None
        now = current()
        if now + timedelta(seconds=self.send_margin) > claim.locked_until:
            # Too little lease left to finish a provider call safely: give it back untouched.
            results.append(self._release(claim, now))
            return
        if self.pace > 0:
            self._wait_for_token(claim.channel)
        opening = held_until(claim.quiet_hours, current())
        if opening is not None:
            # Claimed just before its window closed: wait for the opening, untouched.
            results.append(self._release(claim, opening, "held"))
            return
        with self._bucket_lock:
            channel_bucket = self._bucket(claim.channel)
            recipient_bucket = self._recipient_bucket(claim.channel, claim.recipient_key)
            blocked_by = next(
                (
                    b
                    for b in (recipient_bucket, channel_bucket)
                    if b is not None and b.available() < 1
                ),
                None,
            )
            if blocked_by is None:
                for bucket in (channel_bucket, recipient_bucket):
                    if bucket is not None:
                        bucket.take()
        if blocked_by is not None:
            # Not expected (claims stay within the buckets), but never send over a limit.
            results.append(self._release(claim, now + timedelta(seconds=blocked_by.wait())))
            return

        if not claim.address_enc:
            results.append(self._fail(claim, "no recipient address", code=None))
            return
        try:
            address = self.runtime.vault.decrypt(claim.address_enc)
        except ValueError:
            results.append(
                self._fail(claim, "address cannot be decrypted with this key", code=None)
            )
            return
        message = OutboundMessage(
            outbox_id=claim.id,
            idempotency_key=claim.idempotency_key,
            channel=claim.channel,
            address=address,
            body=claim.body,
            payload=claim.payload,
        )
        try:
            result = self.sender_for(claim.channel).send(message)
        except PermanentSendError as exc:
            results.append(self._fail(claim, str(exc), code=exc.code, opt_out=exc.opt_out))
            return
        except TransientSendError as exc:
            delay = backoff_seconds(claim.attempts, self.rng, retry_after=exc.retry_after)
            results.append(
                self._retry(claim, current() + timedelta(seconds=delay), str(exc), exc.code)
            )
            return
        except Exception as exc:  # a bug in a sender must not stop the other messages
            log.exception("outbox %s: sender for %s raised", claim.id, claim.channel)
            delay = backoff_seconds(claim.attempts, self.rng)
            error = f"unexpected {type(exc).__name__}"
            results.append(self._retry(claim, current() + timedelta(seconds=delay), error, None))
            return
        values = {
            "status": "sent",
            "provider_id": result.provider_id,
            "sent_at": current(),  # after the provider call
            "error": None,
            "locked_until": None,
        }
        results.append(self._result(claim, values, "sent"))

    def _wait_for_token(self, channel: str) -> None:
        """Paced passes: sleep until the channel's bucket has this send's token, if it comes
        within the pass (it was claimed for it); otherwise the check below puts the row back."""
        paced_until = self.clock() + self.pace + 0.1
        for _ in range(100):  # a bound, should the clock not move
            with self._bucket_lock:
                bucket = self._bucket(channel)
                wait_for = 0.0 if bucket is None else bucket.wait()
            if wait_for <= 0 or self.clock() + wait_for > paced_until:
                return
            self.sleep(wait_for)

    # -- recording results ----------------------------------------------------------------------

    def _result(
        self, claim: _Claim, values: dict[str, Any], outcome: str, *, opt_out: bool = False
    ) -> _Result:
        return _Result(claim, values, outcome, opt_out, decided_at=self.clock())

    def _record_due(self, results: list[_Result]) -> bool:
        """Write the pending results before the next send? Yes once the oldest has waited
        ``RECORD_EVERY_SECONDS``.

        Their leases need no check of their own: every claim of a pass has the same lease end,
        and the next send only starts with ``send_margin`` of it left, so whatever it takes,
        the results written after it still land within their lease.
        """
        return self.clock() - results[0].decided_at >= RECORD_EVERY_SECONDS

    def _record(self, results: list[_Result], stats: DispatchStats) -> None:
        """Write results in one transaction, each only where its claim still holds the lease.

        The rows still held are read (and locked) first, so each result is known to be stored or
        to have lost its lease; then one executemany per shape of result writes them.
        """
        if not results:
            return
        with write_session(self.engine) as session:
            conn = session.connection()
            held_rows = conn.execute(
                sa.select(_OUTBOX.c.id, _OUTBOX.c.attempts)
                .where(
                    _OUTBOX.c.id.in_([r.claim.id for r in results]),
                    _OUTBOX.c.status == "sending",
                )
                .with_for_update()
            ).all()
            held = {(row.id, row.attempts) for row in held_rows}
            stored = [r for r in results if (r.claim.id, r.claim.attempts) in held]
            shapes: dict[tuple[str, ...], list[_Result]] = {}
            for r in stored:
                shapes.setdefault(tuple(sorted(r.values)), []).append(r)
            for columns, group in shapes.items():
                conn.execute(
                    sa.update(_OUTBOX)
                    .where(
                        _OUTBOX.c.id == sa.bindparam("w_id"),
                        _OUTBOX.c.status == "sending",
                        _OUTBOX.c.attempts == sa.bindparam("w_attempts"),
                    )
                    .values({c: sa.bindparam(f"v_{c}") for c in columns}),
                    [
                        {
                            "w_id": r.claim.id,
                            "w_attempts": r.claim.attempts,
                            **{f"v_{c}": v for c, v in r.values.items()},
                        }
                        for r in group
                    ],
                )
            opt_outs = sorted(
                {r.claim.contact_id for r in stored if r.opt_out_contact and r.claim.contact_id}
            )
            if opt_outs:
                session.execute(
                    sa.update(Contact)
                    .where(Contact.id.in_(opt_outs))
                    .values(opted_out=True, survey_consent=False)
                )
        for r in results:
            if (r.claim.id, r.claim.attempts) not in held:
                log.warning("outbox %s: lease lost before the result was stored", r.claim.id)
                stats.lease_lost += 1
                continue
            setattr(stats, r.outcome, getattr(stats, r.outcome) + 1)
            if r.opt_out_contact and r.claim.contact_id is not None:
                log.info("outbox %s: the provider says the contact opted out", r.claim.id)

    def _release(
        self, claim: _Claim, next_attempt_at: datetime, outcome: str = "deferred"
    ) -> _Result:
        """Put a claimed row back as it was (the attempt did not happen)."""
        values = {
            "status": "pending",
            "attempts": claim.attempts - 1,
            "locked_until": None,
            "next_attempt_at": next_attempt_at,
        }
        return self._result(claim, values, outcome)

    def _fail(
        self,
        claim: _Claim,
        error: str,
        *,
        code: str | int | None,
        opt_out: bool = False,
    ) -> _Result:
        text = _with_code(error, code)
        log.warning("outbox %s via %s failed: %s", claim.id, claim.channel, text)
        values = {"status": "failed", "error": text[:1000], "locked_until": None}
        return self._result(claim, values, "failed", opt_out=opt_out)

    def _retry(
        self,
        claim: _Claim,
        next_attempt_at: datetime,
        error: str,
        code: str | int | None,
    ) -> _Result:
        if claim.attempts >= self.max_attempts:
            return self._fail(claim, f"gave up after {claim.attempts} attempts: {error}", code=code)
        text = _with_code(error, code)
        log.info(
            "outbox %s via %s: %s; retry at %s", claim.id, claim.channel, text, next_attempt_at
        )
        values = {
            "status": "pending",
            "error": text[:1000],
            "locked_until": None,
            "next_attempt_at": next_attempt_at,
        }
        return self._result(claim, values, "retried")


def _with_code(error: str, code: str | int | None) -> str:
    """The error as stored: the provider's code first, unless the text already names it."""
    if code is None or str(code) in error:
        return error
    return f"[{code}] {error}"


def dispatch_once(
    runtime: Any,
    now: datetime | None = None,
    limit: int = 100,
    senders: Mapping[str, Sender] | None = None,
) -> DispatchStats:
    """One pass with a fresh :class:`Dispatcher` (fresh rate-limit buckets).

    Long-running processes keep one :class:`Dispatcher` instead, so that rate limits hold
    across passes (the worker does).
    """
    return Dispatcher(runtime, senders).run_once(now, limit)
