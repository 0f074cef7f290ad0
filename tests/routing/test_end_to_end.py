"""End to end: a citizen reports by SMS in Bambara, the report reaches the right queues and
on-call phones, a stakeholder acts, the citizen hears back in Bambara and can ask the status.

The conversations go through the real conversation service (tests/dialog.py), exactly as the
SMS webhook sends them. Each test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.models import Outbox, Report
from citoyen.runtime import Runtime
from citoyen.services import queues
from citoyen.services.privacy import alias_label
from citoyen.services.users import create_user
from tests.dialog import Dialog, say, verify_dialog
from tests.flows.test_report_transcripts import ROUTES, full_report
from tests.routing.support import outbox, queue_codes


def test_sms_report_in_bambara_reaches_the_queues_and_the_citizen_hears_back(
    runtime: Runtime,
) -> None:
    # An armed attack in Commune IV of Bamako, someone in danger, told by SMS in Bambara.
    citizen = Dialog(runtime, "sms", lang="bm")
    transcript = verify_dialog(citizen, full_report(citizen, ROUTES["bamako-danger"]))
    reference = transcript.captures["reference"]
    [report] = citizen.reports()
    assert (report.reference, report.category, report.urgency) == (
        reference,
        "armed_attack",
        "emergency",
    )

    # The commune's police and council, and the district police for an emergency.
    assert queue_codes(runtime, report) == ["bko-police-c4", "bko-police-drp", "bko-ccs-c4"]
    # One alert per on-call phone, at once, saying nothing of who reported.
    alerts = outbox(runtime, kind="alert")
    assert sorted(runtime.vault.decrypt(a.address_enc) for a in alerts) == [
        "tel:+22320200010",
        "tel:+22320200014",
    ]
    contact = citizen.contact()
    number = citizen.address.removeprefix("+")
    for alert in alerts:
        assert reference in alert.body
        text = f"{alert.body} {alert.payload}"
        assert number not in text and number[-8:] not in text
        assert alias_label(contact.alias) not in text and str(contact.alias) not in text
    # Nothing was sent to the citizen yet (the SMS replies are the webhook's answers).
    assert outbox(runtime, contact_id=contact.id) == []

    # The commissariat takes the report in hand.
    with write_session(runtime.engine) as session:
        agent = create_user(
            session, "agent.c4@police.ml", "agent", "a-long-password", "bko-police-c4"
        )
    with write_session(runtime.engine) as session:
        queues.change_status(
            session,
            session.get(Report, report.id),
            "acknowledged",
            user_id=agent.id,
            now=datetime.now(UTC),
        )

    # Exactly one message to the reporter, in Bambara, by SMS, from the catalogue.
    [message] = outbox(runtime, contact_id=contact.id)
    assert (message.kind, message.channel, message.status) == ("notification", "sms", "pending")
    assert message.body == citizen.t("notify.acknowledged.armed_attack", reference=reference)
    assert message.body == runtime.bundle.catalog.render(
        "notify.acknowledged.armed_attack", "bm", {"reference": reference, "police": "17"}
    )
    assert runtime.vault.decrypt(contact.address_enc) == f"tel:{citizen.address}"

    # The citizen asks the status by its reference (SUIVI): the new status, in Bambara.
    verify_dialog(
        citizen,
        [
            (
                f"SUIVI {reference.replace('-', '')}",
                say(
                    "report.follow_status",
                    reference=reference,
                    report_status=citizen.t("report.status.acknowledged"),
                ),
            ),
        ],
    )
    # Asking the status sends nothing through the outbox (the answer is the SMS reply).
    assert len(outbox(runtime, contact_id=contact.id)) == 1


def test_call_and_telegram_reporters_hear_back_on_their_channel(runtime: Runtime) -> None:
    caller = Dialog(runtime, "voice", lang="bm")
    verify_dialog(caller, full_report(caller, ROUTES["bamako-danger"]))
    writer = Dialog(runtime, "telegram", lang="fr")
    verify_dialog(writer, full_report(writer, ROUTES["rural-paging"]))
    # A theft in a commune of Sikasso, where the shipped rules have no local service.
    [theft] = writer.reports()
    assert queue_codes(runtime, theft) == ["moderation"]

    with write_session(runtime.engine) as session:
        for report in session.exec(select(Report)).all():
            queues.change_status(session, report, "resolved", user_id=None)
    with Session(runtime.engine) as session:
        rows = session.exec(select(Outbox).where(Outbox.kind == "notification")).all()
        by_contact = {row.contact_id: row for row in rows}
    assert len(rows) == 2
    told_caller = by_contact[caller.contact().id]
    told_writer = by_contact[writer.contact().id]
    [call_report] = caller.reports()
    assert told_caller.channel == "sms"  # a call is answered by SMS
    assert told_caller.body == caller.t("notify.resolved", reference=call_report.reference)
    assert told_writer.channel == "telegram"
    assert told_writer.body == writer.t("notify.resolved", reference=theft.reference)
