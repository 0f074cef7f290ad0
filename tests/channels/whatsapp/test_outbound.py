"""Outbound WhatsApp: the real twilio Client against a local fake of Twilio's Messages API.
Inside the 24-hour window a notice is free-form; outside it the purpose's template in the
citizen's language (ContentSid + ContentVariables); without a template it is held, visible,
and goes out free-form once the citizen writes again."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
from sqlmodel import Session

from citoyen.channels.sms import TwilioSmsProvider, twilio_http_client
from citoyen.channels.whatsapp import WhatsAppSender
from citoyen.channels.whatsapp_templates import load_templates
from citoyen.db import write_session
from citoyen.models import Outbox
from citoyen.services.contacts import find_contact
from citoyen.services.dispatch import Dispatcher
from citoyen.services.outbox import enqueue
from citoyen.services.whatsapp_window import DatabaseRecipients
from tests.channels.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN
from tests.channels.whatsapp.conftest import WHATSAPP_NUMBER, WhatsApp

MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
WA_FROM = "+14155238886"
STATUS_SID = "HX" + "a" * 32
REPLY_SID = "HX" + "b" * 32
TEMPLATES = f"""\
templates:
  status:
    fr: {{content_sid: {STATUS_SID}, variables: {{"1": reference, "2": body}}}}
  staff_reply:
    fr: {{content_sid: {REPLY_SID}}}
"""


@pytest.fixture
def flows_dir(tmp_path, settings):
    import shutil

    target = tmp_path / "flows"
    shutil.copytree(settings.flows_dir, target)
    config = tmp_path / "config"
    shutil.copytree(settings.resolved_config_dir, config)
    (config / "whatsapp").mkdir()
    (config / "whatsapp" / "templates.yaml").write_text(TEMPLATES, encoding="utf-8")
    return target


@pytest.fixture
def sms_settings(settings, flows_dir):  # the app of tests/channels/sms/conftest.py, with WhatsApp
    from tests.channels.sms.conftest import FROM_NUMBER
    from tests.channels.twilio_helpers import PUBLIC_URL

    return settings.model_copy(
        update={
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_from_number": FROM_NUMBER,
            "twilio_whatsapp_from": WA_FROM,
            "public_url": PUBLIC_URL,
            "flows_dir": flows_dir,
        }
    )


class FakeTwilio:
    def __init__(self, httpserver) -> None:
        self.forms: list[dict[str, str]] = []
        httpserver.expect_request(MESSAGES_PATH, method="POST").respond_with_handler(self.handle)

    def handle(self, request):
        from werkzeug import Response

        form = {k: v[0] for k, v in parse_qs(request.get_data(as_text=True)).items()}
        self.forms.append(form)
        sid = f"SM{len(self.forms):032x}"
        body = {"sid": sid, "account_sid": ACCOUNT_SID, "status": "queued", "to": form["To"]}
        return Response(json.dumps(body), status=201, content_type="application/json")


@pytest.fixture
def twilio(httpserver) -> FakeTwilio:
    return FakeTwilio(httpserver)


@pytest.fixture
def clock():
    return {"now": datetime.now(UTC)}


@pytest.fixture
def sender(runtime, httpserver, clock) -> WhatsAppSender:
    provider = TwilioSmsProvider(
        ACCOUNT_SID,
        AUTH_TOKEN,
        f"whatsapp:{WA_FROM}",
        "https://citoyen.example.ml/twilio/status",
        http_client=twilio_http_client(httpserver.url_for("/"), timeout=5),
    )
    templates = load_templates(runtime.settings.flows_dir, ("fr", "bm", "en"))
    assert not [p for p in templates.problems if p.level == "error"]
    return WhatsAppSender(
        provider, templates, DatabaseRecipients(runtime.engine), now=lambda: clock["now"]
    )


def notice(runtime, key: str, payload: dict, kind: str = "notification") -> int:
    with write_session(runtime.engine) as session:
        contact = find_contact(session, runtime.vault, f"tel:{WHATSAPP_NUMBER}")
        row = enqueue(
            session,
            channel="whatsapp",
            idempotency_key=key,
            body="Votre signalement 482-1937 est résolu.",
            payload=payload,
            contact_id=contact.id,
            kind=kind,
        )
        return row.id


def dispatch(runtime, sender) -> None:
    Dispatcher(runtime, {"whatsapp": sender}).run_once()


def row(runtime, outbox_id: int) -> Outbox:
    with Session(runtime.engine) as session:
        return session.get(Outbox, outbox_id)


def test_inside_the_window_a_notice_is_free_form(client, runtime, twilio, sender) -> None:
    WhatsApp(client).say("Bonjour")
    oid = notice(runtime, "n1", {"report": "482-1937", "status": "resolved"})
    dispatch(runtime, sender)
    [form] = twilio.forms
    assert form["To"] == f"whatsapp:{WHATSAPP_NUMBER}" and form["From"] == f"whatsapp:{WA_FROM}"
    assert form["Body"] == "Votre signalement 482-1937 est résolu."
    assert "ContentSid" not in form
    assert row(runtime, oid).status == "sent"


def test_outside_the_window_a_notice_uses_its_template(client, runtime, twilio, sender, clock):
    WhatsApp(client).say("Bonjour")
    clock["now"] += timedelta(hours=25)
    oid = notice(runtime, "n1", {"report": "482-1937", "status": "resolved"})
    reply = notice(runtime, "r1", {"report": "482-1937"})
    dispatch(runtime, sender)
    # The dispatcher sends in parallel: the two may reach Twilio in either order.
    by_template = {form.get("ContentSid"): form for form in twilio.forms}
    status_form, reply_form = by_template[STATUS_SID], by_template[REPLY_SID]
    assert status_form["ContentSid"] == STATUS_SID and "Body" not in status_form
    assert json.loads(status_form["ContentVariables"]) == {
        "1": "482-1937",
        "2": "Votre signalement 482-1937 est résolu.",
    }
    assert reply_form["ContentSid"] == REPLY_SID
    assert json.loads(reply_form["ContentVariables"]) == {
        "1": "Votre signalement 482-1937 est résolu."
    }
    assert row(runtime, oid).status == row(runtime, reply).status == "sent"


def test_a_survey_invitation_with_no_template_is_held_then_sent_when_the_citizen_writes(
    client, runtime, twilio, sender, clock
) -> None:
    citizen = WhatsApp(client)
    citizen.say("Bonjour")
    clock["now"] += timedelta(days=2)
    oid = notice(runtime, "s1", {}, kind="survey")
    dispatch(runtime, sender)
    held = row(runtime, oid)
    assert twilio.forms == []
    assert held.status == "pending"
    assert held.error.startswith("held: no WhatsApp template for survey in 'fr'")
    assert held.next_attempt_at.replace(tzinfo=UTC) > datetime.now(UTC) + timedelta(minutes=50)

    citizen.say("1")  # the citizen writes: the window is open again
    clock["now"] = datetime.now(UTC)
    with write_session(runtime.engine) as session:
        session.get(Outbox, oid).next_attempt_at = datetime.now(UTC) - timedelta(seconds=1)
    dispatch(runtime, sender)
    [form] = twilio.forms
    assert form["Body"] == "Votre signalement 482-1937 est résolu."
    assert row(runtime, oid).status == "sent"


def test_notices_about_a_whatsapp_report_are_queued_on_whatsapp(client, runtime) -> None:
    from citoyen.services.queues import OUTBOX_CHANNEL

    assert OUTBOX_CHANNEL["whatsapp"] == "whatsapp"


def test_the_dispatcher_finds_the_whatsapp_sender_by_itself(runtime) -> None:
    dispatcher = Dispatcher(runtime)
    assert isinstance(dispatcher.sender_for("whatsapp"), WhatsAppSender)


def test_flows_check_reads_the_templates(flows_dir) -> None:
    (flows_dir.parent / "config" / "whatsapp" / "templates.yaml").write_text(
        "templates:\n  status:\n    fr: {content_sid: HX12}\n    xx: {content_sid: HX"
        + "c" * 32
        + "}\n  greeting: {}\n",
        encoding="utf-8",
    )
    messages = [str(p) for p in load_templates(flows_dir, ("fr", "bm")).problems]
    assert any("templates.status.fr.content_sid" in m for m in messages), messages
    assert any("templates.greeting" in m for m in messages), messages
