"""``POST /twilio/status``: delivery reports update the outbox; call statuses go to voice code."""

from __future__ import annotations

import logging
import sys
import types
from datetime import UTC, datetime

import pytest
from sqlmodel import Session

from citoyen.db import write_session
from citoyen.models import Contact, Outbox
from citoyen.services.contacts import get_or_create_contact
from citoyen.services.outbox import enqueue
from tests.channels.sms.conftest import counts
from tests.channels.twilio_helpers import ACCOUNT_SID, signed_post

SID = "SM" + "d" * 32
NUMBER = "+22376998877"


@pytest.fixture
def sent(runtime) -> tuple[int, int]:
    """An outbox row sent through Twilio as ``SID``; returns (outbox id, contact id)."""
    now = datetime.now(UTC)
    with write_session(runtime.engine) as session:
        contact, _ = get_or_create_contact(session, runtime.vault, NUMBER, now)
        contact.survey_consent = True
        row = enqueue(
            session, channel="sms", idempotency_key="n1", body="Bonjour", contact_id=contact.id
        )
        row.status, row.provider_id, row.attempts = "sent", SID, 1
        session.flush()
        return row.id, contact.id


def status(client, message_status: str, sid: str = SID, **extra: str):
    form = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": message_status,
        "SmsStatus": message_status,
        "AccountSid": ACCOUNT_SID,
        "To": NUMBER,
        **extra,
    }
    return signed_post(client, "/twilio/status", form)


def outbox(runtime, oid: int) -> Outbox:
    with Session(runtime.engine) as session:
        return session.get(Outbox, oid)


def test_delivery_statuses_are_recorded_and_never_go_back(client, runtime, sent) -> None:
    oid, _ = sent
    for value in ("queued", "sent", "delivered"):
        assert status(client, value).status_code == 200
        assert outbox(runtime, oid).delivery_status == value
    # A late "sent" callback after "delivered" does not undo it.
    assert status(client, "sent").status_code == 200
    row = outbox(runtime, oid)
    assert (row.delivery_status, row.status, row.error) == ("delivered", "sent", None)


def test_undelivered_records_the_error_code(client, runtime, sent) -> None:
    oid, cid = sent
    assert status(client, "undelivered", ErrorCode="30003").status_code == 200
    row = outbox(runtime, oid)
    assert row.delivery_status == "undelivered"
    assert "30003" in row.error
    with Session(runtime.engine) as session:
        assert session.get(Contact, cid).opted_out is False


def test_error_21610_opts_the_contact_out(client, runtime, sent) -> None:
    oid, cid = sent
    assert status(client, "failed", ErrorCode="21610").status_code == 200
    assert "21610" in outbox(runtime, oid).error
    with Session(runtime.engine) as session:
        contact = session.get(Contact, cid)
    assert (contact.opted_out, contact.survey_consent) == (True, False)


def test_unknown_message_sid_is_acknowledged_and_changes_nothing(
    client, runtime, sent, caplog
) -> None:
    oid, _ = sent
    before = counts(runtime)
    caplog.set_level(logging.INFO)
    response = status(client, "delivered", sid="SM" + "e" * 32)
    assert response.status_code == 200
    assert counts(runtime) == before
    assert outbox(runtime, oid).delivery_status is None
    assert any("unknown MessageSid" in m for m in caplog.messages)
    assert not [m for m in caplog.messages if NUMBER[1:] in m]


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"MessageSid": SID},
        {"MessageSid": SID, "MessageStatus": "<delivered>"},
        {"MessageSid": "SM!", "MessageStatus": "delivered"},
        {"MessageSid": SID, "MessageStatus": "failed", "ErrorCode": "abc"},
    ],
)
def test_malformed_callbacks_get_400(client, runtime, sent, form) -> None:
    oid, _ = sent
    response = signed_post(client, "/twilio/status", {"AccountSid": ACCOUNT_SID, **form})
    assert response.status_code == 400
    assert outbox(runtime, oid).delivery_status is None


CALL = {"CallSid": "CA" + "f" * 32, "CallStatus": "completed", "AccountSid": ACCOUNT_SID}


def test_call_statuses_are_acknowledged_without_voice_handling(
    client, runtime, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "citoyen.services.calls", None)  # import fails
    before = counts(runtime)
    assert signed_post(client, "/twilio/status", CALL).status_code == 200
    assert counts(runtime) == before


def test_call_statuses_go_to_the_voice_handler_when_present(client, runtime, monkeypatch) -> None:
    seen = []
    fake = types.ModuleType("citoyen.services.calls")
    fake.handle_call_status = lambda rt, form: seen.append((rt, dict(form)))
    monkeypatch.setitem(sys.modules, "citoyen.services.calls", fake)
    assert signed_post(client, "/twilio/status", CALL).status_code == 200
    assert seen == [(runtime, CALL)]
