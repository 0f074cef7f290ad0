"""Quiet hours: when a survey message or call, or a call-back, may go out, in local time.

Nothing is dropped for being outside the window: :func:`next_allowed` gives the moment the message
may go (now, or the next opening), and the outbox row or call waits until then.

A survey's outbox rows carry their window as text (:func:`spec`, e.g.
``"08:00-20:00 Africa/Bamako"``, the ``outbox.quiet_hours`` column), so that the dispatcher and
the send-time estimate read it from the row itself (:func:`parse`, cached: a wave has one).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

Window = tuple[time, time]


def next_allowed(now: datetime, window: Window, zone: ZoneInfo) -> datetime:
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


def is_allowed(now: datetime, window: Window, zone: ZoneInfo) -> bool:
    return next_allowed(now, window, zone) == now


def closes_at(now: datetime, window: Window, zone: ZoneInfo) -> datetime:
    """The end of the window ``now`` is in (UTC); ``now`` must be inside it."""
    if not is_allowed(now, window, zone):
        raise ValueError("outside the window")
    local = now.astimezone(zone)
    return datetime.combine(local.date(), window[1], tzinfo=zone).astimezone(UTC)


def spec(window: Window, zone: ZoneInfo) -> str:
    """The window as an outbox row carries it: ``"08:00-20:00 Africa/Bamako"``."""
    start, end = window
    return f"{start:%H:%M}-{end:%H:%M} {zone.key}"


@lru_cache(maxsize=256)
def parse(text: str) -> tuple[Window, ZoneInfo]:
    """The window and zone of a :func:`spec` (raises when it is not one)."""
    hours, _, zone = text.partition(" ")
    start, _, end = hours.partition("-")
    if not zone or not end:
        raise ValueError(f"not a quiet-hours window: {text!r}")
    return (time.fromisoformat(start), time.fromisoformat(end)), ZoneInfo(zone)
