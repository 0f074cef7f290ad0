"""How long the queued messages will take to send, per channel: the outbox page and
``citoyen survey run --dry-run`` both ask :func:`estimate`.

Sending takes time: at one SMS a second a wave of 166,000 survey messages is about two days, and
an Android gateway phone sends ten a minute unless its limit is raised. The estimate follows how
the dispatcher sends (:mod:`citoyen.services.dispatch`):

- **Rates.** SMS: ``CITOYEN_OUTBOX_RATE_SMS`` (the workers together); with the Android gateway
  also at most the phones' ``per_minute`` added up, leaving out the phones that are down now.
  Telegram: ``CITOYEN_OUTBOX_RATE_TELEGRAM``. Other channels (WhatsApp, the log) have no rate
  limit in the dispatcher: no estimate ("as fast as the provider takes them").
- **Quiet hours.** Rows are sent in the order they are due (``next_attempt_at``, then id); a
  survey's row goes only inside its window (``outbox.quiet_hours``): a wave queued outside it
  starts at the opening, and a wave longer than the window stops at its end, while the rows
  behind it (replies, notices) go on, and continues at the next opening, before what was queued
  for that opening after it — as the dispatcher holds it. 166,000 SMS at one a second, 08:00 to
  20:00: 43,200 a day, the last on the fourth day at 18:06.
- Rows being sent now count as due now; failed and sent rows are not waiting.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from citoyen.models import Outbox
from citoyen.services.dispatch import held_until, limits_from_settings
from citoyen.services.quiet_hours import closes_at, next_allowed, parse

WAITING = ("pending", "sending")


@dataclass(frozen=True)
class Rate:
    """How fast a channel sends: ``per_second`` (None: no limit set) and what sets it."""

    per_second: float | None
    source: str  # "CITOYEN_OUTBOX_RATE_SMS", "3 gateway phones", "no rate limit"...
    phones: int = 0  # gateway phones counted (answering or not tried yet)


@dataclass(frozen=True)
class ChannelEstimate:
    """The queue of one channel: how many rows wait, from when, and when the last is sent."""

    channel: str
    queued: int  # rows waiting in the outbox now
    added: int  # rows the caller plans to add (a survey's dry run)
    rate: Rate
    starts_at: datetime | None  # when the first waiting row goes (is due, without a rate)
    finishes_at: datetime | None  # None: no rate to compute it with, or nothing waits
    held: int = 0  # queued survey rows whose window is closed now: they wait for its opening

    @property
    def total(self) -> int:
        return self.queued + self.added

    def seconds(self, now: datetime) -> float | None:
        """From ``now`` until the last row is sent."""
        if self.finishes_at is None:
            return None
        return max(0.0, (self.finishes_at - now).total_seconds())


def channel_rates(session: Session, settings: Any, now: datetime) -> dict[str, Rate]:
    """The send rate of each rate-limited channel, as the dispatcher keeps it."""
    limits, _recipients = limits_from_settings(settings)
    rates: dict[str, Rate] = {}
    for channel, limit in limits.items():
        name = f"CITOYEN_OUTBOX_RATE_{channel.upper()}"
        rates[channel] = Rate(limit.rate, name)
    if settings.sms_provider == "android-gateway" and "sms" in rates:
        from citoyen.services.gateway_phones import phone_states

        states = {p.name: p for p in phone_states(session, settings.sms_gateway_phones)}
        usable = [
            phone
            for phone in settings.sms_gateway_phones
            if not (
                states.get(phone.name) is not None
                and states[phone.name].state == "down"
                and (states[phone.name].down_until or now) > now
            )
        ]
        phones = sum(phone.per_minute for phone in usable) / 60.0
        sms = rates["sms"]
        if phones < (sms.per_second or 0):
            rates["sms"] = Rate(phones, "gateway phones' per_minute", phones=len(usable))
        else:
            rates["sms"] = Rate(sms.per_second, sms.source, phones=len(usable))
    return rates


@dataclass(frozen=True)
class _Group:
    """Rows of one channel due at one moment with one window: they go out together."""

    due: datetime  # next_attempt_at (rows due before now go now, in that order)
    order: float  # the smallest id: rows due at one moment go by id (planned rows: last)
    count: float
    quiet_hours: str | None  # the survey's window (outbox.quiet_hours), None: any time


def _readable(quiet_hours: str) -> bool:
    """A window the dispatcher can read (it sends the rows of any other at once)."""
    try:
        parse(quiet_hours)
    except (ValueError, KeyError):
        return False
    return True


def _schedule(groups: list[_Group], per_second: float, now: datetime) -> tuple[datetime, datetime]:
    """When the first and the last of ``groups`` are sent at ``per_second``, the way the
    dispatcher sends them: in due order; a group with a window only inside it — held until its
    opening, and at its end the rest held until the next opening (due then, in its place).

    The queue is ordered as the claim orders rows: due now or at a later moment, then by
    ``next_attempt_at``, then by id; a held group's ``next_attempt_at`` becomes the opening.
    """
    queue = [(max(g.due, now), g.due, g.order, g.count, g.quiet_hours) for g in groups]
    heapq.heapify(queue)
    clock = now
    first: datetime | None = None
    while queue:
        due, _next_attempt_at, order, count, quiet_hours = heapq.heappop(queue)
        start = max(clock, due)
        if quiet_hours is not None and _readable(quiet_hours):
            window, zone = parse(quiet_hours)
            opening = next_allowed(start, window, zone)
            if opening > start:
                heapq.heappush(queue, (opening, opening, order, count, quiet_hours))
                continue
            closes = closes_at(start, window, zone)
            room = (closes - start).total_seconds() * per_second
            if count - room > 1e-6:  # (not a rounding error of a wave that just fits)
                first = first or start
                clock = closes
                later = next_allowed(closes, window, zone)
                heapq.heappush(queue, (later, later, order, count - room, quiet_hours))
                continue
        first = first or start
        clock = start + timedelta(seconds=count / per_second)
    return first or now, clock


def estimate(
    session: Session,
    settings: Any,
    now: datetime | None = None,
    *,
    extra: Mapping[str, int] | None = None,
    extra_at: datetime | None = None,
    extra_quiet_hours: str | None = None,
) -> list[ChannelEstimate]:
    """Per channel with rows waiting (or ``extra`` rows planned from ``extra_at``, within the
    window ``extra_quiet_hours``): when its queue will be sent at the configured rates, phones
    and quiet hours."""
    now = now or datetime.now(UTC)
    extra = {k: v for k, v in (extra or {}).items() if v > 0}
    rows = session.exec(
        select(
            Outbox.channel,
            Outbox.next_attempt_at,
            Outbox.quiet_hours,
            sa.func.count(Outbox.id),
            sa.func.min(Outbox.id),
        )
        .where(Outbox.status.in_(WAITING))
        .group_by(Outbox.channel, Outbox.next_attempt_at, Outbox.quiet_hours)
    ).all()
    groups: dict[str, list[_Group]] = defaultdict(list)
    held: dict[str, int] = defaultdict(int)
    for channel, due, quiet_hours, count, first_id in rows:
        groups[channel].append(_Group(due, first_id, count, quiet_hours))
        if held_until(quiet_hours, now) is not None:
            held[channel] += count
    for channel, count in extra.items():
        due = max(extra_at or now, now)
        groups[channel].append(_Group(due, float("inf"), count, extra_quiet_hours))
    rates = channel_rates(session, settings, now)
    result = []
    for channel in sorted(groups):
        ordered = sorted(groups[channel], key=lambda g: (max(g.due, now), g.due, g.order))
        added = extra.get(channel, 0)
        queued = int(sum(g.count for g in ordered)) - added
        rate = rates.get(channel, Rate(None, "no rate limit"))
        starts: datetime | None = max(ordered[0].due, now) if ordered else None
        finishes = None
        if rate.per_second and ordered:
            starts, finishes = _schedule(ordered, rate.per_second, now)
        result.append(
            ChannelEstimate(
                channel=channel,
                queued=queued,
                added=added,
                rate=rate,
                starts_at=starts,
                finishes_at=finishes,
                held=held[channel],
            )
        )
    return result


def duration_words(seconds: float | None) -> str:
    """ "2 d 4 h", "3 h 20 min", "12 min", "< 1 min" (the CLI's English; the admin has its own)."""
    if seconds is None:
        return "—"
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return "< 1 min"
