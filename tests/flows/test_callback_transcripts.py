"""Transcripts of a call-back asked on Telegram (docs/voice.md, "Call-back"), in French and
Bambara, on SQLite and PostgreSQL.

Telegram gives no phone number: APPEL (WELE) shows a "call me" button that shares the number of
the citizen's own account; a number typed, or someone else's contact, is refused. Then the
worker places the call with the real twilio Client against a local fake of Twilio's Calls API.
The clock is fixed at 10:00 in Bamako, inside the call-back hours.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import time_machine
from pytest_httpserver import HTTPServer
from sqlmodel import select

from citoyen.models import CallbackRequest
from citoyen.services.callbacks import place_due_calls
from citoyen.services.contacts import find_contact
from tests.channels.twilio_calls import fake_calls, placer
from tests.channels.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL
from tests.dialog import (
    DEFAULT,
    Dialog,
    choose,
    language_menu,
    phone_question,
    ready_runtime,
    retry,
    say,
    share_contact,
    verify_dialog,
)
from tests.flows.test_report_transcripts import language_number

MORNING = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
TWILIO_NUMBER = "+12025550142"
KEYWORD = {"fr": "APPEL", "bm": "WELE"}
OWN = {"fr": "+22376400001", "bm": "+22366400002"}
SOMEONE = "+22376999999"
ASK = phone_question("callback.ask_phone", "callback.ask_phone.button")
REFUSED = [say("callback.ask_phone.invalid"), ASK]
CALLED = say("callback.requested", callback_from=TWILIO_NUMBER)


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(MORNING, tick=False) as traveller:
        yield traveller


@pytest.fixture
def runtime(settings, clock):
    configured = settings.model_copy(
        update={
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_from_number": TWILIO_NUMBER,
            "public_url": PUBLIC_URL,
        }
    )
    return ready_runtime(configured)


@pytest.mark.parametrize("lang", ["fr", "bm"])
def test_appel_on_telegram_shares_the_citizens_own_number(
    runtime, httpserver: HTTPServer, lang: str
) -> None:
    d = Dialog(runtime, "telegram", lang=lang)
    verify_dialog(
        d,
        [
            (KEYWORD[lang], language_menu(lang=DEFAULT)),
            (choose(language_number(d), lang), ASK),
            ("76 40 00 01", REFUSED),  # a typed number could be anyone's
            (share_contact(SOMEONE, own=False), REFUSED),
            (share_contact(OWN[lang]), CALLED),
            (retry(), CALLED),  # Telegram delivers the update again
        ],
    )
    with d.session() as session:
        [row] = session.exec(select(CallbackRequest)).all()
        phone = find_contact(session, runtime.vault, f"tel:{OWN[lang]}")
    assert phone is not None and row.contact_id == phone.id and phone.language == lang
    assert (row.source, row.status) == ("telegram", "requested")

    twilio = fake_calls(httpserver)
    assert place_due_calls(runtime, MORNING, placer(httpserver, TWILIO_NUMBER)) == {"placed": 1}
    assert twilio.to == [OWN[lang]]
