"""Per-sender inbound limit: a flood from one number is throttled and logged, never turned into
reports, while other senders go on normally."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, func, select

from citoyen.engine.types import Input
from citoyen.messages.types import Inbound
from citoyen.models import InboundThrottle, Message, Report
from tests.channels.sms.conftest import twiml_messages
from tests.channels.twilio_helpers import ACCOUNT_SID, signed_post

FLOODER = "+22376810001"
OTHER = "+22376810002"
LIMIT = 5


@pytest.fixture
def web_settings(web_settings):  # type: ignore[no-untyped-def]
    return web_settings.model_copy(update={"inbound_limit": LIMIT, "inbound_window_seconds": 600})


def _text(client, number: str, body: str, n: int):  # type: ignore[no-untyped-def]
    form = {
        "From": number,
        "To": "+22320200000",
        "Body": body,
        "MessageSid": f"SM{number[-6:]}{n:026d}",
        "AccountSid": ACCOUNT_SID,
    }
    return signed_post(client, "/twilio/sms", form)


def _count(runtime, model, *where) -> int:  # type: ignore[no-untyped-def]
    with Session(runtime.engine) as session:
        return session.exec(select(func.count()).select_from(model).where(*where)).one()


def test_a_flood_is_throttled_logged_once_and_stores_nothing(
    client, runtime, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        answered = [_text(client, FLOODER, "SIGNALER", n) for n in range(LIMIT + 20)]
    assert all(r.status_code == 200 for r in answered)
    # The first LIMIT get the flow's replies, the rest an empty TwiML response.
    assert all(twiml_messages(r) for r in answered[:LIMIT])
    assert all(twiml_messages(r) == [] for r in answered[LIMIT:])
    assert _count(runtime, Message, Message.direction == "in") == LIMIT
    with Session(runtime.engine) as session:
        burst = session.exec(select(InboundThrottle)).one()
    assert burst.dropped == 20 and burst.channel == "sms"
    floods = [r for r in caplog.records if "inbound flood" in r.getMessage()]
    assert len(floods) == 1 and floods[0].levelno == logging.WARNING
    assert "Citoyen " in floods[0].getMessage() and "76810001" not in caplog.text

    # Another sender is not affected.
    other = _text(client, OTHER, "Bonjour", 1)
    assert other.status_code == 200 and twiml_messages(other)


def test_no_report_comes_from_a_flood(runtime) -> None:
    """Whatever the flooder sends past the limit, the conversation does not move."""
    service = runtime.conversations
    t0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    for n in range(LIMIT):
        service.handle(Inbound("sms", FLOODER, Input("text", "Bonjour"), f"SMa{n}"), now=t0)
    reports_before = _count(runtime, Report)
    for n in range(50):
        reply = service.handle(
            Inbound("sms", FLOODER, Input("text", "1"), f"SMb{n}"), now=t0 + timedelta(seconds=n)
        )
        assert reply.status == "throttled" and reply.prompts == []
    assert _count(runtime, Report) == reports_before
    assert _count(runtime, Message, Message.direction == "in") == LIMIT

    # Once the window has passed, the sender is heard again.
    later = t0 + timedelta(minutes=11)
    reply = service.handle(Inbound("sms", FLOODER, Input("text", "Bonjour"), "SMc0"), now=later)
    assert reply.status != "throttled" and reply.prompts
