"""Linking a conversation's attachments (recordings, voice notes, photos) to its report.

One way for every channel: an attachment is kept with the conversation it came in (its
``conversation_id``), and joins the conversation's report either when the report is created
(:func:`citoyen.services.effects.create_report` links what was kept before) or, for an
attachment kept after the report exists (a recording whose status callback comes late, a photo
sent after the last question), when it is kept. Both call :func:`link_to_report`. The
conversation's report is the one it created, else the one it adds to (``report_id``: a photo or
recording sent later about a report, :mod:`citoyen.services.followups`).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from citoyen.models import Attachment, Conversation, Report


def keep(
    session: Session,
    *,
    channel: str,
    kind: str,
    provider_ref: str,
    content_type: str | None,
    contact_id: int,
    conversation_id: int | None,
    duration_seconds: int | None = None,
    size_bytes: int | None = None,
) -> None:
    """Keep a voice note or photo a citizen sent (``pending``: the worker fetches it), with the
    conversation it came in, joined to that conversation's report when there is one.

    One row per file: a copy sent again (a forwarded photo, a redelivered webhook) reuses it.
    Runs in the inbound message's transaction (the conversation service's ``on_reply``), so the
    attachment exists if and only if its message was recorded.
    """
    existing = session.exec(
        select(Attachment).where(
            Attachment.channel == channel, Attachment.provider_ref == provider_ref
        )
    ).first()
    if existing is not None:
        if existing.conversation_id is None:
            existing.conversation_id = conversation_id
    else:
        row = Attachment(
            conversation_id=conversation_id,
            contact_id=contact_id,
            channel=channel,
            kind=kind,
            provider_ref=provider_ref,
            content_type=content_type,
            duration_seconds=duration_seconds,
            size_bytes=size_bytes,
            status="pending",
        )
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:
            pass  # the same file stored by a concurrent copy of the message: that row stands
    if conversation_id is not None:
        link_to_report(session, conversation_id)


def fetched_attachment(session: Session, attachment_id: int) -> Attachment | None:
    """The attachment whose media is on disk, or None (no such row, not fetched yet, expired)."""
    row = session.get(Attachment, attachment_id)
    return row if row is not None and row.status == "fetched" else None


def link_to_report(session: Session, conversation_id: int) -> None:
    """Give the conversation's unlinked attachments to its report, when it has one."""
    created = (
        select(Report.id)
        .where(Report.conversation_id == conversation_id)
        .order_by(Report.id)
        .limit(1)
        .scalar_subquery()
    )
    added_to = (
        select(Conversation.report_id).where(Conversation.id == conversation_id).scalar_subquery()
    )
    report = sa.func.coalesce(created, added_to)
    session.execute(
        sa.update(Attachment)
        .where(
            Attachment.conversation_id == conversation_id,
            Attachment.report_id.is_(None),
            report.is_not(None),
        )
        .values(report_id=report)
        .execution_options(synchronize_session=False)
    )
    expire_attachments(session)


def expire_attachments(session: Session) -> None:
    """Attachments the session holds are read again when next used: a statement changed their
    rows behind the ORM's back."""
    for instance in list(session.identity_map.values()):
        if isinstance(instance, Attachment):
            session.expire(instance)
