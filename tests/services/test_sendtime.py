"""How long the queued messages take to send (citoyen.services.sendtime), on SQLite and
PostgreSQL, on a fixed clock: the rates the dispatcher keeps, the gateway phones, the quiet
hours' opening."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from citoyen.config import GatewayPhone
from citoyen.db import write_session
from citoyen.models import GatewayPhoneRecord
from citoyen.runtime import Runtime
from citoyen.services.contacts import get_or_create_contact
from citoyen.services.outbox import enqueue_many, queued_row
from citoyen.services.sendtime import duration_words, estimate
from citoyen.services.setup import ensure_ready

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
WINDOW = "08:00-20:00 Africa/Bamako"  # a survey's quiet hours, as its outbox rows carry them
PHONES = [
    GatewayPhone(name=name, operator=op, url="http://10.0.0.5:8080", password="x", per_minute=10)
    for name, op in (("orange1", "orange"), ("moov1", "moov"), ("telecel1", "telecel"))
]


@pytest.fixture
def runtime(settings) -> Runtime:  # type: ignore[no-untyped-def]
    runtime = Runtime(settings)
    ensure_ready(runtime)
    return runtime


def queue(
    runtime: Runtime,
    channel: str,
    count: int,
    send_at: datetime = NOW,
    quiet_hours: str | None = None,
) -> None:
    with write_session(runtime.engine) as session:
        contact, _ = get_or_create_contact(session, runtime.vault, "tel:+22376000001", NOW)
        rows = [
            queued_row(
                channel=channel,
                idempotency_key=f"{channel}:{send_at.isoformat()}:{quiet_hours}:{i}",
                contact_id=contact.id,
                kind="survey" if quiet_hours else "reply",
                now=NOW,
                send_at=send_at,
                quiet_hours=quiet_hours,
            )
            for i in range(count)
        ]
        enqueue_many(session, rows)


def by_channel(runtime: Runtime, **kwargs):  # type: ignore[no-untyped-def]
    with Session(runtime.engine) as session:
        return {e.channel: e for e in estimate(session, runtime.settings, NOW, **kwargs)}


def test_twilio_sms_at_one_a_second_and_telegram_at_its_rate(runtime: Runtime) -> None:
    queue(runtime, "sms", 3600)
    queue(runtime, "telegram", 500)
    queue(runtime, "whatsapp", 10)
    found = by_channel(runtime)
    assert found["sms"].finishes_at == NOW + timedelta(hours=1)
    assert duration_words(found["sms"].seconds(NOW)) == "1 h 0 min"
    assert found["telegram"].finishes_at == NOW + timedelta(seconds=20)  # 25 a second
    # WhatsApp has no rate limit in the dispatcher: no figure is made up.
    assert found["whatsapp"].queued == 10 and found["whatsapp"].finishes_at is None


def test_gateway_phones_set_the_pace_and_a_phone_down_slows_it(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(
        update={"sms_provider": "android-gateway", "sms_gateway_phones": PHONES}
    )
    queue(runtime, "sms", 1800)  # three phones at 10 a minute: 1,800 an hour
    sms = by_channel(runtime)["sms"]
    assert (sms.rate.phones, sms.finishes_at) == (3, NOW + timedelta(hours=1))
    with write_session(runtime.engine) as session:
        session.add(
            GatewayPhoneRecord(
                name="moov1",
                operator="moov",
                state="down",
                failures=3,
                down_until=NOW + timedelta(minutes=4),
                updated_at=NOW,
            )
        )
    sms = by_channel(runtime)["sms"]
    assert (sms.rate.phones, sms.finishes_at) == (2, NOW + timedelta(hours=1, minutes=30))


def test_a_wave_deferred_by_quiet_hours_starts_at_the_opening(runtime: Runtime) -> None:
    opening = NOW + timedelta(hours=22)  # 08:00 tomorrow
    queue(runtime, "sms", 60)  # due now: one minute
    queue(runtime, "sms", 7200, send_at=opening)
    sms = by_channel(runtime, extra={"sms": 3600}, extra_at=opening)["sms"]
    assert (sms.queued, sms.added, sms.starts_at) == (7260, 3600, NOW)
    assert sms.finishes_at == opening + timedelta(hours=3)
    assert duration_words(sms.seconds(NOW)) == "1 d 1 h"


def test_a_wave_longer_than_its_window_goes_on_at_the_next_opening(runtime: Runtime) -> None:
    """One SMS a minute, 08:00-20:00: 720 a day. 2,000 survey SMS due since 08:00, at 10:00:
    600 today, 720 tomorrow, the last 680 the day after by 19:20, as the dispatcher holds them
    at each close (tests/services/test_dispatch_quiet_hours.py). A reply queued for 21:00 goes
    in the night, not after the wave. (Before, the estimate ran on through the nights: 10:00
    plus 2,000 minutes, tomorrow at 19:20.)"""
    runtime.settings = runtime.settings.model_copy(update={"outbox_rate_sms": 1 / 60})
    morning = NOW.replace(hour=8)
    queue(runtime, "sms", 2000, send_at=morning, quiet_hours=WINDOW)
    queue(runtime, "sms", 1, send_at=NOW.replace(hour=21))
    sms = by_channel(runtime)["sms"]
    assert (sms.queued, sms.held, sms.starts_at) == (2001, 0, NOW)
    assert sms.finishes_at == NOW.replace(hour=19, minute=20) + timedelta(days=2)
    assert duration_words(sms.seconds(NOW)) == "2 d 9 h"

    # In the night the wave waits for its window: the page says how many rows, and from when.
    night = NOW.replace(hour=22)
    with Session(runtime.engine) as session:
        [sms] = estimate(session, runtime.settings, night)
    opening = morning + timedelta(days=1)
    assert (sms.held, sms.starts_at) == (2000, night)  # the reply first, at once
    assert sms.finishes_at == opening + timedelta(days=2, hours=9, minutes=20)  # 720 + 720 + 560


def test_a_dry_runs_wave_keeps_to_its_window(runtime: Runtime) -> None:
    """``citoyen survey run --dry-run`` at 21:30: the run's 1,000 invitations, one a minute
    within 08:00-20:00, start at 08:00 and end the day after at 12:40 (720 + 280)."""
    runtime.settings = runtime.settings.model_copy(update={"outbox_rate_sms": 1 / 60})
    late = NOW.replace(hour=21, minute=30)
    opening = NOW.replace(hour=8) + timedelta(days=1)
    with Session(runtime.engine) as session:
        [sms] = estimate(
            session,
            runtime.settings,
            late,
            extra={"sms": 1000},
            extra_at=opening,
            extra_quiet_hours=WINDOW,
        )
    assert (sms.queued, sms.added, sms.held, sms.starts_at) == (0, 1000, 0, opening)
    assert sms.finishes_at == opening + timedelta(days=1, hours=4, minutes=40)
