"""APPEL over WhatsApp asks for a call-back to the WhatsApp number, as by SMS (the clock fixed
inside the call-back hours)."""

from __future__ import annotations

from datetime import UTC, datetime

import time_machine
from sqlmodel import Session, select

from citoyen.models import CallbackRequest
from tests.channels.twilio_helpers import signed_post
from tests.channels.whatsapp.conftest import FROM_NUMBER, WhatsApp, twiml_messages

MORNING = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def test_appel_over_whatsapp_requests_one_call_back(client, runtime) -> None:
    whatsapp = WhatsApp(client)
    catalog = runtime.bundle.catalog
    with time_machine.travel(MORNING, tick=True):
        whatsapp.say("Appel")  # a new contact: the language menu
        form = whatsapp.form("1")  # French; delivered twice, as Twilio retries
        first = twiml_messages(signed_post(client, "/twilio/sms", form))
        again = twiml_messages(signed_post(client, "/twilio/sms", form))
    told = catalog.render("callback.requested", "fr", {"callback_from": FROM_NUMBER}, "whatsapp")
    assert first == again == [told]  # Twilio's retry of the message: the same answer
    with Session(runtime.engine) as session:
        [row] = session.exec(select(CallbackRequest)).all()
    assert (row.source, row.status) == ("whatsapp", "requested")
