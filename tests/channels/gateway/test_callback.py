"""APPEL texted to a gateway phone (SMS Gateway for Android's signed ``sms:received``) asks for
a call-back; the same event delivered three times at once makes one request and one call,
placed with the real twilio Client against a local fake of Twilio's Calls API. SQLite and
PostgreSQL; the clock fixed inside the call-back hours."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import time_machine
from pytest_httpserver import HTTPServer
from sqlmodel import Session, select

from citoyen.models import CallbackRequest, Outbox
from citoyen.services.callbacks import place_due_calls
from tests.channels.gateway.conftest import ORANGE_NUMBER, post
from tests.channels.gateway.fake_gateway import received
from tests.channels.twilio_calls import fake_calls, placer
from tests.channels.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL

TWILIO_NUMBER = "+12025550142"
MORNING = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


@pytest.fixture
def gateway_settings(gateway_settings):  # type: ignore[no-untyped-def]
    """The gateway phones for SMS, Twilio for the calls back."""
    return gateway_settings.model_copy(
        update={
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_from_number": TWILIO_NUMBER,
            "public_url": PUBLIC_URL,
        }
    )


def test_appel_to_a_gateway_phone_delivered_three_times_makes_one_call(
    app, client, runtime, httpserver: HTTPServer
) -> None:
    twilio = fake_calls(httpserver)
    catalog = runtime.bundle.catalog
    with time_machine.travel(MORNING, tick=True):
        assert post(client, received(ORANGE_NUMBER, "APPEL")).status_code == 200  # language menu
        event = received(ORANGE_NUMBER, "1")  # French
        barrier = threading.Barrier(3)
        codes: list[int] = []

        def deliver() -> None:
            with app.test_client() as own:
                barrier.wait()
                codes.append(post(own, event).status_code)

        threads = [threading.Thread(target=deliver) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert codes == [200, 200, 200]
        assert place_due_calls(runtime, placer=placer(httpserver, TWILIO_NUMBER)) == {"placed": 1}
        assert place_due_calls(runtime, placer=placer(httpserver, TWILIO_NUMBER)) == {}
    assert twilio.to == [ORANGE_NUMBER]
    with Session(runtime.engine) as session:
        [row] = session.exec(select(CallbackRequest)).all()
        replies = session.exec(
            select(Outbox.body).where(Outbox.idempotency_key.contains(event["id"]))
        ).all()
    assert (row.source, row.status) == ("sms", "placed")
    told = catalog.render("callback.requested", "fr", {"callback_from": TWILIO_NUMBER}, "sms")
    assert replies == [told]  # answered once, on the gateway phone
