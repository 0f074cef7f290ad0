"""The conversation step, computed before any lock is taken and written only if nothing
changed meanwhile.

Nearly every inbound message continues an open conversation, or starts one for a contact. Under
the locking path (:meth:`ConversationService._handle`) such a step held the contact's row lock
(on SQLite: the database's single write lock) while the engine stepped, the reply was built and
ORM objects were flushed: some 3 ms per message during which no other writer could go on, which
capped the SQLite webhook near 350 messages a second whatever the number of cores.

Here the step runs in two short phases (:func:`citoyen.db.read_then_write`: on SQLite an
autocommit read then a write transaction; on PostgreSQL one transaction on one connection, whose
read takes no lock):

1. **Read** (no lock): one statement returns the sender's contact, the reply stored for this
   provider id (a provider retry is answered from it, with nothing written) and the contact's
   open conversation. The pure engine steps (or starts the flow the triggers choose); the reply,
   the menu and the new state are built.
2. **Write** (the lock, then prepared statements only): set ``last_seen_at`` and the contact
   columns the step's effects set (on SQLite skipped for a step that continues a conversation,
   sets no column and comes within a minute of the last write: :data:`LAST_SEEN_PRECISION`;
   on PostgreSQL, for most steps, all of this write is one statement), move the
   conversation on **only if it is still as read** (same status and ``updated_at``: every step
   and every closing writes both) **and its contact is not blocked**, or open a new one **only
   if the contact has no open one by now**; apply the effects on other rows (a report with its
   routing, survey answers, a lookup: :data:`~citoyen.services.effects.ROW_EFFECTS`, through
   :func:`~citoyen.services.effects.apply` as the locking path does, then build the reply that
   shows their values); store the inbound message with its reply (counted against the sender's
   limit as always) and keep the outbound message.

Whenever the step needs anything else, or anything differs between read and write (the
conversation moved on or was opened by a concurrent message, the contact was blocked, the sender
is over the limit, the flow version is not the current file or not stored yet), the write is
rolled back (a report made in it with it) and the caller runs the locking path, which does
everything the same way with the rows locked first. A concurrent copy of the same message fails
on the provider id's unique constraint as before and is then answered from the stored reply. So
the outcome is the locking path's; only who waits, and for how long, differs.
"""

from __future__ import annotations

import functools
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session

from citoyen import engine as flow_engine
from citoyen.db import read_then_write
from citoyen.engine import Flow
from citoyen.engine.types import State, StepResult
from citoyen.models import Contact, Conversation, UTCDateTime, is_open
from citoyen.prepared import Prepared
from citoyen.services import conversations
from citoyen.services.contacts import address_kind
from citoyen.services.effects import CONTACT_EFFECTS, ROW_EFFECTS, contact_values, report_place
from citoyen.services.inbound import (
    UNDER_LIMIT,
    inbound_id,
    store_with_reply_after,
    stored_reply_column,
)
from citoyen.services.privacy import alias_label, normalise_address

if TYPE_CHECKING:  # pragma: no cover - names for types only (the modules import each other)
    from citoyen.services.conversations import ConversationService, Inbound, OnReply, Reply

log = logging.getLogger(__name__)

_contacts = Contact.__table__  # type: ignore[attr-defined]
_conversations = Conversation.__table__  # type: ignore[attr-defined]
# On SQLite ``last_seen_at`` is kept to the minute: a message that continues a conversation less
# than a minute after its contact was last seen (a caller's keypresses, a citizen answering a
# menu) does not write the contact's row. Retention, its one reader, counts in days.
LAST_SEEN_PRECISION = timedelta(minutes=1)

# Built once (a statement costs more Python to build than to run) and run on the driver's cursor
# (:class:`~citoyen.prepared.Prepared`, as the other statements of a step): the contact, the
# stored reply of this provider id and the contact's latest open conversation, in one round trip.
_READ = Prepared(
    sa.select(
        _contacts.c.id,
        _contacts.c.alias,
        _contacts.c.language,
        _contacts.c.blocked,
        _contacts.c.channel,
        _contacts.c.area_id,
        _contacts.c.last_seen_at,
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
    # From one row, so that a sender not known yet still gets one back (no contact, but the
    # stored reply of this provider id: one statement for a first message too). Two fixed
    # parameters for the address (the current key's hash and the previous key's, or the current
    # one twice): an expanding IN list would be rendered into new SQL text at every execution.
    # A contact has at most one open conversation (both paths open one only when none is):
    # joined by its contact id, through that index. (Joined on "the id of its latest open
    # conversation", PostgreSQL read the whole conversations table into a hash at every
    # message.) Two rows back, whatever the cause, send the message to the locking path.
    .select_from(
        sa.select(sa.literal_column("1").label("one"))
        .subquery("one")
        .outerjoin(
            _contacts,
            _contacts.c.address_hash.in_([sa.bindparam("p_digest"), sa.bindparam("p_old_digest")]),
        )
        .outerjoin(
            _conversations,
            sa.and_(
                _conversations.c.contact_id == _contacts.c.id, is_open(_conversations.c.status)
            ),
        )
    )
    .limit(2)
)
# Only when the conversation is still as it was read (same status and same ``updated_at``) and
# its contact is not blocked (checked here when the contact's row is not written, below).
_blocking = _contacts.alias("blocking_contacts")
_MOVE_ON = Prepared(
    sa.update(_conversations)
    .where(
        _conversations.c.id == sa.bindparam("p_id"),
        _conversations.c.status == sa.bindparam("p_seen_status"),
        _conversations.c.updated_at == sa.bindparam("p_seen_at", type_=UTCDateTime),
        ~sa.exists().where(
            _blocking.c.id == _conversations.c.contact_id, _blocking.c.blocked.is_(True)
        ),
    )
    .values(
        state=sa.bindparam("p_state", type_=_conversations.c.state.type),
        node=sa.bindparam("p_node"),
        status=sa.bindparam("p_status"),
        updated_at=sa.bindparam("p_updated_at", type_=UTCDateTime),
        expires_at=sa.bindparam("p_expires_at", type_=UTCDateTime),
        menu=sa.bindparam("p_menu", type_=_conversations.c.menu.type),
    )
)
# The contact seen now, unless it is blocked (its row lock orders the sender's messages).
_SEEN = Prepared(
    sa.update(_contacts)
    .where(_contacts.c.id == sa.bindparam("p_contact_id"), _contacts.c.blocked.is_(False))
    .values(last_seen_at=sa.bindparam("p_now", type_=UTCDateTime))
)
# PostgreSQL, a step that changes only ``last_seen_at``, the conversation and the messages: one
# statement, atomic without a transaction around it. The conversation's UPDATE waits for the
# contact's UPDATE (its WHERE reads it), so the contact's row is locked first, as everywhere.
# After that wait its other reads (the limit's count) see the tables as they were when the
# statement began; what a message that held the lock meanwhile wrote is not missed, because
# such a message moved the conversation on too (every step moves ``updated_at`` forward:
# :func:`~citoyen.services.conversations.state_values`), and the conversation's WHERE fails.
_seen = _SEEN.statement.returning(_contacts.c.id).cte("seen")
_MOVE_AND_STORE = Prepared(
    store_with_reply_after(
        _MOVE_ON.statement.where(UNDER_LIMIT, sa.exists(sa.select(_seen.c.id)))
        .returning(_conversations.c.id)
        .cte("moved")
    ).add_cte(_seen)
)
# A new conversation, unless the contact has an open one by now (the contact's row is locked
# first, so a concurrent first message is seen here once it committed).
_others = _conversations.alias("other_conversations")
_START_VALUES = {
    "contact_id": sa.bindparam("p_contact_id", type_=sa.Integer),
    "channel": sa.bindparam("p_channel", type_=sa.String),
    "flow_id": sa.bindparam("p_flow_id", type_=sa.String),
    "flow_version": sa.bindparam("p_flow_version", type_=sa.String),
    "node": sa.bindparam("p_node", type_=sa.String),
    "status": sa.bindparam("p_status", type_=sa.String),
    "state": sa.bindparam("p_state", type_=_conversations.c.state.type),
    "menu": sa.bindparam("p_menu", type_=_conversations.c.menu.type),
    "started_at": sa.bindparam("p_now", type_=UTCDateTime),
    "updated_at": sa.bindparam("p_now", type_=UTCDateTime),
    "expires_at": sa.bindparam("p_expires_at", type_=UTCDateTime),
}
_START = Prepared(
    sa.insert(_conversations)
    .from_select(
        list(_START_VALUES),
        sa.select(*_START_VALUES.values()).where(
            ~sa.exists().where(
                _others.c.contact_id == sa.bindparam("p_contact_id", type_=sa.Integer),
                is_open(_others.c.status),
            )
        ),
    )
    .returning(_conversations.c.id)
)
_SET_MENU = Prepared(
    sa.update(_conversations)
    .where(_conversations.c.id == sa.bindparam("p_id"))
    .values(menu=sa.bindparam("p_menu", type_=_conversations.c.menu.type))
)
_NEW_CONTACT = Prepared(
    sa.insert(_contacts)
    .values(
        alias=sa.bindparam("p_alias", type_=sa.Integer),
        created_at=sa.bindparam("p_now", type_=UTCDateTime),
        last_seen_at=sa.bindparam("p_now", type_=UTCDateTime),
    )
    .returning(_contacts.c.id)
)


# The columns a step's effects set on the contact (its language, consent...) are parameters
# ``p_set_<column>`` of a statement built once per set of columns: built per message with the
# values in it, each took SQLAlchemy's statement building and cache lookup (some 0.15 ms).
_SET = "p_set_"


@functools.lru_cache(maxsize=128)
def _setting(statement: Prepared, columns: frozenset[str]) -> Prepared:
    """``statement`` (an INSERT or UPDATE of contacts) also writing ``columns``."""
    binds = {name: sa.bindparam(_SET + name, type_=_contacts.c[name].type) for name in columns}
    return Prepared(statement.statement.values(**binds))


def _set_params(values: dict[str, Any]) -> dict[str, Any]:
    return {_SET + name: value for name, value in values.items()}


class _Changed(Exception):
    """Something differs from what the step was computed on: write nothing, lock and redo."""


@dataclass(frozen=True)
class _Step:
    """A step computed from the rows as read, with everything the write needs."""

    new_contact: dict[str, Any] | None  # the contact's columns when it is created here
    contact: SimpleNamespace  # the contact as read: what the effects are applied to
    conversation_id: int | None  # None: the step starts a conversation on ``flow``
    seen_status: str | None
    seen_at: datetime | None
    # The contact's row need not be written: the step continues a conversation, sets none of its
    # columns, and ``last_seen_at`` is recent enough (:data:`LAST_SEEN_PRECISION`). On SQLite
    # only, where writers go one at a time: on PostgreSQL the contact's row lock is what orders
    # this message against one on the locking path (which counts the sender's limit under it).
    contact_unchanged: bool
    contact_set: dict[str, Any]
    state: dict[str, Any]
    result: StepResult
    flow: Flow
    language: str
    params: dict[str, Any]
    # Effects on other rows (a report, answers, a lookup), applied in the write transaction:
    # the reply and the menu, which may show their values, are built after them.
    row_effects: bool
    reply: Reply | None  # built here unless the step has row effects
    menu: list  # with row effects: before their values, written again if they change it

    @property
    def alias(self) -> int:
        return self.contact.alias

    @property
    def one_statement(self) -> bool:
        """Only ``last_seen_at``, the conversation and the messages are written (see
        :data:`_MOVE_AND_STORE`)."""
        return not self.contact_set and self.conversation_id is not None and not self.row_effects

    def conversation_params(self, now: datetime) -> dict[str, Any]:
        """The parameters of the statements that write the conversation's new state."""
        return {
            "p_node": self.state["node"],
            "p_status": self.state["status"],
            "p_state": self.state["state"],
            "p_now": now,
            "p_updated_at": self.state["updated_at"],  # now, or just past the one read
            "p_expires_at": self.state["expires_at"],
            "p_menu": self.menu,
            "p_id": self.conversation_id,
            "p_seen_status": self.seen_status,
            "p_seen_at": self.seen_at,
        }


def try_step(
    service: ConversationService, inbound: Inbound, now: datetime, on_reply: OnReply | None
) -> Reply | None:
    """The reply to ``inbound`` if this path could take it, else None (nothing written; the
    caller runs the locking path). A provider retry gets its stored reply here."""
    canonical = normalise_address(inbound.address)
    digests = service.vault.hashes(canonical)
    if len(digests) > 2:
        return None  # more than one retired hash key: the locking path looks the contact up
    try:
        with read_then_write(service.engine) as (conn, writing):
            rows = _READ.execute(
                conn,
                {
                    "p_digest": digests[0],
                    "p_old_digest": digests[-1],
                    "p_channel": inbound.channel,
                    "p_provider_id": inbound.provider_id,
                },
            ).all()
            if len(rows) > 1:
                # During a key rotation two contacts for one address, or two open conversations
                # (which nothing should make): the locking path sorts it out.
                return None
            row = rows[0]
            if row.id is None:
                row = _first_contact(service, row, canonical)
            if row.stored_reply is not None:
                return conversations.Reply.from_dict(row.stored_reply, duplicate=True)
            step = _compute(service, conn, inbound, row, now)
            if step is None:
                return None
            if (
                step.one_statement
                and step.reply is not None  # built in _compute: no row effects
                and conn.dialect.name == "postgresql"
                and (on_reply is None or not conversations.needs_hook(on_reply, step.reply))
            ):
                reply = _move_and_store(service, conn, inbound, step, now)
            else:
                with writing() as write:
                    reply = _write(service, write, inbound, step, now, on_reply)
    except _Changed:
        return None  # raised out of the block: what was written is rolled back
    log.info(
        "%s %s: flow %s node %s -> %s",
        inbound.channel,
        alias_label(step.alias),
        step.flow.id,
        step.result.state.node,
        reply.status,
    )
    return reply


def _first_contact(service: ConversationService, read: Any, canonical: str) -> Any:
    """The read row of a sender not known yet: the contact to create, no conversation (and the
    reply already stored for this provider id, if a contact was erased since)."""
    return SimpleNamespace(
        id=None,
        alias=1000 + secrets.randbelow(9000),
        language=None,
        blocked=False,
        channel=address_kind(canonical),
        area_id=None,
        last_seen_at=None,
        stored_reply=read.stored_reply,
        conversation_id=None,
        status=None,
        updated_at=None,
        new_contact={
            "address_hash": service.vault.hash(canonical),
            "address_enc": service.vault.encrypt(canonical),
            "channel": address_kind(canonical),
        },
    )


def _compute(
    service: ConversationService, conn: sa.Connection, inbound: Inbound, row: Any, now: datetime
) -> _Step | None:
    """The step on the rows as read, or None when it is not one this path writes."""
    if row.blocked:
        return None
    # The area map is cached per process; the session is for its periodic change check.
    session = Session(bind=conn)
    ctx = service._context(session, row.language, inbound.channel)
    if row.conversation_id is None:
        flow = service._choose_flow(inbound, first_contact=row.id is None)
        if not service.flows.is_stored(conn, flow):
            return None  # the locking path stores the version first
        result = service._first_step(flow, inbound, ctx, row.language)
    else:
        if inbound.input.kind == "start":
            return None  # a new call interrupts the open conversation: the locking path
        if row.expires_at is not None and row.expires_at <= now:
            return None  # the locking path closes it and starts afresh
        flow = service.bundle.flows.get(row.flow_id)
        if flow is None or flow.version != row.flow_version:
            return None  # a pinned older version: loaded from the database there
        inp = service._match_label(inbound.input, row.menu)
        result = flow_engine.step(flow, State.from_dict(row.state), inp, ctx)
    contact_set: dict[str, Any] = {}
    row_effects = False
    for effect in result.effects:
        if effect.kind in CONTACT_EFFECTS:
            contact_set.update(contact_values(effect))
        elif effect.kind in ROW_EFFECTS:
            row_effects = True
            place = report_place(session, effect)
            if place is not None:
                contact_set["area_id"] = place  # as :func:`effects.apply` sets it
        else:
            return None  # unknown here: the locking path
    params = service.reply_params(result)
    language = (
        result.state.language
        or contact_set.get("language", row.language)
        or service.bundle.settings.languages.default
    )
    contact = SimpleNamespace(
        id=row.id, alias=row.alias, channel=row.channel, language=row.language, area_id=row.area_id
    )
    reply = None
    if not row_effects:  # built before the write lock is taken
        reply = conversations.Reply.of_step(
            result, language, params, row.conversation_id, row.alias
        )
    menu = service._menu(result.prompts, language, params)
    return _Step(
        new_contact=getattr(row, "new_contact", None),
        contact=contact,
        conversation_id=row.conversation_id,
        seen_status=row.status,
        seen_at=row.updated_at,
        contact_unchanged=(
            conn.dialect.name == "sqlite"
            and row.conversation_id is not None
            and not contact_set
            and row.last_seen_at is not None
            and now - row.last_seen_at < LAST_SEEN_PRECISION
        ),
        contact_set=contact_set,
        state=conversations.state_values(result.state, flow, now, row.updated_at),
        result=result,
        flow=flow,
        language=language,
        params=params,
        row_effects=row_effects,
        reply=reply,
        menu=menu,
    )


def _write(
    service: ConversationService,
    conn: sa.Connection,
    inbound: Inbound,
    step: _Step,
    now: datetime,
    on_reply: OnReply | None,
) -> Reply:
    """Write ``step`` if the rows are still as read (and return its reply); raise
    :class:`_Changed` otherwise."""
    contact_id = step.contact.id
    if contact_id is None:
        # A concurrent first message of the same sender fails here on the address hash; the
        # caller's retry then finds its contact.
        columns = {**step.new_contact, **step.contact_set}
        contact_id = (
            _setting(_NEW_CONTACT, frozenset(columns))
            .execute(conn, {"p_alias": step.alias, "p_now": now, **_set_params(columns)})
            .scalar()
        )
        assert contact_id is not None  # RETURNING of an INSERT without a condition
        step.contact.id = contact_id
    elif not step.contact_unchanged:
        # The contact's row lock also orders this sender's messages (a conversation's, below).
        seen = _setting(_SEEN, frozenset(step.contact_set)) if step.contact_set else _SEEN
        params = {"p_contact_id": contact_id, "p_now": now, **_set_params(step.contact_set)}
        if seen.execute(conn, params).rowcount != 1:
            raise _Changed  # blocked meanwhile
    values = step.conversation_params(now)
    conversation_id = step.conversation_id
    if conversation_id is None:
        conversation_id = _START.execute(
            conn,
            {
                **values,
                "p_contact_id": contact_id,
                "p_channel": inbound.channel,
                "p_flow_id": step.flow.id,
                "p_flow_version": step.flow.version,
            },
        ).scalar()
        if conversation_id is None:
            raise _Changed  # a conversation was opened meanwhile: continue it under the lock
    else:
        moved = _MOVE_ON.execute(conn, values)
        if moved.rowcount != 1:
            raise _Changed  # the conversation moved on meanwhile
    session = None
    reply = step.reply
    if reply is None:
        # Effects on other rows, through the ORM as under the locking path: a session joined to
        # this connection, flushed before it commits. Their values (a report's reference) go
        # into the reply, and into the menu written to the conversation now.
        session = Session(bind=conn)
        params = dict(step.params)
        conversation = SimpleNamespace(
            id=conversation_id, flow_id=step.flow.id, flow_version=step.flow.version
        )
        # The locking path's own code: effects.apply, then the reply (params gets their values).
        reply = service._reply(
            session,
            step.result,
            params,
            step.language,
            step.contact,  # type: ignore[arg-type] - the columns the effects read and set
            conversation,  # type: ignore[arg-type]
            step.flow,
            inbound.channel,
            now,
            render=lambda key: service.bundle.catalog.render(key, step.language, {}),
        )
        menu = service._menu(step.result.prompts, step.language, params)
        if menu != step.menu:
            _SET_MENU.execute(conn, {"p_id": conversation_id, "p_menu": menu})
    reply.conversation_id = conversation_id
    stored = reply.to_dict()
    message_id = service.store_message(
        conn,
        contact_id,
        inbound,
        now,
        reply=stored,
        conversation_id=conversation_id,
        reply_out={"prompts": stored["prompts"], "language": reply.language},
    )
    if message_id is None:
        raise _Changed  # over the limit: counted and logged by the locking path
    if on_reply is not None and conversations.needs_hook(on_reply, reply):
        # The channel's own rows (queued replies, recordings) in this transaction.
        session = session or Session(bind=conn)
        on_reply(session, reply, contact_id)
    if session is not None:
        session.flush()
    return reply


def _move_and_store(
    service: ConversationService, conn: sa.Connection, inbound: Inbound, step: _Step, now: datetime
) -> Reply:
    """Write ``step`` by :data:`_MOVE_AND_STORE` on the autocommit connection ``conn`` (no
    BEGIN, no COMMIT: two round trips fewer), or raise :class:`_Changed` with nothing written
    when the conversation moved on, the contact was blocked or the sender is over the limit."""
    reply = step.reply
    assert reply is not None  # built in _compute: the step has no row effects
    stored = reply.to_dict()
    params = service.message_params(
        step.contact.id,
        inbound,
        now,
        reply=stored,
        reply_out={"prompts": stored["prompts"], "language": reply.language},
    )
    rows = _MOVE_AND_STORE.execute(conn, {**params, **step.conversation_params(now)}).all()
    if inbound_id(rows) is None:
        raise _Changed
    return reply
