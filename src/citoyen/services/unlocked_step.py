"""The common conversation step, computed before any lock is taken and written only if nothing
changed meanwhile.

Most inbound messages continue an open conversation with a step that changes nothing but the
conversation and, at most, a few columns of the contact (language, consent, opt-out). Under the
locking path (:meth:`ConversationService._handle`) such a step held the contact's row lock (on
SQLite: the database's single write lock) while the engine stepped, the reply was built and ORM
objects were flushed: some 3 ms per message during which no other writer could go on, which
capped the SQLite webhook near 350 messages a second whatever the number of cores.

Here the step runs in two short transactions:

1. **Read** (no lock): one statement returns the sender's contact, the reply stored for this
   provider id (a provider retry is answered from it, with nothing written) and the contact's
   open conversation. The pure engine steps; the reply, the menu and the new state are built.
2. **Write** (the lock, then statements only): set ``last_seen_at`` and the contact columns the
   step's effects set, store the inbound message with its reply (counted against the sender's
   limit as always), move the conversation on **only if it is still as read** (same status and
   ``updated_at``: every step and every closing writes both), and keep the outbound message.

Whenever the step needs anything else, or anything differs between read and write (the
conversation moved on, the contact was blocked, the sender is over the limit, the flow version
is not the current file), nothing is written here and the caller runs the locking path, which
does everything the same way with the rows locked first. A concurrent copy of the same message
fails on the provider id's unique constraint as before and is then answered from the stored
reply. So the outcome is the locking path's; only who waits, and for how long, differs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session

from citoyen import engine as flow_engine
from citoyen.db import write_connection
from citoyen.engine.types import State
from citoyen.models import Contact, Conversation, Message, UTCDateTime
from citoyen.services.effects import CONTACT_EFFECTS, contact_values
from citoyen.services.inbound import stored_reply_column
from citoyen.services.privacy import alias_label, normalise_address

if TYPE_CHECKING:  # pragma: no cover - imported for types only (a cycle at run time)
    from citoyen.services.conversations import ConversationService, Inbound, OnReply, Reply

log = logging.getLogger(__name__)

_contacts = Contact.__table__  # type: ignore[attr-defined]
_conversations = Conversation.__table__  # type: ignore[attr-defined]
_messages = Message.__table__  # type: ignore[attr-defined]
OPEN_STATUSES = ("active", "waiting")

# Built once (a statement costs more Python to build than to run): the contact, the stored reply
# of this provider id and the contact's latest open conversation, in one round trip.
_open = _conversations.alias("open_conversations")
_latest_open = (
    sa.select(sa.func.max(_open.c.id))
    .where(_open.c.contact_id == _contacts.c.id, _open.c.status.in_(OPEN_STATUSES))
    .correlate(_contacts)
    .scalar_subquery()
)
_READ = (
    sa.select(
        _contacts.c.id,
        _contacts.c.alias,
        _contacts.c.language,
        _contacts.c.blocked,
        stored_reply_column().label("stored_reply"),
        _conversations.c.id.label("conversation_id"),
        _conversations.c.flow_id,
        _conversations.c.flow_version,
        _conversations.c.status,
        _conversations.c.state,
        _conversations.c.menu,
        _conversations.c.updated_at,
        _conversations.c.expires_at,
    )
    .select_from(_contacts.outerjoin(_conversations, _conversations.c.id == _latest_open))
    .where(_contacts.c.address_hash.in_(sa.bindparam("p_digests", expanding=True)))
    .limit(2)
)
# Only when the conversation is still as it was read: same status and same ``updated_at``.
_MOVE_ON = (
    sa.update(_conversations)
    .where(
        _conversations.c.id == sa.bindparam("p_id"),
        _conversations.c.status == sa.bindparam("p_seen_status"),
        _conversations.c.updated_at == sa.bindparam("p_seen_at", type_=UTCDateTime),
    )
    .values(
        state=sa.bindparam("p_state", type_=_conversations.c.state.type),
        node=sa.bindparam("p_node"),
        status=sa.bindparam("p_status"),
        updated_at=sa.bindparam("p_now", type_=UTCDateTime),
        expires_at=sa.bindparam("p_expires_at", type_=UTCDateTime),
        menu=sa.bindparam("p_menu", type_=_conversations.c.menu.type),
    )
)
_SEEN = (
    sa.update(_contacts)
    .where(_contacts.c.id == sa.bindparam("p_id"), _contacts.c.blocked.is_(False))
    .values(last_seen_at=sa.bindparam("p_now", type_=UTCDateTime))
)
_REPLY_OUT = sa.insert(_messages).values(
    contact_id=sa.bindparam("p_contact_id"),
    conversation_id=sa.bindparam("p_conversation_id"),
    channel=sa.bindparam("p_channel"),
    direction="out",
    kind="reply",
    reply=sa.bindparam("p_reply", type_=_messages.c.reply.type),
    created_at=sa.bindparam("p_now", type_=UTCDateTime),
)


class _Changed(Exception):
    """Something differs from what the step was computed on: write nothing, lock and redo."""


@dataclass(frozen=True)
class _Step:
    """A step computed from the rows as read, with everything the write needs."""

    contact_id: int
    alias: int
    conversation_id: int
    seen_status: str
    seen_at: datetime
    contact_set: dict[str, Any]
    state: dict[str, Any]
    menu: list
    reply: Reply
    flow_id: str
    node: str


def try_step(
    service: ConversationService, inbound: Inbound, now: datetime, on_reply: OnReply | None
) -> Reply | None:
    """The reply to ``inbound`` if this path could take it, else None (nothing written; the
    caller runs the locking path). A provider retry gets its stored reply here."""
    digests = service.vault.hashes(normalise_address(inbound.address))
    with service.engine.connect() as conn:
        rows = conn.execute(
            _READ,
            {
                "p_digests": digests,
                "p_channel": inbound.channel,
                "p_provider_id": inbound.provider_id,
            },
        ).all()
        if len(rows) != 1:
            return None  # a new sender (or, during a key rotation, two rows): lock first
        row = rows[0]
        if row.stored_reply is not None:
            from citoyen.services.conversations import Reply

            return Reply.from_dict(row.stored_reply, duplicate=True)
        step = _compute(service, conn, inbound, row, now)
    if step is None:
        return None
    try:
        with write_connection(service.engine) as conn:
            _write(service, conn, inbound, step, now, on_reply)
    except _Changed:
        return None
    log.info(
        "%s %s: flow %s node %s -> %s",
        inbound.channel,
        alias_label(step.alias),
        step.flow_id,
        step.node,
        step.reply.status,
    )
    return step.reply


def _compute(
    service: ConversationService, conn: sa.Connection, inbound: Inbound, row: Any, now: datetime
) -> _Step | None:
    """The step on the rows as read, or None when it is not one this path writes."""
    from citoyen.services.conversations import Reply, _scalar_params, _state_values

    if row.blocked or row.conversation_id is None or inbound.input.kind == "start":
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None  # the locking path closes it and starts afresh
    flow = service.bundle.flows.get(row.flow_id)
    if flow is None or flow.version != row.flow_version:
        return None  # a pinned older version: loaded from the database there
    # The area map is cached per process; the session is for its periodic change check.
    ctx = service._context(Session(bind=conn), row.language, inbound.channel)
    inp = service._match_label(inbound.input, row.menu)
    result = flow_engine.step(flow, State.from_dict(row.state), inp, ctx)
    contact_set: dict[str, Any] = {}
    for effect in result.effects:
        if effect.kind not in CONTACT_EFFECTS:
            return None  # a report, answers, a lookup: other rows, under the lock
        contact_set.update(contact_values(effect))
    params: dict[str, Any] = {**service.emergency_params(), **_scalar_params(result.state.answers)}
    language = (
        result.state.language
        or contact_set.get("language", row.language)
        or service.bundle.settings.languages.default
    )
    reply = Reply.of_step(result, language, params, row.conversation_id, row.alias)
    return _Step(
        contact_id=row.id,
        alias=row.alias,
        conversation_id=row.conversation_id,
        seen_status=row.status,
        seen_at=row.updated_at,
        contact_set=contact_set,
        state=_state_values(result.state, flow, now),
        menu=service._menu(result.prompts, language, params),
        reply=reply,
        flow_id=flow.id,
        node=result.state.node,
    )


def _write(
    service: ConversationService,
    conn: sa.Connection,
    inbound: Inbound,
    step: _Step,
    now: datetime,
    on_reply: OnReply | None,
) -> None:
    """Write ``step`` if the rows are still as read; raise :class:`_Changed` otherwise."""
    seen = _SEEN.values(**step.contact_set) if step.contact_set else _SEEN
    claimed = conn.execute(seen, {"p_id": step.contact_id, "p_now": now})
    if claimed.rowcount != 1:
        raise _Changed
    stored = step.reply.to_dict()
    message_id = service.store_message(
        conn, step.contact_id, inbound, now, reply=stored, conversation_id=step.conversation_id
    )
    if message_id is None:
        raise _Changed  # over the limit: counted and logged by the locking path
    moved = conn.execute(
        _MOVE_ON,
        {
            "p_id": step.conversation_id,
            "p_seen_status": step.seen_status,
            "p_seen_at": step.seen_at,
            "p_state": step.state["state"],
            "p_node": step.state["node"],
            "p_status": step.state["status"],
            "p_now": now,
            "p_expires_at": step.state["expires_at"],
            "p_menu": step.menu,
        },
    )
    if moved.rowcount != 1:
        raise _Changed
    conn.execute(
        _REPLY_OUT,
        {
            "p_contact_id": step.contact_id,
            "p_conversation_id": step.conversation_id,
            "p_channel": inbound.channel,
            "p_reply": {"prompts": stored["prompts"], "language": step.reply.language},
            "p_now": now,
        },
    )
    if on_reply is not None:
        # The channel's own rows (queued replies, recordings) in this transaction, through the
        # ORM: a session joined to this connection, flushed before it commits.
        with Session(bind=conn) as session:
            on_reply(session, step.reply, step.contact_id)
            session.flush()
