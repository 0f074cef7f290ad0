"""What the outbox monitor and the audit log show: the queries behind those admin pages.

Coordinators see the messages about reports of their queues only (the ``report`` reference every
notification, reply and alert carries in its payload); administrators see every row. Both lists
page by id (keyset), newest first, so a page costs the same on a table of millions of rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, func, select

from citoyen.models import AuditEvent, Contact, Outbox, QueueEntry, Report, User
from citoyen.services.access import Staff, visible_stakeholders


def outbox_scope(s: Session, me: Staff) -> Any:
    """A condition restricting outbox rows to ``me``'s reports; None for every row."""
    scope = visible_stakeholders(s, me)
    if scope is None:
        return None
    in_queues = select(QueueEntry.report_id).where(QueueEntry.stakeholder_id.in_(sorted(scope)))
    references = select(Report.reference).where(Report.id.in_(in_queues))
    return Outbox.payload["report"].as_string().in_(references)


def outbox_counts(s: Session, condition: Any) -> dict[tuple[str, str], int]:
    """Rows per (status, channel) among those ``condition`` (from :func:`outbox_scope`) allows."""
    stmt = select(Outbox.status, Outbox.channel, func.count()).group_by(
        Outbox.status, Outbox.channel
    )
    if condition is not None:
        stmt = stmt.where(condition)
    return {(status, channel): n for status, channel, n in s.exec(stmt).all()}


def outbox_page(
    s: Session, condition: Any, status: str | None, after: int | None, size: int
) -> Sequence[tuple[Outbox, str | None]]:
    """Up to ``size`` rows (with the recipient's alias, None for a duty address) older than
    ``after``, newest first: one more than ``size`` when a next page exists."""
    stmt = (
        select(Outbox, Contact.alias)
        .join(Contact, Contact.id == Outbox.contact_id, isouter=True)
        .order_by(Outbox.id.desc())
        .limit(size)
    )
    if condition is not None:
        stmt = stmt.where(condition)
    if status:
        stmt = stmt.where(Outbox.status == status)
    if after is not None:
        stmt = stmt.where(Outbox.id < after)
    return s.exec(stmt).all()


def outbox_visible(s: Session, me: Staff, outbox_id: int) -> bool:
    """Whether ``me`` may see (and retry) this outbox row."""
    condition = outbox_scope(s, me)
    if condition is None:
        return True
    return s.exec(select(Outbox.id).where(Outbox.id == outbox_id, condition)).first() is not None


def audit_actions(s: Session) -> list[str]:
    """Every action the audit log holds, for its filter."""
    return sorted(s.exec(select(AuditEvent.action).distinct()).all())


def audit_page(
    s: Session, action: str | None, after: int | None, size: int
) -> Sequence[tuple[AuditEvent, str | None]]:
    """Up to ``size`` audit events (with the acting user's email) older than ``after``, newest
    first: one more than ``size`` when a next page exists."""
    stmt = (
        select(AuditEvent, User.email)
        .join(User, User.id == AuditEvent.user_id, isouter=True)
        .order_by(AuditEvent.id.desc())
        .limit(size)
    )
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if after is not None:
        stmt = stmt.where(AuditEvent.id < after)
    return s.exec(stmt).all()
