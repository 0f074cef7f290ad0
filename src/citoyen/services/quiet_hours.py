"""Quiet hours: when a survey message or call, or a call-back, may go out, in local time.

Nothing is dropped for being outside the window: :func:`next_allowed` gives the moment the message
may go (now, or the next opening), and the outbox row or call waits until then.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


def next_allowed(now: datetime, window: tuple[time, time], zone: ZoneInfo) -> datetime:
    """``now`` when it is inside ``[start, end)`` local time, else the next ``start`` (UTC)."""
    if now.tzinfo is None:
        raise ValueError("naive datetime")
    start, end = window
    local = now.astimezone(zone)
    if start <= local.time() < end:
        return now
    day = local.date() if local.time() < start else local.date() + timedelta(days=1)
    opening = datetime.combine(day, start, tzinfo=zone)
    return opening.astimezone(UTC)


def is_allowed(now: datetime, window: tuple[time, time], zone: ZoneInfo) -> bool:
    return next_allowed(now, window, zone) == now
