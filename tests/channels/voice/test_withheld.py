"""Calls with a withheld caller id: each call is its own contact, ``withheld:<CallSid>``.

The caller can report like anyone else; the report is always anonymous, never to be called back,
and no notification is ever queued for that contact. Each test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest
from sqlmodel import Session, func, select

from citoyen.db import write_session
from citoyen.messages.addresses import AddressError, normalise_address
from citoyen.models import Contact, Message, Outbox, Report
from citoyen.runtime import Runtime
from citoyen.services import queues
from tests.channels.twilio_helpers import ACCOUNT_SID, signed_post
from tests.channels.voice.helpers import Call

WITHHELD = ["anonymous", "Anonymous", "+266696687", "Restricted", "Unknown", ""]


def full_call(client, caller: str, *, anonymous_key: str = "1") -> Call:
    """A French caller reports a theft in Pogo (Niono), then answers the anonymity question."""
    call = Call(client, caller=caller)
    call.start()
    call.press("1")  # français
    call.press("1")  # report a concern
    call.press("2")  # theft
    call.press("2")  # Ségou
    call.press("1")  # cercle Niono
    call.press("2")  # commune Pogo
    call.press("2")  # no danger now
    call.record()
    call.press(anonymous_key)  # 1: stay anonymous, 2: may be called back
    heard = call.press("2")  # no surveys
    assert heard.waits == "end"
    return call


def reports(runtime: Runtime) -> list[Report]:
    with Session(runtime.engine) as session:
        return list(session.exec(select(Report).order_by(Report.id)).all())


def contacts(runtime: Runtime) -> list[Contact]:
    with Session(runtime.engine) as session:
        return list(session.exec(select(Contact).order_by(Contact.id)).all())


def notifications_for(runtime: Runtime, contact_id: int) -> int:
    with Session(runtime.engine) as session:
        return session.exec(
            select(func.count())
            .select_from(Outbox)
            .where(Outbox.contact_id == contact_id, Outbox.kind == "notification")
        ).one()


def acknowledge(runtime: Runtime, report: Report):  # type: ignore[no-untyped-def]
    with write_session(runtime.engine) as session:
        return queues.change_status(
            session, session.get(Report, report.id), "acknowledged", user_id=None
        )


@pytest.mark.parametrize("sender", WITHHELD)
def test_a_withheld_caller_reaches_the_language_menu(client, runtime: Runtime, sender) -> None:
    call = Call(client, caller=sender)
    heard = call.start()
    assert heard.waits == "key"
    said = runtime.bundle.catalog.render("system.language_prompt", "fr", {})
    assert heard.lines[0] == ("say:fr-FR", said)
    [contact] = contacts(runtime)
    assert contact.channel == "withheld"
    assert runtime.vault.decrypt(contact.address_enc) == f"withheld:{call.sid}"


def test_an_anonymous_call_makes_an_anonymous_report_even_if_callback_was_accepted(
    client, runtime: Runtime
) -> None:
    full_call(client, "anonymous", anonymous_key="2")  # "you may call me back"
    [report] = reports(runtime)
    assert report.channel == "voice" and report.incomplete is False
    assert report.anonymous is True
    assert report.callback_ok is False
    assert len(contacts(runtime)) == 1


def test_two_anonymous_calls_are_two_contacts(client, runtime: Runtime) -> None:
    full_call(client, "anonymous")
    full_call(client, "Restricted")
    first, second = reports(runtime)
    assert first.contact_id != second.contact_id
    assert [c.channel for c in contacts(runtime)] == ["withheld", "withheld"]


def test_a_status_change_queues_no_notification_for_a_withheld_caller(
    client, runtime: Runtime
) -> None:
    full_call(client, "anonymous")
    full_call(client, "+22376123456", anonymous_key="2")  # a caller we can write to
    withheld, known = reports(runtime)
    event = acknowledge(runtime, withheld)
    assert notifications_for(runtime, withheld.contact_id) == 0
    assert event.data["notified"] == 0
    assert event.data["not_notified"] == {"withheld": 1}
    # The same change on a reachable caller's report is written to them.
    acknowledge(runtime, known)
    assert notifications_for(runtime, known.contact_id) == 1


def test_sms_from_anonymous_is_still_refused(client, runtime: Runtime) -> None:
    params = {
        "MessageSid": "SM" + "c" * 32,
        "AccountSid": ACCOUNT_SID,
        "From": "anonymous",
        "To": "+22320200000",
        "Body": "Bonjour",
    }
    response = signed_post(client, "/twilio/sms", params)
    assert response.status_code == 400
    with Session(runtime.engine) as session:
        assert session.exec(select(func.count()).select_from(Message)).one() == 0
        assert session.exec(select(func.count()).select_from(Contact)).one() == 0


@pytest.mark.parametrize(
    "sender", ["withheld:CA" + "a" * 32, "bonjour", "telegram:12345", "withheld:anything"]
)
def test_a_caller_cannot_claim_a_withheld_address_or_a_non_number(
    client, runtime: Runtime, sender
) -> None:
    call = Call(client, caller=sender)
    response = signed_post(client, "/twilio/voice", call.params())
    assert response.status_code == 400
    assert contacts(runtime) == []


def test_the_withheld_address_form_is_exact() -> None:
    sid = "CA" + "0123456789abcdef" * 2
    assert normalise_address(f"withheld:{sid}") == f"withheld:{sid}"
    for bad in ("withheld:", "withheld:CA123", f"withheld:{sid}0", f"withheld:RE{sid[2:]}"):
        with pytest.raises(AddressError):
            normalise_address(bad)
