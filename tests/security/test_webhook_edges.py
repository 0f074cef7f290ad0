"""Webhook edge cases found by trying the service as an attacker would (issue 22).

Each is a request a provider never sends: it must get a 4xx and change nothing, on SQLite and
PostgreSQL (the ``app`` fixture runs on both through ``db_url``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import Session, select

from citoyen.models import Message
from tests.channels.twilio_helpers import ACCOUNT_SID, PUBLIC_URL, sign
from tests.security.conftest import TELEGRAM_SECRET, snapshot

TELEGRAM = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET, "Content-Type": "application/json"}


def _text_update() -> dict[str, Any]:
    from tests.security.test_fuzz_webhooks import _update_fixtures

    return json.loads(
        json.dumps(next(u for u in _update_fixtures() if "text" in u.get("message", {})))
    )


@pytest.mark.parametrize("depth", [40, 1000, 100_000])
def test_telegram_json_nested_deep_is_a_400(client, runtime, depth: int) -> None:
    """1,000 levels made Python's parser raise RecursionError, which ``get_json(silent=True)``
    lets through: a 500."""
    update = _text_update()
    body = json.dumps(update)[:-1] + ', "extra": ' + "[" * depth + "]" * depth + "}"
    before = snapshot(runtime.engine)
    response = client.post("/telegram/webhook", data=body, headers=TELEGRAM)
    assert response.status_code == 400
    assert snapshot(runtime.engine) == before


@pytest.mark.parametrize(
    "where", [("message", "text"), ("message", "from", "first_name"), ("message", "chat", "type")]
)
@pytest.mark.parametrize("surrogate", ["\\ud800", "\\udfff", "x\\udc00y"])
def test_telegram_lone_surrogate_is_a_400(client, runtime, where, surrogate: str) -> None:
    """``"\\ud800"`` is valid JSON but no UTF-8 text: its insert failed (a 500)."""
    update = _text_update()
    node = update
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = "SURROGATE"
    body = json.dumps(update).replace('"SURROGATE"', f'"{surrogate}"')
    before = snapshot(runtime.engine)
    response = client.post("/telegram/webhook", data=body, headers=TELEGRAM)
    assert response.status_code == 400
    assert snapshot(runtime.engine) == before


def test_telegram_surrogate_in_a_key_is_a_400(client, runtime) -> None:
    update = _text_update()
    body = json.dumps(update)[:-1] + ', "\\ud800": 1}'
    before = snapshot(runtime.engine)
    assert client.post("/telegram/webhook", data=body, headers=TELEGRAM).status_code == 400
    assert snapshot(runtime.engine) == before


def test_telegram_surrogate_pair_is_text_and_kept(client, runtime) -> None:
    """A proper pair (an emoji written as two escapes) is ordinary text."""
    update = _text_update()
    update["message"]["text"] = "PAIR"
    body = json.dumps(update).replace('"PAIR"', '"Bonjour \\ud83d\\ude00"')
    assert client.post("/telegram/webhook", data=body, headers=TELEGRAM).status_code == 200
    with Session(runtime.engine) as session:
        bodies = session.exec(select(Message.body).where(Message.direction == "in")).all()
    assert bodies == ["Bonjour \U0001f600"]


SMS = {
    "AccountSid": ACCOUNT_SID,
    "Body": "Bonjour",
    "From": "+22376900001",
    "MessageSid": "SM" + "a1" * 16,
    "NumMedia": "0",
    "To": "+22320200000",
}


def _post(client: Any, path: str, form: dict[str, str], signature: str | None = None) -> Any:
    signature = signature or sign(PUBLIC_URL + path, form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def test_a_resplit_signed_sms_is_refused(client, runtime) -> None:
    """Twilio signs names and values run together: moving ``NumMedia0`` to the end of
    ``MessageSid`` and dropping ``NumMedia`` keeps the signature and made a new message id
    that passed dedupe."""
    signature = sign(PUBLIC_URL + "/twilio/sms", SMS)
    assert _post(client, "/twilio/sms", SMS, signature).status_code == 200
    resplit = {k: v for k, v in SMS.items() if k != "NumMedia"}
    resplit["MessageSid"] = SMS["MessageSid"] + "NumMedia0"
    assert sign(PUBLIC_URL + "/twilio/sms", resplit) == signature  # the attack's premise
    before = snapshot(runtime.engine)
    assert _post(client, "/twilio/sms", resplit, signature).status_code == 400
    assert snapshot(runtime.engine) == before


VOICE = {"AccountSid": ACCOUNT_SID, "CallSid": "CA" + "b2" * 16, "From": "+22376900001"}
STATUS = {"AccountSid": ACCOUNT_SID, "MessageSid": "SM" + "c3" * 16, "MessageStatus": "sent"}


@pytest.mark.parametrize(
    ("path", "form", "field", "value"),
    [
        ("/twilio/sms", SMS, "MessageSid", "SM" + "a" * 31),
        ("/twilio/sms", SMS, "MessageSid", "SM" + "g" * 32),
        ("/twilio/sms", SMS, "MessageSid", "CA" + "a" * 32),
        ("/twilio/sms", SMS, "MessageSid", "SM_" + "a" * 31),
        ("/twilio/sms", SMS, "AccountSid", "AC" + "0" * 33),
        ("/twilio/sms", SMS, "SmsSid", "SMx"),
        ("/twilio/status", STATUS, "MessageSid", "SM" + "c" * 40),
        ("/twilio/status", STATUS, "AccountSid", "XX" + "0" * 32),
        ("/twilio/voice", VOICE, "CallSid", "CA" + "b" * 32 + "0"),
        ("/twilio/voice", VOICE, "ParentCallSid", "CA1"),
        ("/twilio/voice/recording-status", VOICE, "RecordingSid", "RE" + "d" * 31 + "x"),
    ],
)
def test_provider_ids_out_of_twilio_format_are_a_400(client, runtime, path, form, field, value):
    form = {**form, field: value}
    before = snapshot(runtime.engine)
    assert _post(client, path, form).status_code == 400
    assert snapshot(runtime.engine) == before


# ``str.isdigit`` takes "²" and other scripts' digits, which ``int()`` refuses or reads as another
# number, and ``int()`` refuses more than 4,300 digits: found by the 10,000-case fuzz run.
NOT_NUMBERS = ["²", "١٢", "0" * 4301, "9" * 5000]


@pytest.mark.parametrize("value", ["²", "0" * 4301, "9" * 5000])
def test_a_recording_duration_that_is_no_number_is_unknown(client, runtime, value) -> None:
    form = {
        **VOICE,
        "RecordingSid": "RE" + "d" * 32,
        "RecordingStatus": "completed",
        "RecordingDuration": value,
    }
    assert _post(client, "/twilio/voice/recording-status", form).status_code == 204


@pytest.mark.parametrize("value", NOT_NUMBERS)
def test_an_error_code_that_is_no_number_is_a_400(client, runtime, value) -> None:
    before = snapshot(runtime.engine)
    response = _post(client, "/twilio/status", {**STATUS, "ErrorCode": value})
    assert response.status_code == 400
    assert snapshot(runtime.engine) == before


@pytest.mark.parametrize("sid", ["SM" + "a1" * 16, "MM" + "F0" * 16])
def test_message_ids_in_twilio_format_are_accepted(client, runtime, sid: str) -> None:
    assert _post(client, "/twilio/sms", {**SMS, "MessageSid": sid}).status_code == 200
