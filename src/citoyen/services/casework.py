"""What staff do on a report from the admin, besides changing its status (services.queues).

Every action checks the user's scope (:mod:`citoyen.services.access`), leaves a timeline event
with who, when and why, and flushes without committing: the caller owns the transaction. Actions
that touch a reporter's identity or ability to write (reveal, block) also leave an audit event.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, select

from citoyen.models import AuditEvent, Contact, QueueEntry, Report, ReportEvent, Stakeholder, User
from citoyen.routing import texts
from citoyen.services import followups
from citoyen.services.access import AccessDenied, Staff, acting_stakeholder, may_reveal
from citoyen.services.outbox import enqueue
from citoyen.services.privacy import is_erased
from citoyen.services.queues.config import Router, router_for
from citoyen.services.queues.notify import OUTBOX_CHANNEL
from citoyen.services.queues.routes import add_entry, alert_if_emergency
from citoyen.services.queues.status import StatusError, change_status
from citoyen.services.refusals import Refusal

MAX_NOTE = 4000
MAX_REPLY = 600  # a reply goes out by SMS too: a few segments at most
MIN_REASON = 10  # a stated reason, not "ok"


class CaseworkError(Refusal):
    """An action refused, with the reason shown to the staff member."""


def _text(value: str | None, what: str, limit: int, minimum: int = 1) -> str:
    text = (value or "").strip()
    if len(text) < minimum:
        if minimum > 1:
            raise CaseworkError(
                f"{what}: at least {minimum} characters", "text_short", what=what, minimum=minimum
            )
        raise CaseworkError(f"{what} is empty", "text_empty", what=what)
    if len(text) > limit:
        raise CaseworkError(
            f"{what} is too long ({len(text)} characters, at most {limit})",
            "text_long",
            what=what,
            length=len(text),
            limit=limit,
        )
    return text


def _event(
    session: Session,
    report: Report,
    staff: Staff,
    kind: str,
    now: datetime,
    *,
    note: str | None = None,
    data: dict[str, Any] | None = None,
) -> ReportEvent:
    event = ReportEvent(
        report_id=report.id,
        kind=kind,
        from_status=report.status,
        to_status=report.status,
        user_id=staff.id,
        stakeholder_id=acting_stakeholder(session, staff, report),
        note=note,
        data=data or {},
        created_at=now,
    )
    session.add(event)
    session.flush()
    followups.seen_by_staff(session, report.id)  # type: ignore[arg-type]
    return event


def audit(
    session: Session,
    staff: Staff | None,
    action: str,
    *,
    target_type: str | None = None,
    target_id: int | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> AuditEvent:
    row = AuditEvent(
        user_id=staff.id if staff else None,
        action=action,
        target_type=target_type,
        target_id=target_id,
        reason=reason,
        data=data or {},
        created_at=now or datetime.now(UTC),
    )
    session.add(row)
    session.flush()
    return row


def add_note(
    session: Session, staff: Staff, report: Report, text: str, now: datetime | None = None
) -> ReportEvent:
    """An internal note: staff only, never sent to the citizen."""
    return _event(
        session, report, staff, "note", now or datetime.now(UTC), note=_text(text, "note", MAX_NOTE)
    )


def _reachable_contact(session: Session, report: Report) -> Contact:
    contact = session.get(Contact, report.contact_id) if report.contact_id else None
    if contact is None or contact.channel == "withheld":
        raise CaseworkError(
            "this reporter cannot be written to (the caller's number was withheld)", "withheld"
        )
    if contact.opted_out:
        raise CaseworkError(
            "this reporter opted out (STOP): they are not written to any more", "opted_out"
        )
    if contact.blocked:
        raise CaseworkError("this reporter is blocked", "blocked")
    return contact


def reply_to_citizen(
    session: Session,
    staff: Staff,
    report: Report,
    message: str,
    now: datetime | None = None,
    router: Router | None = None,
) -> ReportEvent:
    """Send the reporter a message through the outbox, on their channel, with the reference.

    Works for anonymous reports too: the system relays it and staff never see the number.
    """
    now = now or datetime.now(UTC)
    message = _text(message, "reply", MAX_REPLY)
    contact = _reachable_contact(session, report)
    router = router or router_for(session)
    lang = router.language(contact.language, report.language)
    event = _event(session, report, staff, "reply", now, note=message)
    row = enqueue(
        session,
        channel=OUTBOX_CHANNEL.get(report.channel)
        or ("telegram" if contact.channel == "telegram" else "sms"),
        idempotency_key=f"reply:{event.id}",
        body=router.text(
            texts.discreet_keys([texts.STAFF_REPLY], texts.DISCREET_STAFF_REPLY)
            if router.discreet_for(contact)
            else [texts.STAFF_REPLY],
            lang,
            {"reference": report.reference, "message": message},
        ),
        payload={"report": report.reference},
        contact_id=contact.id,
        kind="notification",
        now=now,
    )
    event.data = {"outbox_id": row.id}
    return event


def staff_of(session: Session, stakeholder_id: int) -> list[User]:
    """Active users who work for a stakeholder (whom an entry can be assigned to)."""
    return list(
        session.exec(
            select(User)
            .where(User.stakeholder_id == stakeholder_id, User.active.is_(True))
            .order_by(User.email)
        ).all()
    )


def assign(
    session: Session,
    staff: Staff,
    report: Report,
    entry_id: int,
    assignee_id: int | None,
    now: datetime | None = None,
) -> ReportEvent:
    """Give a queue entry to one of its stakeholder's users (None: unassign)."""
    now = now or datetime.now(UTC)
    entry = session.get(QueueEntry, entry_id)
    if entry is None or entry.report_id != report.id:
        raise CaseworkError("no such queue entry on this report", "no_entry")
    if staff.role == "agent" and entry.stakeholder_id != staff.stakeholder_id:
        raise AccessDenied("agents assign only their own stakeholder's entries")
    assignee = None
    if assignee_id is not None:
        assignee = session.get(User, assignee_id)
        if (
            assignee is None
            or not assignee.active
            or assignee.stakeholder_id != entry.stakeholder_id
        ):
            raise CaseworkError("assign to an active user of this queue's stakeholder", "assignee")
    entry.assigned_to = assignee.id if assignee else None
    entry.updated_at = now
    stakeholder = session.get(Stakeholder, entry.stakeholder_id)
    return _event(
        session,
        report,
        staff,
        "assigned",
        now,
        data={
            "stakeholder": stakeholder.code if stakeholder else None,
            "to": assignee.email if assignee else None,
        },
    )


def forward(
    session: Session,
    staff: Staff,
    report: Report,
    stakeholder_code: str,
    note: str | None = None,
    now: datetime | None = None,
    router: Router | None = None,
) -> ReportEvent:
    """Send the report to one more stakeholder's queue (a human routing decision), with an
    on-call alert when it is an emergency, as for routed reports."""
    now = now or datetime.now(UTC)
    router = router or router_for(session)
    if report.status in ("resolved", "closed") or report.merged_into_id is not None:
        raise CaseworkError(
            f"report {report.reference} is {report.status}: nothing to forward",
            "forward_finished",
            reference=report.reference,
            status=report.status,
        )
    stakeholder = session.exec(
        select(Stakeholder).where(Stakeholder.code == stakeholder_code, Stakeholder.active)
    ).first()
    if stakeholder is None:
        raise CaseworkError(
            f"unknown stakeholder {stakeholder_code!r}",
            "unknown_stakeholder",
            stakeholder=stakeholder_code,
        )
    entry = add_entry(session, report, stakeholder, router.config, via="forward", now=now)
    if entry is None:
        raise CaseworkError(
            f"{stakeholder.name} already has this report", "already_has", name=stakeholder.name
        )
    alert_if_emergency(session, router, report, entry, stakeholder, now=now)
    return _event(
        session,
        report,
        staff,
        "forwarded",
        now,
        note=(note or "").strip() or None,
        data={"to": [stakeholder.code]},
    )


def mark_spam(
    session: Session,
    staff: Staff,
    report: Report,
    note: str | None = None,
    now: datetime | None = None,
) -> ReportEvent:
    try:
        return change_status(
            session,
            report,
            "closed",
            user_id=staff.id,
            reason="spam",
            note=(note or "").strip() or None,
            now=now,
            stakeholder_id=acting_stakeholder(session, staff, report),
        )
    except StatusError as exc:
        raise CaseworkError(str(exc), exc.code, **exc.params) from exc


def block_sender(
    session: Session, staff: Staff, report: Report, reason: str, now: datetime | None = None
) -> ReportEvent:
    """Stop a sender's messages from becoming conversations (they are still stored, unanswered).

    For floods and abuse; coordinators and admins only, with a reason, audited.
    """
    now = now or datetime.now(UTC)
    if staff.role not in ("admin", "coordinator"):
        raise AccessDenied("only coordinators and administrators block senders")
    reason = _text(reason, "reason", MAX_NOTE, MIN_REASON)
    contact = session.get(Contact, report.contact_id) if report.contact_id else None
    if contact is None:
        raise CaseworkError("this report has no sender to block", "no_sender")
    if contact.blocked:
        raise CaseworkError("this sender is already blocked", "already_blocked")
    contact.blocked = True
    audit(
        session,
        staff,
        "block_sender",
        target_type="contact",
        target_id=contact.id,
        reason=reason,
        data={"report": report.reference},
        now=now,
    )
    return _event(session, report, staff, "sender_blocked", now, note=reason)


def reveal_identity(
    session: Session,
    vault: Any,
    staff: Staff,
    report: Report,
    reason: str,
    *,
    reveal_roles: Any,
    now: datetime | None = None,
) -> str:
    """The reporter's real address, for a permitted user with a stated reason, audited.

    Refused for anonymous reports (the reporter asked not to be known: nobody ever sees their
    number) and for withheld numbers. The address is returned, never stored elsewhere or put in
    a URL; the audit event holds who, when, which report and why, not the number.
    """
    now = now or datetime.now(UTC)
    if not may_reveal(staff, reveal_roles):
        raise AccessDenied("your role may not see reporters' numbers")
    if report.anonymous:
        raise CaseworkError(
            "this report is anonymous: the reporter's number is never shown", "anonymous"
        )
    reason = _text(reason, "reason", MAX_NOTE, MIN_REASON)
    contact = session.get(Contact, report.contact_id) if report.contact_id else None
    if contact is None or contact.channel == "withheld" or is_erased(contact.address_enc):
        # Withheld caller id, or erased by the retention purge (citoyen.services.retention).
        raise CaseworkError("no number is known for this reporter", "no_number")
    address = vault.decrypt(contact.address_enc)
    audit(
        session,
        staff,
        "reveal_identity",
        target_type="report",
        target_id=report.id,
        reason=reason,
        data={"report": report.reference, "contact": contact.id},
        now=now,
    )
    _event(session, report, staff, "identity_revealed", now, note=reason)
    return address
