"""Telling citizens about their report, in their language, on their channel, via the outbox."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from citoyen.messages.addresses import WITHHELD
from citoyen.models import Contact, Report, ReportEvent
from citoyen.routing import texts
from citoyen.services.outbox import enqueue
from citoyen.services.queues.config import Router

# Where a citizen hears back: SMS and voice reporters by SMS (a call costs more and may be
# overheard), Telegram reporters on Telegram, WhatsApp reporters on WhatsApp (outside the 24-hour
# window through a template, channels/whatsapp.py).
OUTBOX_CHANNEL = {"sms": "sms", "voice": "sms", "telegram": "telegram", "whatsapp": "whatsapp"}


def followers(session: Session, report: Report) -> list[Report]:
    """The report and every report merged into it, directly or through others."""
    found = [report]
    seen = {report.id}
    frontier = [report.id]
    while frontier:
        rows = session.exec(
            select(Report).where(Report.merged_into_id.in_(frontier)).order_by(Report.id)
        ).all()
        frontier = []
        for row in rows:
            if row.id not in seen:
                seen.add(row.id)
                found.append(row)
                frontier.append(row.id)
    return found


def notify_citizens(
    session: Session,
    router: Router,
    report: Report,
    event: ReportEvent,
    *,
    status: str,
    reason: str | None,
    now: datetime,
    reports: Sequence[Report] | None = None,
    extra: dict[str, Any] | None = None,
    template: str | None = None,
) -> None:
    """Queue the citizen's notification for a status change, one per reporter.

    ``template`` is a response template a staff member chose (a ``notify.<status>.<name>``
    text): it is used wherever it exists in the reporter's language, before the usual choice.

    Every reporter of the report and of the reports merged into it hears about it, each with
    their own reference, in their language, on their channel; never the others' existence or
    identity. Reporters who opted out (STOP) or were blocked, and callers whose number was withheld,
    are not written to. What happened
    is recorded in the event's data (counts only).
    """
    if status not in router.config.notify:
        return
    sent = 0
    skipped: Counter[str] = Counter()
    contacts_done: set[int] = set()
    for own in reports if reports is not None else followers(session, report):
        contact = session.get(Contact, own.contact_id) if own.contact_id is not None else None
        if contact is None:
            skipped["no_contact"] += 1
            continue
        if contact.id in contacts_done:
            continue
        contacts_done.add(contact.id)  # type: ignore[arg-type]
        if contact.opted_out:
            skipped["opted_out"] += 1
            continue
        if contact.blocked:
            skipped["blocked"] += 1
            continue
        if contact.channel == WITHHELD:
            # A call without caller id: no address to write to; the reference still works.
            skipped["withheld"] += 1
            continue
        lang = router.language(contact.language, own.language)
        params = {
            **router.emergency,
            "reference": own.reference,
            "report_status": router.text([texts.status_key(status)], lang, {}),
            **(extra or {}),
        }
        keys = texts.notification_keys(
            status, category=report.category or own.category, reason=reason
        )
        if template:
            keys.insert(0, texts.template_key(status, template))
        if router.discreet_for(contact):
            keys = texts.discreet_keys(keys, texts.DISCREET_NOTIFY)
        enqueue(
            session,
            channel=OUTBOX_CHANNEL.get(own.channel)
            or ("telegram" if contact.channel == "telegram" else "sms"),
            idempotency_key=f"notify:{event.id}:{contact.id}",
            body=router.text(keys, lang, params),
            payload={"report": own.reference, "status": status},
            contact_id=contact.id,
            kind="notification",
            now=now,
        )
        sent += 1
    data = {**(event.data or {}), "notified": sent}
    if skipped:
        data["not_notified"] = dict(skipped)
    event.data = data
