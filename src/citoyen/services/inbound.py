"""The statements every inbound message runs first, written as few round trips as they can be.

An inbound message (SMS, Telegram update, voice step) must be deduped by its provider id, find
and lock its contact, be counted against the per-sender limit and be stored. Done one ORM query
at a time that was five or six statements and most of the webhook's time; here it is two in the
common case (a contact seen before):

1. :func:`claim_contact`: ``UPDATE contacts SET last_seen_at ... RETURNING`` the contact and the
   stored reply of a message with the same provider id. The UPDATE takes the contact's row lock
   (on SQLite the write lock is already held since ``BEGIN IMMEDIATE``), so two messages of one
   sender are handled one after the other, as the ``SELECT ... FOR UPDATE`` it replaces did.
2. :func:`store_inbound`: ``INSERT INTO messages ... SELECT ... WHERE (count of the sender's
   inbound messages in the window, counting no further than the limit) < limit RETURNING id``.
   No row back means the sender is over the limit. The count runs in the INSERT's own statement,
   after the contact lock was granted: on PostgreSQL (READ COMMITTED) it sees every message a
   concurrent request of the same sender committed before, so the limit holds across workers.
   A copy of the same provider id that slipped past step 1 (both copies read before either
   committed) fails here on the unique constraint, before anything else was changed; the
   conversation service then retries and finds the stored reply.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from citoyen.models import Contact, Message, UTCDateTime
from citoyen.prepared import Prepared

_messages = Message.__table__  # type: ignore[attr-defined]
_contacts = Contact.__table__  # type: ignore[attr-defined]


# Built once: constructing a statement per message costs more Python than running it.
_STORED_REPLY = (
    sa.select(_messages.c.reply)
    .where(
        _messages.c.channel == sa.bindparam("p_channel"),
        _messages.c.provider_id == sa.bindparam("p_provider_id"),
        _messages.c.direction == "in",
    )
    .limit(1)
    .scalar_subquery()
)


def stored_reply_column() -> Any:
    """The reply stored with an inbound message of provider id ``p_provider_id`` on channel
    ``p_channel`` (a scalar subquery, for statements that fetch it along with other rows)."""
    return _STORED_REPLY


_CLAIM = (
    sa.update(_contacts)
    .where(_contacts.c.address_hash.in_(sa.bindparam("p_digests", expanding=True)))
    .values(last_seen_at=sa.bindparam("p_now", type_=UTCDateTime))
    .returning(*_contacts.c, _STORED_REPLY.label("stored_reply"))
)
# Loaded through the ORM (identity map, no constructor), as a SELECT's rows would be.
_CLAIM_ORM = sa.select(
    Contact, sa.literal_column("stored_reply", _messages.c.reply.type)
).from_statement(_CLAIM)
_DEDUPE = sa.select(_STORED_REPLY)
_RECENT = (
    sa.select(sa.literal(1))
    .select_from(_messages)
    .where(
        _messages.c.contact_id == sa.bindparam("p_contact_id"),
        _messages.c.direction == "in",
        _messages.c.created_at > sa.bindparam("p_since", type_=UTCDateTime),
    )
    .limit(sa.bindparam("p_limit", type_=sa.Integer))
    .subquery()
)
_STORE_VALUES = {
    "contact_id": sa.bindparam("p_contact_id", type_=sa.Integer),
    "conversation_id": sa.bindparam("p_conversation_id", type_=sa.Integer),
    "channel": sa.bindparam("p_channel", type_=sa.String),
    "direction": sa.literal("in", sa.String),
    "provider_id": sa.bindparam("p_provider_id", type_=sa.String),
    "kind": sa.bindparam("p_kind", type_=sa.String),
    "body": sa.bindparam("p_body", type_=sa.Text),
    "reply": sa.bindparam("p_reply", type_=sa.JSON(none_as_null=True)),
    "created_at": sa.bindparam("p_now", type_=UTCDateTime),
}
UNDER_LIMIT = sa.select(sa.func.count()).select_from(_RECENT).scalar_subquery() < sa.bindparam(
    "p_limit", type_=sa.Integer
)
_STORE = Prepared(
    sa.insert(_messages)
    .from_select(list(_STORE_VALUES), sa.select(*_STORE_VALUES.values()).where(UNDER_LIMIT))
    .returning(_messages.c.id)
)
# What marks the outbound row of a reply (kept for the transcript), in both statements below.
_REPLY_KIND = {"direction": sa.literal("out", sa.String), "kind": sa.literal("reply", sa.String)}
# The same, with the outbound message of a reply known beforehand in the same statement: both
# rows or neither (the limit is checked on the table as it was before the statement), the
# inbound one first.
_REPLY_VALUES = {
    **_STORE_VALUES,
    **_REPLY_KIND,
    "provider_id": sa.cast(sa.null(), sa.String),
    "body": sa.cast(sa.null(), sa.Text),
    "reply": sa.bindparam("p_reply_out", type_=sa.JSON(none_as_null=True)),
}


def _with_reply(
    values: dict[str, Any], reply: dict[str, Any], shape: Callable[[sa.Select], sa.Select]
) -> sa.Insert:
    """The inbound message (``values``) and its reply's outbound row (``reply``) in one INSERT,
    the inbound one first; ``shape`` gives both SELECTs their condition or their source."""
    return (
        sa.insert(_messages)
        .from_select(
            list(_STORE_VALUES),
            sa.union_all(
                shape(sa.select(*(values[name] for name in _STORE_VALUES))),
                shape(sa.select(*(reply[name] for name in _STORE_VALUES))),
            ),
        )
        .returning(_messages.c.id, _messages.c.direction)
    )


_STORE_WITH_REPLY = Prepared(
    _with_reply(_STORE_VALUES, _REPLY_VALUES, lambda s: s.where(UNDER_LIMIT))
)


def store_with_reply_after(moved: Any) -> sa.Insert:
    """:data:`_STORE_WITH_REPLY` as a PostgreSQL statement led by ``moved``, a data-modifying
    ``WITH`` (an UPDATE ... RETURNING the conversation's ``id``): the two messages are inserted,
    in that conversation, only if ``moved`` returned its row, and the whole is one statement,
    atomic without a transaction around it. ``moved`` checks the sender's limit itself
    (:data:`UNDER_LIMIT` in its WHERE): a WITH's statements all see the tables as they were
    before the statement, so a second check here would count the same."""
    return _with_reply(
        {**_STORE_VALUES, "conversation_id": moved.c.id},
        {**_REPLY_VALUES, "conversation_id": moved.c.id},
        lambda s: s.select_from(moved),
    ).add_cte(moved)


# The outbound row of a reply: its contact, conversation, channel and time are the inbound
# message's (already updated by _FINISH in the same transaction).
_REPLY_OUT = sa.insert(_messages).from_select(
    ["contact_id", "conversation_id", "channel", *_REPLY_KIND, "reply", "created_at"],
    sa.select(
        _messages.c.contact_id,
        _messages.c.conversation_id,
        _messages.c.channel,
        *_REPLY_KIND.values(),
        sa.bindparam("p_reply_out", type_=sa.JSON(none_as_null=True)),
        _messages.c.created_at,
    ).where(_messages.c.id == sa.bindparam("p_message_id")),
)
_FINISH = (
    sa.update(_messages)
    .where(_messages.c.id == sa.bindparam("p_message_id"))
    .values(
        conversation_id=sa.bindparam("p_conversation_id"),
        reply=sa.bindparam("p_reply", type_=_messages.c.reply.type),
    )
)


def claim_contact(
    session: Session,
    digests: list[str],
    now: datetime,
    channel: str,
    provider_id: str | None,
) -> tuple[Contact | None, dict[str, Any] | None]:
    """``(contact, stored reply)`` for an address known by one of ``digests``, the contact
    locked and its ``last_seen_at`` set; ``(None, None)`` when no contact has that address.

    The stored reply is that of an earlier inbound message with the same provider id (a provider
    retry), or None.
    """
    row = session.execute(
        _CLAIM_ORM,
        {"p_digests": digests, "p_now": now, "p_channel": channel, "p_provider_id": provider_id},
    ).first()
    if row is None:
        return None, None
    return row[0], row[1]


def stored_reply(
    session: Session | sa.Connection, channel: str, provider_id: str | None
) -> dict | None:
    """The reply stored with an earlier inbound message of this provider id, if any."""
    if provider_id is None:
        return None
    conn = session if isinstance(session, sa.Connection) else session.connection()
    return conn.execute(_DEDUPE, {"p_channel": channel, "p_provider_id": provider_id}).scalar()


def store_params(
    *,
    contact_id: int,
    channel: str,
    provider_id: str | None,
    kind: str,
    body: str | None,
    now: datetime,
    limit: int,
    window: timedelta,
    reply: dict[str, Any] | None = None,
    conversation_id: int | None = None,
    reply_out: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The parameters of the statements above that store an inbound message (its sender's
    limit is ``limit`` messages in ``window``)."""
    params = {
        "p_contact_id": contact_id,
        "p_conversation_id": conversation_id,
        "p_channel": channel,
        "p_provider_id": provider_id,
        "p_kind": kind,
        "p_body": body,
        "p_reply": reply,
        "p_now": now,
        "p_since": now - window,
        "p_limit": limit,
    }
    if reply_out is not None:
        params["p_reply_out"] = reply_out
    return params


def store_inbound(session: Session | sa.Connection, params: dict[str, Any]) -> int | None:
    """Insert the inbound message unless its sender already sent ``limit`` in ``window``
    (``params`` from :func:`store_params`).

    Its ``reply`` and ``conversation_id`` are given when they are known before the message is
    stored (a step computed ahead, :mod:`citoyen.services.unlocked_step`); otherwise
    :func:`finish_inbound` sets them once the step is done. A ``reply_out``, when
    :func:`store_params` was given one, is stored in the same statement as the outbound message
    of that reply (kind ``reply``).
    Returns the new inbound message's id, or None when the sender is over the limit (nothing
    stored). The count stops at ``limit`` rows: a flood costs no more to count than a normal
    sender.
    """
    conn = session if isinstance(session, sa.Connection) else session.connection()
    if "p_reply_out" not in params:
        return _STORE.execute(conn, params).scalar()
    return inbound_id(_STORE_WITH_REPLY.execute(conn, params).all())


def inbound_id(rows: Any) -> int | None:
    """The inbound message's id among the rows a statement storing it with its reply returned
    (None: nothing stored)."""
    return next((row.id for row in rows if row.direction == "in"), None)


def finish_inbound(
    session: Session,
    message_id: int,
    conversation_id: int | None,
    reply: dict[str, Any],
    reply_out: dict[str, Any],
) -> None:
    """Store the reply (and the conversation) with the inbound message, so that a retry gets it
    back, and ``reply_out`` as the reply's outbound message, for the transcript: two Core
    statements (an ORM object for the outbound row cost more than its INSERT)."""
    conn = session.connection()
    conn.execute(
        _FINISH,
        {"p_message_id": message_id, "p_conversation_id": conversation_id, "p_reply": reply},
    )
    conn.execute(_REPLY_OUT, {"p_message_id": message_id, "p_reply_out": reply_out})
