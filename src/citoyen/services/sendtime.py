"""How long the queued messages will take to send, per channel: the outbox page and
``citoyen survey run --dry-run`` both ask :func:`estimate`.

Sending takes time: at one SMS a second a wave of 166,000 survey messages is about two days, and
an Android gateway phone sends ten a minute unless its limit is raised. The estimate follows how
the dispatcher sends (:mod:`citoyen.services.dispatch`):

- **Rates.** SMS: ``CITOYEN_OUTBOX_RATE_SMS`` (the workers together); with the Android gateway
  also at most the phones' ``per_minute`` added up, leaving out the phones that are down now.
  Telegram: ``CITOYEN_OUTBOX_RATE_TELEGRAM``. Other channels (WhatsApp, the log) have no rate
  limit in the dispatcher: no estimate ("as fast as the provider takes them").
- **Quiet hours.** Rows are sent in the order they are due (``next_attempt_at``); a row queued
  outside its survey's quiet hours is due at the window's opening, so a wave starts then. Once
  started, the dispatcher does not pause at the window's end: a wave longer than the window goes
  on until it is sent, and the estimate says so by its end time.
- Rows being sent now count as due now; failed and sent rows are not waiting.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from citoyen.models import Outbox
from citoyen.services.dispatch import limits_from_settings

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
    starts_at: datetime | None  # when the first waiting row is due
    finishes_at: datetime | None  # None: no rate to compute it with, or nothing waits

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


def _finish(groups: list[tuple[datetime, int]], per_second: float, now: datetime) -> datetime:
    """When the last of ``groups`` ((due, rows), in due order) is sent at ``per_second``."""
    clock = now
    for due, count in groups:
        clock = max(clock, due) + timedelta(seconds=count / per_second)
    return clock


def estimate(
    session: Session,
    settings: Any,
    now: datetime | None = None,
    *,
    extra: Mapping[str, int] | None = None,
    extra_at: datetime | None = None,
) -> list[ChannelEstimate]:
    """Per channel with rows waiting (or ``extra`` rows planned from ``extra_at``): when its
    queue will be sent at the configured rates, phones and quiet hours."""
    now = now or datetime.now(UTC)
    extra = {k: v for k, v in (extra or {}).items() if v > 0}
    rows = session.exec(
        select(Outbox.channel, Outbox.next_attempt_at, sa.func.count(Outbox.id))
        .where(Outbox.status.in_(WAITING))
        .group_by(Outbox.channel, Outbox.next_attempt_at)
    ).all()
    groups: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for channel, due, count in rows:
        groups[channel].append((max(due, now), count))
    for channel, count in extra.items():
        groups[channel].append((max(extra_at or now, now), count))
    rates = channel_rates(session, settings, now)
    result = []
    for channel in sorted(groups):
        ordered = sorted(groups[channel])
        added = extra.get(channel, 0)
        queued = sum(count for _due, count in ordered) - added
        rate = rates.get(channel, Rate(None, "no rate limit"))
        finishes = _finish(ordered, rate.per_second, now) if rate.per_second and ordered else None
        result.append(
            ChannelEstimate(
                channel=channel,
                queued=queued,
                added=added,
                rate=rate,
                starts_at=ordered[0][0] if ordered else None,
                finishes_at=finishes,
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
