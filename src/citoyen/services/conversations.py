"""The conversation service: one inbound input in, one reply out, state in the database.

Every channel (Twilio SMS and voice, Telegram, the terminal simulator) calls
:meth:`ConversationService.handle`. One step, the same on every database, in one transaction:
read the state (the stored reply of this provider id, the sender's contact locked, its open
conversation), step the pure engine, apply the effects (reports, consent, language...), write
the new state with the inbound message and its reply. On a conflict (a copy of the same message
or a first message of the same sender committed first) the step is rolled back and run again,
and then finds the winner's rows. So a provider retrying the same request gets the same answer
and nothing is recorded twice. docs/conversations.md tells the whole walk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from citoyen import engine as flow_engine
from citoyen.db import write_session
from citoyen.engine import Flow
from citoyen.engine.textnorm import normalise
from citoyen.engine.types import Context, Input, Prompt, State, StepResult
from citoyen.messages.addresses import normalise_address
from citoyen.messages.render import option_label
from citoyen.messages.types import Inbound, Reply
from citoyen.models import (
    OPEN_CONVERSATION_STATUSES,
    Contact,
    Conversation,
    InboundThrottle,
    Message,
)
from citoyen.services import effects as effect_handlers
from citoyen.services import followups
from citoyen.services import inbound as messages
from citoyen.services.areas.menus import AREA_RECHECK_SECONDS, load_area_context
from citoyen.services.contacts import new_contact
from citoyen.services.flows import PinnedFlows
from citoyen.services.privacy import Vault, alias_label

log = logging.getLogger(__name__)

OPEN_STATUSES = OPEN_CONVERSATION_STATUSES
# Voice menus have keys 1-9; text channels keep menus short enough to read on a small phone.
MENU_SIZE = {"voice": 9, "sms": 9, "telegram": 9}

# How many times a step is run when it conflicts with a concurrent one (each run sees the
# rows the other committed, so the second run succeeds unless a third copy raced it too).
ATTEMPTS = 4

# The contact's latest open conversation (built once; SQLAlchemy's compiled cache serves it).
_OPEN_CONVERSATION = (
    select(Conversation)
    .where(
        Conversation.contact_id == bindparam("contact_id"),
        col(Conversation.status).in_(OPEN_STATUSES),
    )
    .order_by(col(Conversation.id).desc())
    .limit(1)
)

# ``on_reply(session, reply, contact_id)``: a channel's own rows, in the step's transaction.
OnReply = Callable[[Session, "Reply", int], None]


@dataclass(frozen=True)
class InboundLimit:
    """At most ``messages`` inbound inputs per sender in any ``window`` (settings
    ``CITOYEN_INBOUND_LIMIT`` and ``CITOYEN_INBOUND_WINDOW_SECONDS``)."""

    messages: int = 40
    window: timedelta = timedelta(minutes=10)


def _without_nul(inbound: Inbound) -> Inbound:
    """The input without NUL characters: PostgreSQL text cannot hold them (the insert would
    fail: found by fuzzing the webhooks), and no citizen means one."""
    value = inbound.input.value
    if value is None or "\x00" not in value:
        return inbound
    return replace(inbound, input=replace(inbound.input, value=value.replace("\x00", "")))


def _new_conversation(
    session: Session, contact: Contact, channel: str, flow: Any, result: Any, now: datetime
) -> Conversation:
    """The row of a conversation that has just started (its first step is ``result``)."""
    conversation = Conversation(
        contact_id=contact.id,
        channel=channel,
        flow_id=flow.id,
        flow_version=flow.version,
        node=result.state.node,
        status=result.state.status,
        state=result.state.to_dict(),
        started_at=now,
        updated_at=now,
    )
    session.add(conversation)
    session.flush()
    return conversation


def state_values(state: State, flow: Any, now: datetime) -> dict[str, Any]:
    """A conversation's columns after a step that left it in ``state``."""
    return {
        "state": state.to_dict(),
        "node": state.node,
        "status": state.status,
        "updated_at": now,
        "expires_at": (
            now + timedelta(seconds=flow.expiry_seconds) if state.status in OPEN_STATUSES else None
        ),
    }


def _message_reply(reply: Reply) -> dict[str, Any]:
    """What an outbound ``Message`` row keeps of a reply."""
    return {"prompts": reply.to_dict()["prompts"], "language": reply.language}


@dataclass(frozen=True)
class Opening:
    """A flow's first step for one language and channel, computed before any contact is known.

    The engine is pure and sees a contact only through its language, so every contact of one
    language started on one channel gets this same step (see :meth:`ConversationService.opening`).
    ``params`` and ``menu`` are before any effect's values; ``reply`` has no conversation yet.
    """

    flow: Flow
    result: StepResult
    language: str
    params: dict[str, Any]
    menu: list
    reply: Reply

    def conversation_values(
        self, now: datetime, expires_at: datetime | None = None
    ) -> dict[str, Any]:
        """The started conversation's state columns; ``expires_at`` overrides the flow's expiry
        (a survey's own) when the conversation stays open."""
        values = state_values(self.result.state, self.flow, now)
        if expires_at is not None and values["expires_at"] is not None:
            values["expires_at"] = expires_at
        return values

    @property
    def message_reply(self) -> dict[str, Any]:
        """The ``reply`` of the conversation's "start" message row."""
        return _message_reply(self.reply)


class ConversationService:
    """Handles inbound inputs for one deployment (flows, texts, data key, database)."""

    def __init__(
        self, engine: Engine, bundle: Any, vault: Vault, limit: InboundLimit | None = None
    ) -> None:
        self.engine = engine
        self.bundle = bundle
        self.flows = PinnedFlows(bundle)
        self.vault = vault
        self.limit = limit or InboundLimit()

    # -- public -------------------------------------------------------------------------------

    def handle(
        self,
        inbound: Inbound,
        now: datetime | None = None,
        on_reply: OnReply | None = None,
    ) -> Reply:
        """Process one inbound input exactly once and return the reply to give.

        ``on_reply(session, reply, contact_id)`` runs inside the same transaction for a new (not
        duplicate) input: channels that answer through the outbox (Telegram) queue the reply
        there, so it is queued if and only if the input is recorded.
        """
        now = now or datetime.now(UTC)
        inbound = _without_nul(inbound)
        last_error: Exception | None = None
        for _attempt in range(ATTEMPTS):
            try:
                with write_session(self.engine) as session:
                    return self._step(session, inbound, now, on_reply)
            except IntegrityError as exc:
                # A copy of this message committed first (same provider id), or this sender's
                # first two messages raced to create its contact: the next run sees the winner.
                last_error = exc
        raise RuntimeError("inbound message could not be stored") from last_error

    def start(
        self,
        session: Session,
        contact: Contact,
        flow_id: str,
        channel: str,
        now: datetime,
        *,
        expires_at: datetime | None = None,
    ) -> tuple[Reply, Conversation]:
        """Start ``flow_id`` for ``contact`` from the server side (a survey invitation).

        Runs in the caller's transaction, so the conversation exists if and only if whatever
        caused it (the invitation, its outbox rows) is committed. The first prompts are returned
        for the caller to send; the citizen's answers then arrive by the channel's webhook and
        continue this conversation like any other. ``expires_at`` overrides the flow's expiry
        (a survey's own expiry). The caller makes sure no other conversation is open.
        """
        opening = self.opening(session, flow_id, channel, contact.language)
        flow, result, language = opening.flow, opening.result, opening.language
        conversation = _new_conversation(session, contact, channel, flow, result, now)
        reply = self._reply(
            session,
            result,
            dict(opening.params),
            language,
            contact,
            conversation,
            flow,
            channel,
            now,
        )
        for name, value in opening.conversation_values(now, expires_at).items():
            setattr(conversation, name, value)
        conversation.menu = self._menu(result.prompts, language, reply.params)
        session.add(
            Message(
                contact_id=contact.id,
                conversation_id=conversation.id,
                channel=channel,
                direction="out",
                kind="start",
                reply=_message_reply(reply),
                created_at=now,
            )
        )
        return reply, conversation

    def opening(
        self, session: Session, flow_id: str, channel: str, language: str | None
    ) -> Opening:
        """The first step of ``flow_id`` for a contact of ``language`` on ``channel``.

        The flow version is pinned (stored) here, in the caller's transaction. The step itself
        is computed without the contact, so a caller starting many contacts (a survey run)
        computes it once per language and channel and inserts the rows in bulk
        (:meth:`Opening.conversation_values`, :attr:`Opening.menu`, :attr:`Opening.reply`); a
        step with ``effects`` needs each contact's conversation and goes through :meth:`start`.
        """
        flow = self.bundle.flows[flow_id]
        self.flows.pin(session, flow)
        ctx = self._context(session, language, channel)
        result = flow_engine.start(flow, ctx, language=language)
        lang = result.state.language or language or self.bundle.settings.languages.default
        params = self.reply_params(result)
        reply = Reply(
            prompts=result.prompts, language=lang, params=params, status=result.state.status
        )
        return Opening(flow, result, lang, params, self._menu(result.prompts, lang, params), reply)

    def open_conversation(
        self, session: Session, contact: Contact, now: datetime
    ) -> Conversation | None:
        """The contact's open, unexpired conversation, if any (expired ones are closed)."""
        return self._open_conversation(session, contact, "", now)

    def emergency_params(self) -> dict[str, Any]:
        return dict(self.bundle.settings.emergency_numbers)

    def reply_params(self, result: StepResult) -> dict[str, Any]:
        """The values a step's texts may use before effects add theirs: the emergency numbers
        and the conversation's plain answers."""
        answers = result.state.answers
        return {
            **self.emergency_params(),
            **{k: v for k, v in answers.items() if isinstance(v, str | int | float)},
        }

    # -- internals ----------------------------------------------------------------------------

    def _step(
        self, session: Session, inbound: Inbound, now: datetime, on_reply: OnReply | None
    ) -> Reply:
        """One step of the sender's conversation, in ``session``'s transaction."""
        stored = messages.stored_reply(session, inbound.channel, inbound.provider_id)
        if stored is not None:
            # A provider retry: the same answer, and nothing written (not even last_seen_at).
            session.rollback()
            return Reply.from_dict(stored, duplicate=True)
        # Locked (its row, by the UPDATE that sets last_seen_at; on SQLite the transaction holds
        # the write lock): two messages of one sender are stepped one after the other, each on
        # the state the other left. A concurrent first message of a new sender fails here on
        # the address hash, and the step is run again.
        canonical = normalise_address(inbound.address)
        contact = messages.claim_contact(session, self.vault.hashes(canonical), now)
        created = contact is None
        if contact is None:
            contact = new_contact(session, self.vault, canonical, now)
        assert contact.id is not None
        limit = self.limit
        if messages.over_limit(session, contact.id, now, limit.messages, limit.window):
            # Not stored, not stepped: a flood never becomes reports or fills the database.
            self._count_throttled(session, contact, inbound.channel, now)
            return Reply(prompts=[], language=self._lang(contact), status="throttled")
        if contact.blocked:
            # A blocked contact's message is kept, with its (empty) reply, and goes no further.
            blocked = Reply(prompts=[], language=self._lang(contact), status="blocked")
            self._store(session, contact.id, inbound, now, blocked)
            log.info("inbound from blocked contact %s ignored", alias_label(contact.alias))
            return blocked

        conversation = self._open_conversation(session, contact, inbound.channel, now)
        trigger = self._trigger(inbound)
        if conversation is not None and (inbound.input.kind == "start" or trigger is not None):
            # A new call (or invitation) begins afresh: an SMS conversation left open must not
            # continue on a keypad, mid-question. A flow's keyword ("SUIVI 161-6414") works at
            # every step of every flow: it leaves the open conversation for its own flow.
            conversation.status = "interrupted"
            conversation.state = {**conversation.state, "status": "interrupted"}
            conversation.updated_at = now
            conversation = None
        ctx = self._context(session, contact.language, inbound.channel)
        result, conversation, flow = self._engine_step(
            session, contact, conversation, inbound, ctx, now, created, trigger
        )
        params = self.reply_params(result)
        language = result.state.language or self._lang(contact)
        reply = self._reply(
            session,
            result,
            params,
            language,
            contact,
            conversation,
            flow,
            inbound.channel,
            now,
            render=lambda key: self.bundle.catalog.render(key, language, {}),
        )
        for name, value in state_values(result.state, flow, now).items():
            setattr(conversation, name, value)
        conversation.menu = self._menu(result.prompts, language, params)
        self._store(session, contact.id, inbound, now, reply, conversation.id)
        if on_reply is not None:
            on_reply(session, reply, contact.id)
        log.info(
            "%s %s: flow %s node %s -> %s",
            inbound.channel,
            alias_label(contact.alias),
            flow.id,
            result.state.node,
            result.state.status,
        )
        return reply

    def _store(
        self,
        session: Session,
        contact_id: int,
        inbound: Inbound,
        now: datetime,
        reply: Reply,
        conversation_id: int | None = None,
    ) -> None:
        """Keep ``inbound`` with ``reply`` (and the reply's outbound row, when it continued a
        conversation), so that a retry of the same provider id gets the same answer."""
        stored = reply.to_dict()
        messages.store(
            session,
            contact_id=contact_id,
            channel=inbound.channel,
            provider_id=inbound.provider_id,
            kind=inbound.input.kind,
            body=inbound.input.value,
            now=now,
            reply=stored,
            conversation_id=conversation_id,
            reply_out=_message_reply(reply) if conversation_id is not None else None,
        )

    def _count_throttled(
        self, session: Session, contact: Contact, channel: str, now: datetime
    ) -> None:
        """Count an input dropped because its sender is over the inbound limit.

        The limit itself is :func:`citoyen.services.inbound.over_limit`. The flood is logged
        once, when it starts, then counted in ``inbound_throttles``.
        """
        since = now - self.limit.window
        burst = session.exec(
            select(InboundThrottle)
            .where(InboundThrottle.contact_id == contact.id, col(InboundThrottle.last_at) > since)
            .order_by(col(InboundThrottle.id).desc())
        ).first()
        if burst is None:
            burst = InboundThrottle(contact_id=contact.id, channel=channel, started_at=now)
            session.add(burst)
            log.warning(
                "inbound flood: %s sent %d messages in %d s on %s; further ones are dropped",
                alias_label(contact.alias),
                self.limit.messages,
                int(self.limit.window.total_seconds()),
                channel,
            )
        burst.dropped += 1
        burst.last_at = now

    def _reply(
        self,
        session: Session,
        result: StepResult,
        params: dict[str, Any],
        language: str,
        contact: Contact,
        conversation: Conversation,
        flow: Flow,
        channel: str,
        now: datetime,
        render: Callable[[str], str] | None = None,
    ) -> Reply:
        """Apply a step's effects (their values join ``params``) and build the reply: the same
        for a conversation the server starts and for one a citizen's message moves on."""
        if result.effects:
            params.update(
                effect_handlers.apply(
                    session,
                    result.effects,
                    contact=contact,
                    conversation=conversation,
                    flow=flow,
                    channel=channel,
                    now=now,
                    render=render,
                    answer_window=timedelta(seconds=self._after.answer_seconds),
                    vault=self.vault,
                )
            )
        return Reply.of_step(result, language, params, conversation.id, alias_label(contact.alias))

    def _lang(self, contact: Contact) -> str:
        return contact.language or self.bundle.settings.languages.default

    def _context(self, session: Session, contact_language: str | None, channel: str) -> Context:
        areas, roots = load_area_context(session, max_age=AREA_RECHECK_SECONDS)
        settings = self.bundle.settings
        return Context(
            languages=tuple(settings.languages.enabled),
            default_language=settings.languages.default,
            keywords={k: tuple(v) for k, v in settings.keywords.items()},
            areas=areas,
            area_roots=roots,
            menu_size=MENU_SIZE.get(channel, 9),
            contact_language=contact_language,
            channel=channel,
        )

    def _open_conversation(
        self, session: Session, contact: Contact, channel: str, now: datetime
    ) -> Conversation | None:
        conversation = session.exec(_OPEN_CONVERSATION, params={"contact_id": contact.id}).first()
        if conversation is None:
            return None
        if conversation.expires_at is not None and conversation.expires_at <= now:
            conversation.status = "expired"
            conversation.state = {**conversation.state, "status": "expired"}
            conversation.updated_at = now
            return None
        return conversation

    def _engine_step(
        self,
        session: Session,
        contact: Contact,
        conversation: Conversation | None,
        inbound: Inbound,
        ctx: Context,
        now: datetime,
        first_contact: bool,
        trigger: tuple[Flow, str | None] | None,
    ) -> tuple[Any, Conversation, Any]:
        if conversation is not None:
            flow = self.flows.get(session, conversation.flow_id, conversation.flow_version)
            if flow is not None:
                state = State.from_dict(conversation.state)
                inp = self._match_label(inbound.input, conversation.menu)
                result = flow_engine.step(flow, state, inp, ctx)
                return result, conversation, flow
            # The pinned version is gone (database restored without it): start again cleanly.
            conversation.status = "interrupted"
            conversation.updated_at = now

        flow, given = self._choose_flow(session, contact, inbound, ctx, now, first_contact, trigger)
        self.flows.pin(session, flow)
        result = self._first_step(flow, inbound, ctx, contact.language, given)
        conversation = _new_conversation(session, contact, inbound.channel, flow, result, now)
        return result, conversation, flow

    def _first_step(
        self,
        flow: Flow,
        inbound: Inbound,
        ctx: Context,
        language: str | None,
        given: dict[str, Any] | None,
    ) -> StepResult:
        """The first step of a conversation ``inbound`` starts on ``flow``."""
        result = flow_engine.start(flow, ctx, language=language, given=given)
        if (
            inbound.input.kind == "text"
            and self._is_keyword(inbound.input.value, ctx)
            and not self._is_trigger(flow, inbound.input.value)
        ):
            # A global keyword as first message (STOP, AIDE...): let the engine act on it.
            result = flow_engine.step(flow, result.state, inbound.input, ctx)
        return result

    def _is_keyword(self, text: str | None, ctx: Context) -> bool:
        norm = normalise(text or "")
        return any(norm == normalise(w) for words in ctx.keywords.values() for w in words)

    def _is_trigger(self, flow: Any, text: str | None) -> bool:
        return self.bundle.flow_for_keyword(text or "") is flow

    def _trigger(self, inbound: Inbound) -> tuple[Flow, str | None] | None:
        """The flow a text's trigger keyword starts, with the reference written after it."""
        if inbound.flow_id is not None or inbound.input.kind != "text" or not inbound.input.value:
            return None
        return self.bundle.triggered_by(inbound.input.value)

    @property
    def _after(self) -> Any:
        return self.bundle.settings.after_report

    def _choose_flow(
        self,
        session: Session,
        contact: Contact,
        inbound: Inbound,
        ctx: Context,
        now: datetime,
        first_contact: bool,
        trigger: tuple[Flow, str | None] | None,
    ) -> tuple[Flow, dict[str, Any] | None]:
        """The flow a new conversation runs, and the answers it starts with.

        In this order: the flow the caller names (a survey call); a flow's keyword, with the
        reference written after it or else the contact's last report; a global keyword or a new
        call, which go to the flows the triggers choose; then, for any other message, the answer
        to a recent staff message, the acknowledgement after a recent report, and last the
        triggers (first contact, default). docs/flows.md, "After a report".
        """
        bundle = self.bundle
        if inbound.flow_id is not None:
            return bundle.flows[inbound.flow_id], None
        assert contact.id is not None
        if trigger is not None:
            flow, reference = trigger
            if reference is None and not first_contact:
                last = followups.last_report(session, contact.id)
                reference = last.reference if last is not None else None
            return flow, ({"reference": reference} if reference else None)
        inp = inbound.input
        if not first_contact and not self._is_keyword(inp.value, ctx):
            about = followups.about_a_report(session, contact.id, inp, now, self._after)
            flow = bundle.flow_for(about.trigger) if about is not None else None
            if about is not None and flow is not None:
                return flow, about.given
        kinds = ["incoming_call"] if inbound.channel == "voice" else []
        kinds += ["first_contact"] if first_contact else []
        for kind in [*kinds, "default"]:
            flow = bundle.flow_for(kind)
            if flow is not None:
                return flow, None
        return next(iter(bundle.flows.values())), None

    def _match_label(self, inp: Input, menu: list | None) -> Input:
        """Typed text equal to a label of the last ``menu`` shown, in the citizen's language,
        selects that option."""
        if inp.kind != "text" or not inp.value or not menu:
            return inp
        norm = normalise(inp.value)
        for key, label in menu:
            if norm == normalise(label):
                return Input("choice", key)
        return inp

    def _menu(self, prompts: list[Prompt], language: str, params: dict[str, Any]) -> list:
        """The options of the last menu shown, with their labels as the citizen saw them."""
        catalog = self.bundle.catalog
        for prompt in reversed(prompts):
            if prompt.options:
                return [
                    # A language is chosen by its own name, as on its Telegram button.
                    [
                        o.key,
                        catalog.meta(o.lang).name
                        if o.lang
                        else option_label(catalog, o, language, params),
                    ]
                    for o in prompt.options
                ]
        return []
