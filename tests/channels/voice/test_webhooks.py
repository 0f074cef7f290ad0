"""The voice webhooks refuse what Twilio did not sign, and answer malformed requests with 4xx.

A refused request changes nothing: no contact, message, conversation, report or attachment.
Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import pytest
from sqlmodel import Session, func, select

from citoyen.models import Attachment, Contact, Conversation, Message, Report
from citoyen.runtime import Runtime
from tests.channels.twilio_helpers import ACCOUNT_SID, PUBLIC_URL, sign, signed_post
from tests.channels.voice.helpers import CALLER, Call

SID = "CA" + "a" * 32
RECORDING = "RE" + "b" * 32
BASE = {"CallSid": SID, "AccountSid": ACCOUNT_SID, "From": CALLER, "To": "+22320200000"}
ROUTES = [
    ("/twilio/voice", BASE),
    ("/twilio/voice/step?n=1", {**BASE, "Digits": "1"}),
    ("/twilio/voice/step?n=1&timeout=1", BASE),
    (
        "/twilio/voice/recorded?n=1",
        {**BASE, "RecordingSid": RECORDING, "RecordingDuration": "5", "RecordingUrl": "https://x"},
    ),
    (
        "/twilio/voice/recording-status",
        {**BASE, "RecordingSid": RECORDING, "RecordingStatus": "completed"},
    ),
]


def stored(runtime: Runtime) -> int:
    with Session(runtime.engine) as session:
        return sum(
            session.exec(select(func.count()).select_from(model)).one()
            for model in (Contact, Conversation, Message, Report, Attachment)
        )


@pytest.mark.parametrize(("path", "params"), ROUTES)
def test_signed_requests_are_accepted(client, runtime: Runtime, path, params) -> None:
    response = signed_post(client, path, params)
    assert response.status_code in (200, 204)


@pytest.mark.parametrize(("path", "params"), ROUTES)
@pytest.mark.parametrize(
    "how",
    ["wrong token", "missing", "empty", "other path", "other host", "other step", "tampered"],
)
def test_unsigned_or_misdirected_requests_get_403_and_store_nothing(
    client, runtime: Runtime, path, params, how
) -> None:
    if how == "missing":
        response = client.post(path, data=params)
    elif how == "tampered":
        # Signed for these values, then one value changed (another caller's number).
        signature = sign(PUBLIC_URL + path, params)
        response = signed_post(
            client, path, {**params, "From": "+22376999999"}, signature=signature
        )
    else:
        signature = {
            "wrong token": sign(PUBLIC_URL + path, params, token="not-the-token"),
            "empty": "",
            "other path": sign(PUBLIC_URL + "/twilio/sms", params),
            "other host": sign("https://attacker.example" + path, params),
            "other step": sign(PUBLIC_URL + path.replace("n=1", "n=2"), params),
        }[how]
        if how == "other step" and "n=1" not in path:
            signature = sign(PUBLIC_URL + path + "?n=7", params)
        response = signed_post(client, path, params, signature=signature)
    assert response.status_code == 403
    assert stored(runtime) == 0


def test_without_an_auth_token_everything_is_refused(app, runtime: Runtime) -> None:
    runtime.settings.twilio_auth_token = None
    response = signed_post(app.test_client(), "/twilio/voice", BASE)
    assert response.status_code == 403
    assert stored(runtime) == 0


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/twilio/voice", {k: v for k, v in BASE.items() if k != "CallSid"}),
        ("/twilio/voice", {**BASE, "CallSid": "CA123"}),
        ("/twilio/voice", {**BASE, "CallSid": "'; DROP TABLE messages; --"}),
        ("/twilio/voice", {k: v for k, v in BASE.items() if k != "From"}),
        ("/twilio/voice", {**BASE, "From": "bonjour"}),  # neither a number nor withheld
        ("/twilio/voice/step?n=1", {**BASE, "Digits": "abc"}),
        ("/twilio/voice/step?n=1", {**BASE, "Digits": "1" * 200}),
        ("/twilio/voice/step?n=1", BASE),  # no Digits and not a timeout
        ("/twilio/voice/step", {**BASE, "Digits": "1"}),  # no step number
        ("/twilio/voice/step?n=x", {**BASE, "Digits": "1"}),
        ("/twilio/voice/step?n=0", {**BASE, "Digits": "1"}),
        ("/twilio/voice/step?n=99999999999", {**BASE, "Digits": "1"}),
        ("/twilio/voice/recorded?n=1", BASE),  # no RecordingSid
        ("/twilio/voice/recorded?n=1", {**BASE, "RecordingSid": "../../etc/passwd"}),
        ("/twilio/voice/recording-status", {**BASE, "RecordingSid": "nope"}),
        ("/twilio/voice/recording-status", {"RecordingSid": RECORDING}),
    ],
)
def test_malformed_requests_get_400_and_store_nothing(client, runtime: Runtime, path, params):
    response = signed_post(client, path, params)
    assert response.status_code == 400
    assert stored(runtime) == 0


def test_a_huge_body_is_refused_with_413(client, runtime: Runtime) -> None:
    params = {**BASE, "Digits": "1", "Padding": "x" * (2 * 1024 * 1024)}
    response = client.post(
        "/twilio/voice/step?n=1", data=params, headers={"X-Twilio-Signature": "x"}
    )
    assert response.status_code == 413
    assert stored(runtime) == 0


def test_only_hash_pressed_counts_as_no_answer(client, runtime: Runtime) -> None:
    call = Call(client)
    call.start()
    heard = call.press("#")
    expected = runtime.bundle.catalog.render("system.no_answer", "fr", {})
    assert heard.said[0] == expected


@pytest.mark.parametrize(
    "path",
    [
        "/audio/bm/../../fr.yaml",
        "/audio/bm/..%2F..%2Ffr.yaml",
        "/audio/bm/%2e%2e/%2e%2e/fr.yaml",
        "/audio/../locales/bm/audio/report.welcome.wav",
        "/audio/bm/..%2Faudio%2Freport.welcome.wav",
        "/audio/xx/report.welcome.wav",
        "/audio/bm/report.welcome.yaml",
        "/audio/bm/missing.wav",
        "/audio/bm/%2Fetc%2Fpasswd.wav",
    ],
)
def test_audio_refuses_anything_but_a_recorded_prompt(client, path: str) -> None:
    # Werkzeug answers a doubled slash with a redirect to the merged path: follow it.
    response = client.get(path, follow_redirects=True)
    assert response.status_code == 404


def test_audio_serves_recorded_prompts(client, runtime: Runtime) -> None:
    response = client.get("/audio/bm/report.welcome.wav")
    assert response.status_code == 200
    assert response.mimetype == "audio/wav"
    expected = runtime.settings.locales_dir / "bm" / "audio" / "report.welcome.wav"
    assert response.data == expected.read_bytes()
    assert response.headers["Cache-Control"] in (
        "public, max-age=86400",
        "max-age=86400, public",
    )
