"""Call-back asked on Telegram, end to end, on SQLite and PostgreSQL.

Telegram gives no phone number: the citizen sends APPEL, gets a "call me" keyboard button
(``request_contact``) and shares their own contact; the request is then that number's, under the
same rules as an APPEL by SMS. Updates go through the webhook; replies are delivered by the real
python-telegram-bot ``Bot`` to the local fake Bot API; the call is placed with the real twilio
Client against a local fake of Twilio's Calls API, then answered through the signed voice
webhook (TwiML parsed as XML). The clock is fixed at 10:00 in Bamako, inside the call-back hours.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask.testing import FlaskClient
from pytest_httpserver import HTTPServer
from sqlmodel import Session, select

from citoyen.models import CallbackRequest, Contact, Conversation, Message, Outbox
from citoyen.runtime import Runtime
from citoyen.services.callbacks import place_due_calls
from citoyen.services.contacts import find_contact
from tests.channels.telegram.conftest import (
    BM_USER,
    FR_USER,
    Updates,
    contact,
    dispatch,
    outbox,
    post,
)
from tests.channels.telegram.fake_bot_api import FakeBotApi
from tests.channels.twilio_calls import FakeCalls, fake_calls, placer
from tests.channels.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN
from tests.channels.voice.helpers import Call

TWILIO_NUMBER = "+12025550142"
MORNING = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
PHONE = "+22376300001"  # the citizen's own number, as their Telegram account has it
DIGITS = PHONE[-8:]  # what must never be found in clear: logs, rows, pages


@pytest.fixture
def tg_settings(tg_settings: Any) -> Any:
    """Telegram and Twilio configured: call-backs can be placed."""
    return tg_settings.model_copy(
        update={
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_from_number": TWILIO_NUMBER,
        }
    )


@pytest.fixture
def clock():  # type: ignore[no-untyped-def]
    with time_machine.travel(MORNING, tick=True) as traveller:
        yield traveller


@pytest.fixture
def twilio(httpserver: HTTPServer) -> FakeCalls:
    return fake_calls(httpserver)


@pytest.fixture
def calls_api(httpserver: HTTPServer):  # type: ignore[no-untyped-def]
    return placer(httpserver, TWILIO_NUMBER)


def t(runtime: Runtime, key: str, lang: str = "fr", **params: Any) -> str:
    catalog = runtime.bundle.catalog
    return catalog.render(key, lang, {**runtime.conversations.emergency_params(), **params})


def send(client: FlaskClient, update: dict[str, Any]) -> None:
    response = post(client, update)
    assert response.status_code == 200, response.get_data(as_text=True)


def requests(runtime: Runtime) -> list[CallbackRequest]:
    with Session(runtime.engine) as session:
        return list(session.exec(select(CallbackRequest).order_by(CallbackRequest.id)).all())


def stored_text(runtime: Runtime) -> str:
    """Everything a conversation step stores, as text: messages, conversations, outbox."""
    with Session(runtime.engine) as session:
        rows: list[Any] = [
            *session.exec(select(Message)).all(),
            *session.exec(select(Conversation)).all(),
            *session.exec(select(Outbox)).all(),
        ]
        return json.dumps([row.model_dump(mode="json") for row in rows], ensure_ascii=False)


class CallBack(Call):
    """The call we placed, as Twilio sends it: the citizen in To, machine detection's verdict
    in AnsweredBy."""

    def answer(self, request_id: int, answered_by: str = "human"):  # type: ignore[no-untyped-def]
        params = {
            "CallSid": self.sid,
            "AccountSid": ACCOUNT_SID,
            "From": TWILIO_NUMBER,
            "To": self.caller,
            "CallStatus": "in-progress",
            "Direction": "outbound-api",
            "AnsweredBy": answered_by,
        }
        return self.post(f"/twilio/voice/callback?request={request_id}", params)


def test_call_me_shares_the_citizens_own_number_and_the_call_follows(
    client: FlaskClient,
    runtime: Runtime,
    fake_api: FakeBotApi,
    sender: Any,
    twilio: FakeCalls,
    calls_api: Any,
    clock: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    u = Updates(FR_USER)
    send(client, u.text("APPEL"))  # a new contact picks a language first
    send(client, u.button("fr"))
    ask = outbox(runtime)[-1]
    assert ask.body == t(runtime, "callback.ask_phone")
    button = t(runtime, "callback.ask_phone.button")
    assert ask.payload == {"buttons": [], "share_phone": button}
    dispatch(runtime, sender)
    shown = fake_api.calls_to("sendMessage")[-1]
    assert shown.params["reply_markup"] == {
        "keyboard": [[{"text": button, "request_contact": True}]],
        "resize_keyboard": True,
        "one_time_keyboard": True,
    }

    # Someone else's contact card: refused, the button shown again, nothing requested.
    send(client, u.contact("+22376999999", user_id=BM_USER))
    refused = outbox(runtime)[-1]
    invalid = t(runtime, "callback.ask_phone.invalid")
    assert refused.body == f"{invalid}\n\n{t(runtime, 'callback.ask_phone')}"
    assert refused.payload == {"buttons": [], "share_phone": button}
    assert requests(runtime) == []

    # Their own: the request is made, and they are told when they will be called.
    own = u.contact(PHONE)
    send(client, own)
    told = outbox(runtime)[-1]
    assert told.body == t(runtime, "callback.requested", callback_from=TWILIO_NUMBER)
    assert told.payload == {"buttons": [], "remove_keyboard": True}
    queued = len(outbox(runtime))
    send(client, own)  # Telegram delivers the update again
    assert len(outbox(runtime)) == queued
    [row] = requests(runtime)
    assert (row.status, row.source) == ("requested", "telegram")
    assert MORNING <= row.due_at < MORNING + timedelta(minutes=1)  # now: inside the hours
    dispatch(runtime, sender)
    assert fake_api.calls_to("sendMessage")[-1].params["reply_markup"] == {"remove_keyboard": True}

    # The request is the number's: a contact of its own, encrypted like every number, speaking
    # the language chosen on Telegram; nowhere else is the number kept in clear.
    with Session(runtime.engine) as session:
        phone = find_contact(session, runtime.vault, f"tel:{PHONE}")
        assert phone is not None
        assert (row.contact_id, phone.channel, phone.language) == (phone.id, "tel", "fr")
        assert DIGITS not in phone.address_enc
        assert contact(runtime, FR_USER).id != phone.id  # type: ignore[union-attr]
        assert len(session.exec(select(Contact)).all()) == 2
    assert DIGITS not in stored_text(runtime)

    # The worker calls that number, asking Twilio who answers; the citizen picks up and hears
    # the report IVR in French, without a language menu.
    assert place_due_calls(runtime, MORNING + timedelta(minutes=1), calls_api) == {"placed": 1}
    [form] = twilio.placed
    assert form["To"] == [PHONE] and form["From"] == [TWILIO_NUMBER]
    assert form["MachineDetection"] == ["Enable"]
    row = requests(runtime)[0]
    heard = CallBack(client, PHONE, sid=row.call_sid).answer(row.id)
    assert heard.said[:3] == [
        t(runtime, "callback.call_intro"),
        t(runtime, "report.welcome"),
        t(runtime, "report.intent"),
    ]
    assert requests(runtime)[0].status == "answered"
    assert DIGITS not in caplog.text and str(FR_USER) not in caplog.text


def test_appel_command_and_a_request_already_open(
    client: FlaskClient, runtime: Runtime, clock: Any
) -> None:
    """/appel is the APPEL keyword; asking again while a call is pending says so."""
    u = Updates(BM_USER)
    send(client, u.text("WELE"))
    send(client, u.button("bm"))
    send(client, u.contact("+22366300002"))
    assert outbox(runtime)[-1].body == t(
        runtime, "callback.requested", "bm", callback_from=TWILIO_NUMBER
    )
    send(client, u.command("/appel"))
    assert outbox(runtime)[-1].body == t(runtime, "callback.ask_phone", "bm")
    send(client, u.contact("+22366300002"))
    assert outbox(runtime)[-1].body == t(
        runtime, "callback.pending", "bm", callback_from=TWILIO_NUMBER
    )
    assert len(requests(runtime)) == 1
