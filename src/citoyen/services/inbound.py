"""What every inbound message checks and keeps: its provider id, its sender, its limit, its rows.

An inbound message (SMS, Telegram update, voice step) is deduped by its provider id: a provider
retrying a request gets the reply stored with the first copy (:func:`stored_reply`). Its sender's
contact is claimed (:func:`claim_contact`: seen now, and its row locked until the transaction
ends, so two messages of one sender are stepped one after the other). A sender gets at most
``limit`` messages in any ``window`` (:func:`over_limit`), counted on the stored inbound
messages under that lock, so the limit holds across web workers with no state outside the
database. A message is stored with its reply, followed by the reply's outbound row for the
transcript (:func:`store`): the provider id's unique key makes a concurrent copy of the same
message fail there, so it is recorded once.

The statements are built once, with parameters: SQLAlchemy's compiled cache then serves each
execution, and only the values change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select, update

from citoyen.engine.types import Input
from citoyen.models import Contact, Message

_STORED_REPLY = select(Message.reply).where(
    Message.channel == sa.bindparam("channel"),
    Message.provider_id == sa.bindparam("provider_id"),
    Message.direction == "in",
)
# ``UPDATE ... RETURNING``: the contact is seen now, and the UPDATE takes its row lock (on
# SQLite the transaction holds the write lock already), in one statement.
_CLAIM = (
    update(Contact)
    .where(col(Contact.address_hash).in_(sa.bindparam("digests", expanding=True)))
    .values(last_seen_at=sa.bindparam("now"))
    .returning(Contact)
    .execution_options(synchronize_session=False)
)
_RECENT = (
    select(Message.id)
    .where(
        Message.contact_id == sa.bindparam("contact_id"),
        Message.direction == "in",
        Message.created_at > sa.bindparam("since"),
    )
    .limit(sa.bindparam("limit"))
    .subquery()
)
_COUNT_RECENT = select(func.count()).select_from(_RECENT)
_INSERT = sa.insert(Message.__table__)  # type: ignore[attr-defined]


def stored_reply(session: Session, channel: str, provider_id: str | None) -> dict | None:
    """The reply stored with an earlier inbound message of this provider id, if any."""
    if provider_id is None:
        return None
    params = {"channel": channel, "provider_id": provider_id}
    return session.execute(_STORED_REPLY, params).scalars().first()


def claim_contact(session: Session, digests: list[str], now: datetime) -> Contact | None:
    """The contact known by one of ``digests``, seen at ``now`` and locked for the rest of the
    transaction; None when no contact has that address."""
    return session.scalars(_CLAIM, {"digests": digests, "now": now}).first()


def over_limit(
    session: Session, contact_id: int, now: datetime, limit: int, window: timedelta
) -> bool:
    """Whether the contact sent ``limit`` inbound messages in the ``window`` before ``now``.

    The count stops at ``limit`` rows: a flood costs no more to count than a normal sender.
    """
    params = {"contact_id": contact_id, "since": now - window, "limit": limit}
    return session.execute(_COUNT_RECENT, params).scalar_one() >= limit


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
    """Insert the inbound message with its ``reply`` and, when given, the outbound row of the
    reply (``reply_out``: its prompts and language, kept for the transcript) after it."""
    inbound = {
        "contact_id": contact_id,
        "conversation_id": conversation_id,
        "channel": channel,
        "direction": "in",
        "provider_id": provider_id,
        "kind": kind,
        "body": body,
        "reply": reply,
        "created_at": now,
    }
    rows = [inbound]
    if reply_out is not None:
        rows.append(
            {**inbound, "direction": "out", "provider_id": None, "kind": "reply", "body": None}
            | {"reply": reply_out}
        )
    session.flush()  # the rows the session holds (a new conversation) go first
    session.execute(_INSERT, rows)


def first_keyword(keywords: Mapping[str, Sequence[str]], name: str) -> str | None:
    """The first word of a global keyword list (what a command or button stands for)."""
    words = keywords.get(name) or ()
    return words[0] if words else None


def ask_again(keywords: Mapping[str, Sequence[str]]) -> Input:
    """An input that makes the engine show the current question again, no retry counted.

    The ``help`` keyword does exactly that (help text, then the question). Without one, an empty
    text: the engine then says it did not understand, and asks again.
    """
    word = first_keyword(keywords, "help")
    return Input("text", word or "")
