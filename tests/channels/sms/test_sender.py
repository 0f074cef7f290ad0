"""Outbound SMS through the real twilio ``Client`` against a local fake of Twilio's REST API.

The fake (pytest-httpserver) records what Twilio would receive; errors come back in Twilio's
JSON error format so the library raises exactly what it raises in production.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
from datetime import UTC, datetime

import pytest
from sqlmodel import Session
from twilio.http.http_client import TwilioHttpClient
from werkzeug import Request, Response

from citoyen.channels.base import OutboundMessage, PermanentSendError, TransientSendError
from citoyen.channels.sms import (
    SmsSender,
    TwilioSmsProvider,
    map_twilio_error,
    twilio_http_client,
    twilio_sms_sender,
)
from citoyen.db import write_session
from citoyen.models import Contact, Outbox
from citoyen.services.contacts import get_or_create_contact
from citoyen.services.dispatch import Dispatcher
from citoyen.services.outbox import enqueue
from tests.channels.sms.conftest import FROM_NUMBER
from tests.channels.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL

TO = "+22376443322"
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
STATUS_CALLBACK = PUBLIC_URL + "/twilio/status"


def LocalTwilio(base_url: str) -> TwilioHttpClient:
    """The library's own HTTP client, sent to a local server instead of api.twilio.com."""
    return twilio_http_client(base_url, timeout=5)


def message_json(sid: str = "SM" + "0" * 31 + "1") -> dict:
    return {
        "sid": sid,
        "account_sid": ACCOUNT_SID,
        "to": TO,
        "from": FROM_NUMBER,
        "body": "Bonjour",
        "status": "queued",
        "num_segments": "1",
        "direction": "outbound-api",
        "uri": f"{MESSAGES_PATH[:-5]}/{sid}.json",
    }


def twilio_error(code: int, status: int, message: str) -> Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return Response(json.dumps(body), status=status, content_type="application/json")


@pytest.fixture
def sender(httpserver) -> SmsSender:
    return SmsSender(
        TwilioSmsProvider(
            ACCOUNT_SID,
            AUTH_TOKEN,
            FROM_NUMBER,
            STATUS_CALLBACK,
            http_client=LocalTwilio(httpserver.url_for("/")),
        )
    )


def outbound(address: str = f"tel:{TO}", body: str | None = "Votre signalement avance.", oid=1):
    return OutboundMessage(oid, f"key-{oid}", "sms", address, body)


def test_send_posts_the_message_form_to_twilio(httpserver, sender) -> None:
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return Response(json.dumps(message_json()), status=201, content_type="application/json")

    httpserver.expect_oneshot_request(MESSAGES_PATH, method="POST").respond_with_handler(handler)
    result = sender.send(outbound())
    httpserver.check_assertions()
    assert result.provider_id == "SM" + "0" * 31 + "1"
    [request] = seen
    assert request.form.to_dict() == {
        "To": TO,
        "From": FROM_NUMBER,
        "Body": "Votre signalement avance.",
        "StatusCallback": STATUS_CALLBACK,
    }
    user, _, password = (
        base64.b64decode(request.headers["Authorization"].split()[1]).decode().partition(":")
    )
    assert (user, password) == (ACCOUNT_SID, AUTH_TOKEN)


@pytest.mark.parametrize(
    ("code", "status", "kind", "opt_out"),
    [
        (21610, 400, PermanentSendError, True),
        (21211, 400, PermanentSendError, False),
        (21614, 400, PermanentSendError, False),
        (20429, 429, TransientSendError, None),
        (20500, 500, TransientSendError, None),
        (20503, 503, TransientSendError, None),
        (20003, 401, TransientSendError, None),  # credentials: the operator can fix them
        (21602, 400, PermanentSendError, False),  # message body is required
    ],
)
def test_twilio_errors_are_mapped(httpserver, sender, code, status, kind, opt_out) -> None:
    httpserver.expect_oneshot_request(MESSAGES_PATH, method="POST").respond_with_response(
        twilio_error(code, status, f"The 'To' number {TO} failed")
    )
    with pytest.raises(kind) as caught:
        sender.send(outbound())
    assert str(code) in str(caught.value)
    assert TO not in str(caught.value)  # provider texts may quote the number
    assert TO[1:] not in str(caught.value)
    if opt_out is not None:
        assert caught.value.opt_out is opt_out


@pytest.mark.parametrize("number", ["+22344000002", "+22320000001", "+15550000000"])
def test_an_invalid_number_fails_with_its_reason_before_the_provider(httpserver, sender, number):
    """Possible but not valid (no such number in its country's plan): a permanent failure that
    says so, and no request to the provider."""
    with pytest.raises(PermanentSendError) as caught:
        sender.send(outbound(f"tel:{number}"))
    assert caught.value.code == "invalid_number"
    assert "not a valid phone number" in str(caught.value)
    assert number not in str(caught.value)
    assert httpserver.log == []


def test_the_api_url_setting_sends_to_another_twilio_api(httpserver, settings) -> None:
    """CITOYEN_TWILIO_API_URL: the sender built from settings posts there, not to Twilio."""
    httpserver.expect_oneshot_request(MESSAGES_PATH, method="POST").respond_with_response(
        Response(json.dumps(message_json()), status=201, content_type="application/json")
    )
    configured = settings.model_copy(
        update={
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_from_number": FROM_NUMBER,
            "public_url": PUBLIC_URL,
            "twilio_api_url": httpserver.url_for("/"),
        }
    )
    sender = twilio_sms_sender(type("R", (), {"settings": configured})())
    assert sender is not None
    assert sender.send(outbound()).provider_id == "SM" + "0" * 31 + "1"
    httpserver.check_assertions()


def test_unreachable_twilio_is_transient() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sender = SmsSender(
        TwilioSmsProvider(
            ACCOUNT_SID,
            AUTH_TOKEN,
            FROM_NUMBER,
            STATUS_CALLBACK,
            http_client=LocalTwilio(f"http://127.0.0.1:{port}"),
        )
    )
    with pytest.raises(TransientSendError):
        sender.send(outbound())


@pytest.mark.parametrize(
    ("address", "body"),
    [
        ("telegram:123456", "Bonjour"),
        (f"tel:{TO}", ""),
        (f"tel:{TO}", None),
        (f"tel:{TO}", "x" * 1601),
    ],
)
def test_messages_twilio_cannot_send_fail_before_any_request(httpserver, sender, address, body):
    with pytest.raises(PermanentSendError):
        sender.send(outbound(address, body))
    assert httpserver.log == []


def test_map_twilio_error_without_a_code() -> None:
    class Fake:
        status, code, msg = 502, None, "Bad gateway"

    assert isinstance(map_twilio_error(Fake()), TransientSendError)


# --- through the dispatcher ----------------------------------------------------------------------


@pytest.fixture
def queued(runtime) -> tuple[int, int]:
    with write_session(runtime.engine) as session:
        contact, _ = get_or_create_contact(session, runtime.vault, TO, datetime.now(UTC))
        contact.survey_consent = True
        row = enqueue(
            session,
            channel="sms",
            idempotency_key="report-1-status",
            body="Votre signalement 482-1937 est pris en charge.",
            contact_id=contact.id,
            kind="notification",
        )
        session.flush()
        return row.id, contact.id


def test_dispatcher_sends_through_twilio(runtime, httpserver, sender, queued, caplog) -> None:
    oid, _ = queued
    httpserver.expect_oneshot_request(MESSAGES_PATH, method="POST").respond_with_json(
        message_json("SM" + "4" * 32), status=201
    )
    caplog.set_level(logging.DEBUG)
    stats = Dispatcher(runtime, {"sms": sender}).run_once()
    assert stats.sent == 1
    [(request, _)] = httpserver.log
    assert request.form["To"] == TO
    assert request.form["Body"] == "Votre signalement 482-1937 est pris en charge."
    with Session(runtime.engine) as session:
        row = session.get(Outbox, oid)
    assert (row.status, row.provider_id) == ("sent", "SM" + "4" * 32)
    for record in caplog.records:
        assert TO[1:] not in record.getMessage() and TO[4:] not in record.getMessage()


def test_dispatcher_opts_out_on_21610(runtime, httpserver, sender, queued) -> None:
    oid, cid = queued
    httpserver.expect_oneshot_request(MESSAGES_PATH, method="POST").respond_with_response(
        twilio_error(21610, 400, "Attempt to send to unsubscribed recipient")
    )
    stats = Dispatcher(runtime, {"sms": sender}).run_once()
    assert stats.failed == 1
    with Session(runtime.engine) as session:
        row = session.get(Outbox, oid)
        contact = session.get(Contact, cid)
    assert row.status == "failed"
    assert "21610" in row.error
    assert (contact.opted_out, contact.survey_consent) == (True, False)
