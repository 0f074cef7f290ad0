"""APPEL over WhatsApp asks for a call-back to the WhatsApp number, as by SMS (the clock fixed
inside the call-back hours)."""

from __future__ import annotations

from datetime import UTC, datetime

import time_machine
from sqlmodel import Session, select

from citoyen.models import CallbackRequest
from tests.channels.sms.conftest import words
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


def test_a_template_button_asks_for_the_call_back_whatever_its_label(client, runtime) -> None:
    """A status notice sent outside the 24-hour window by a template with a quick-reply button
    whose id is APPEL: tapping "Rappelez-moi" (no keyword) posts the label as Body and the id as
    ButtonPayload."""
    whatsapp = WhatsApp(client)
    catalog = runtime.bundle.catalog
    with time_machine.travel(MORNING, tick=True):
        whatsapp.say("Bonjour")
        whatsapp.say("2")  # Bambara
        told = whatsapp.say("Rappelez-moi", ButtonText="Rappelez-moi", ButtonPayload="APPEL")
    expected = catalog.render(
        "callback.requested", "bm", {"callback_from": FROM_NUMBER}, "whatsapp"
    )
    assert told == [expected]
    with Session(runtime.engine) as session:
        [row] = session.exec(select(CallbackRequest)).all()
    assert (row.source, row.status) == ("whatsapp", "requested")


def test_a_button_id_answers_a_menu_like_the_typed_number(client, runtime, t) -> None:
    """A template's buttons with ids "1", "2"...: the id is the answer, not the label."""
    tapping, typing = WhatsApp(client, "+22376000051"), WhatsApp(client, "+22376000052")
    tapping.say("Bonjour")
    typing.say("Bonjour")
    tapped = tapping.say("Bamanankan kan", ButtonText="Bamanankan kan", ButtonPayload="2")
    assert tapped == typing.say("2")
    assert words(*tapped).startswith(words(t("report.welcome", "bm")))
