"""Twilio webhooks accept only requests Twilio signed for this deployment's public URL.

Signatures are made with the twilio library's own RequestValidator. A refused request gets 403,
stores nothing, and its log line does not carry the sender's number.
"""

from __future__ import annotations

import logging

import pytest

from citoyen.web import create_app
from citoyen.web.twilio_auth import SIGNATURE_HEADER
from tests.channels.sms.conftest import FROM_NUMBER, counts
from tests.channels.twilio_helpers import ACCOUNT_SID, PUBLIC_URL, sign, signed_post

NUMBER = "+22376554433"

FORMS = {
    "/twilio/sms": {
        "From": NUMBER,
        "To": FROM_NUMBER,
        "Body": "Bonjour",
        "MessageSid": "SM" + "a" * 32,
        "AccountSid": ACCOUNT_SID,
    },
    "/twilio/status": {
        "MessageSid": "SM" + "b" * 32,
        "MessageStatus": "delivered",
        "To": NUMBER,
        "AccountSid": ACCOUNT_SID,
    },
}
PATHS = list(FORMS)


def _refused(response, runtime, before) -> None:
    assert response.status_code == 403
    assert counts(runtime) == before


@pytest.mark.parametrize("path", PATHS)
def test_a_signed_request_is_accepted(client, runtime, path) -> None:
    assert signed_post(client, path, FORMS[path]).status_code == 200


@pytest.mark.parametrize("path", PATHS)
def test_missing_signature_is_refused(client, runtime, path) -> None:
    before = counts(runtime)
    response = client.post(path, data=FORMS[path])
    _refused(response, runtime, before)


@pytest.mark.parametrize("path", PATHS)
def test_signature_made_with_another_token_is_refused(client, runtime, path) -> None:
    before = counts(runtime)
    _refused(signed_post(client, path, FORMS[path], token="not-our-token"), runtime, before)


@pytest.mark.parametrize("path", PATHS)
def test_garbage_signature_is_refused(client, runtime, path) -> None:
    before = counts(runtime)
    _refused(signed_post(client, path, FORMS[path], signature="x" * 28), runtime, before)


@pytest.mark.parametrize(
    "url",
    [
        "https://other-deployment.example.ml",  # a request signed for someone else's service
        "http://citoyen.example.ml",  # the plain-http URL is a different URL
    ],
)
@pytest.mark.parametrize("path", PATHS)
def test_signature_replayed_to_another_url_is_refused(client, runtime, path, url) -> None:
    before = counts(runtime)
    response = signed_post(client, path, FORMS[path], public_url=url)
    _refused(response, runtime, before)


def test_signature_for_another_path_is_refused(client, runtime) -> None:
    """A status callback's signature replayed to the SMS webhook."""
    before = counts(runtime)
    form = FORMS["/twilio/sms"]
    signature = sign(PUBLIC_URL + "/twilio/status", form)
    _refused(signed_post(client, "/twilio/sms", form, signature=signature), runtime, before)


def test_tampered_form_is_refused(client, runtime) -> None:
    before = counts(runtime)
    form = FORMS["/twilio/sms"]
    signature = sign(PUBLIC_URL + "/twilio/sms", form)
    response = client.post(
        "/twilio/sms", data={**form, "Body": "STOP"}, headers={SIGNATURE_HEADER: signature}
    )
    _refused(response, runtime, before)


def test_query_string_is_part_of_the_signed_url(client, runtime) -> None:
    form = FORMS["/twilio/sms"]
    good = sign(PUBLIC_URL + "/twilio/sms?channel=sms", form)
    response = client.post("/twilio/sms?channel=sms", data=form, headers={SIGNATURE_HEADER: good})
    assert response.status_code == 200
    before = counts(runtime)
    without_query = sign(PUBLIC_URL + "/twilio/sms", {**form, "MessageSid": "SM" + "c" * 32})
    response = client.post(
        "/twilio/sms?channel=sms",
        data={**form, "MessageSid": "SM" + "c" * 32},
        headers={SIGNATURE_HEADER: without_query},
    )
    _refused(response, runtime, before)


def test_public_url_with_trailing_slash(sms_settings) -> None:
    from citoyen.services.setup import ensure_ready

    app = create_app(
        {
            "TESTING": True,
            "SETTINGS": sms_settings.model_copy(update={"public_url": PUBLIC_URL + "/"}),
        }
    )
    ensure_ready(app.extensions["citoyen"])
    response = signed_post(app.test_client(), "/twilio/sms", FORMS["/twilio/sms"])
    assert response.status_code == 200


@pytest.mark.parametrize("path", PATHS)
def test_without_auth_token_everything_is_refused(sms_settings, caplog, path) -> None:
    app = create_app(
        {"TESTING": True, "SETTINGS": sms_settings.model_copy(update={"twilio_auth_token": None})}
    )
    runtime = app.extensions["citoyen"]
    before = counts(runtime)
    caplog.set_level(logging.INFO)
    response = signed_post(app.test_client(), path, FORMS[path])
    _refused(response, runtime, before)
    assert any("TWILIO_AUTH_TOKEN" in m for m in caplog.messages)


def test_refusals_are_logged_without_the_number(client, runtime, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    signed_post(client, "/twilio/sms", FORMS["/twilio/sms"], token="wrong")
    assert any("403" in m and "/twilio/sms" in m for m in caplog.messages)
    digits = NUMBER.removeprefix("+")
    for record in caplog.records:
        assert digits not in record.getMessage()
        assert digits[3:] not in record.getMessage()
