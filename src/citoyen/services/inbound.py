"""What every inbound message checks and keeps: its provider id, its sender's limit, its rows.

An inbound message (SMS, Telegram update, voice step) is deduped by its provider id: a provider
retrying a request gets the reply stored with the first copy (:func:`stored_reply`). A sender
gets at most ``limit`` messages in any ``window`` (:func:`over_limit`), counted on the stored
inbound messages, so the limit holds across web workers with no state outside the database.
A message is stored with its reply, followed by the reply's outbound row for the transcript
(:func:`store`): a retry finds the reply, and the provider id's unique key makes a concurrent
copy of the same message fail when it is stored, so it is recorded once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, func, select

from citoyen.models import Message


def stored_reply(session: Session, channel: str, provider_id: str | None) -> dict | None:
    """The reply stored with an earlier inbound message of this provider id, if any."""
    if provider_id is None:
        return None
    return session.exec(
        select(Message.reply).where(
            Message.channel == channel,
            Message.provider_id == provider_id,
            Message.direction == "in",
        )
    ).first()


def over_limit(
    session: Session, contact_id: int, now: datetime, limit: int, window: timedelta
) -> bool:
    """Whether the contact sent ``limit`` inbound messages in the ``window`` before ``now``.

    The count stops at ``limit`` rows: a flood costs no more to count than a normal sender. The
    caller holds the contact's row lock, so two messages of one sender are counted one after the
    other and cannot both take the last place.
    """
    recent = (
        select(Message.id)
        .where(
            Message.contact_id == contact_id,
            Message.direction == "in",
            Message.created_at > now - window,
        )
        .limit(limit)
        .subquery()
    )
    return session.exec(select(func.count()).select_from(recent)).one() >= limit


def store(
    session: Session,
    *,
    contact_id: int,
    channel: str,
    provider_id: str | None,
    kind: str,
    body: str | None,
    now: datetime,
    reply: dict[str, Any],
    conversation_id: int | None = None,
    reply_out: dict[str, Any] | None = None,
) -> None:
    """Add the inbound message with its ``reply`` and, when given, the outbound row of the reply
    (``reply_out``: its prompts and language, kept for the transcript) after it."""
    session.add(
        Message(
            contact_id=contact_id,
            conversation_id=conversation_id,
            channel=channel,
            direction="in",
            provider_id=provider_id,
            kind=kind,
            body=body,
            reply=reply,
            created_at=now,
        )
    )
    if reply_out is not None:
        session.add(
            Message(
                contact_id=contact_id,
                conversation_id=conversation_id,
                channel=channel,
                direction="out",
                kind="reply",
                reply=reply_out,
                created_at=now,
            )
        )
