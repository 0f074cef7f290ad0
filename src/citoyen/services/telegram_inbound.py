"""Telegram updates into conversations: the one path shared by the webhook and long polling.

The channel (:mod:`citoyen.channels.telegram_updates`) reads a Bot API ``Update`` into a
:class:`~citoyen.channels.telegram_updates.ParsedUpdate` without touching the database; here it
becomes a neutral :class:`~citoyen.messages.types.Inbound` (looking up what the input
means where that needs the database or the flows: /start after /stop, a shared location, a hashed
button, a command named after a flow's keyword; a shared phone number is encrypted here) and
goes to the conversation service with ``provider_id = str(update_id)``, so Telegram re-sending an
update (it does, when a webhook answer is late) changes nothing. Replies are not sent from here:
they are queued in the outbox inside the conversation's own transaction (``on_reply``), so a reply
is queued if and only if its input was recorded, and the worker delivers it with retries and rate
limits. Voice notes and photos become :class:`~citoyen.models.Attachment` rows (``pending``) that
the worker downloads with getFile, linked to the conversation and, once it exists, to its report;
a user who blocks the bot is opted out. See docs/telegram.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from telegram import Update

from citoyen.channels.telegram_updates import (
    CHANNEL,
    COMMANDS,
    HASHED_PREFIX,
    MediaRef,
    ParsedUpdate,
    callback_data,
    parse_text,
    parse_update,
    reply_payloads,
)
from citoyen.db import session_scope, write_session
from citoyen.engine.types import Input
from citoyen.messages.types import Inbound, Reply
from citoyen.models import Contact, Conversation, Message, Outbox
from citoyen.services import attachments
from citoyen.services.contacts import find_contact
from citoyen.services.inbound import ask_again, first_keyword
from citoyen.services.outbox import enqueue
from citoyen.services.places import nearest_area

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What processing an update did; the webhook and the bot act on ``callback_query_id``."""

    status: str  # handled | duplicate | ignored | opted_out
    callback_query_id: str | None = None
    reply: Reply | None = None
    queued: int = 0
    reason: str = ""


# --- from parsed update to neutral input -------------------------------------------------------


def _open_conversation(session: Session, contact: Contact | None) -> Conversation | None:
    if contact is None:
        return None
    return session.exec(
        select(Conversation)
        .where(
            Conversation.contact_id == contact.id,
            Conversation.status.in_(("active", "waiting")),
        )
        .order_by(Conversation.id.desc())
    ).first()


def resolve_input(runtime: Any, parsed: ParsedUpdate) -> Input:
    """The engine input for an ``input``, ``command``, ``location``, ``contact`` or ``again``
    update.

    Reads the database for /start (has the contact opted out?), locations (nearest area) and
    hashed buttons (the last menu shown); writes nothing.
    """
    keywords = runtime.bundle.settings.keywords
    if parsed.action == "command":
        if parsed.command == "start":
            return _start_input(runtime, parsed.address or "", keywords)
        word = first_keyword(keywords, COMMANDS[parsed.command or ""])
        return Input("text", word or f"/{parsed.command}")
    if parsed.action == "location":
        lat, lon = parsed.location or (float("nan"), float("nan"))
        with session_scope(runtime.engine) as session:
            area = nearest_area(session, lat, lon)
        if area is not None:
            return Input("location", area.code)
        log.info("telegram location: no known area near it, asking with the menu")
        return ask_again(keywords)
    if parsed.action == "contact":
        return contact_input(runtime, parsed.phone)
    if parsed.action == "again":
        return ask_again(keywords)
    assert parsed.input is not None
    inp = parsed.input
    if inp.kind == "choice" and inp.value and inp.value.startswith(HASHED_PREFIX):
        return _unhash_choice(runtime, parsed.address or "", inp)
    if inp.kind == "text" and inp.value and inp.value.startswith("/"):
        return _keyword_command(runtime, inp)
    return inp


def contact_input(runtime: Any, phone: str | None) -> Input:
    """A shared contact as the engine takes it: the sender's own number (``tel:+…``)
    encrypted with the data key, as every stored number is (the input is kept with its
    message and the answers of its conversation); None, someone else's number, is an input
    with no value, which a ``phone`` question refuses."""
    if phone is None:
        log.info("telegram: a shared contact is not the sender's own number")
        return Input("contact")
    return Input("contact", runtime.vault.encrypt(phone))


def _keyword_command(runtime: Any, inp: Input) -> Input:
    """``/appel``, ``/suivi 161-6414``: a command named after a flow's trigger keyword is that
    keyword (the flows' keywords, in any language, without a list of commands to keep)."""
    head, _, rest = (inp.value or "")[1:].partition(" ")
    word = head.split("@", 1)[0]
    if not word or runtime.bundle.flow_for_keyword(word) is None:
        return inp
    return Input("text", f"{word} {rest.strip()}".strip())


def typed_input(runtime: Any, address: str, text: str) -> Input:
    """What a text typed in the Telegram chat means (commands mapped as the bot maps them)."""
    return resolve_input(runtime, parse_text(0, address, text))


def _start_input(runtime: Any, address: str, keywords: dict[str, Sequence[str]]) -> Input:
    """/start: the default flow from its beginning; for a contact who opted out, opt back in.

    Telegram shows a Start button the first time and users press /start to "start over". A
    ``start`` input does that: the conversation service leaves any open conversation as
    interrupted and begins the flow the triggers choose (the language is remembered). A contact
    who sent /stop gets the ``start`` keyword instead, which opts them back in and says so.
    """
    with session_scope(runtime.engine) as session:
        contact = find_contact(session, runtime.vault, address)
        opted_out = contact is not None and contact.opted_out
    word = first_keyword(keywords, "start") if opted_out else None
    return Input("text", word) if word else Input("start")


def _unhash_choice(runtime: Any, address: str, inp: Input) -> Input:
    """The option key a hashed button stands for, from the last menu the citizen was shown."""
    with session_scope(runtime.engine) as session:
        conversation = _open_conversation(session, find_contact(session, runtime.vault, address))
        menu = list(conversation.menu) if conversation is not None else []
    for key, _label in menu:
        if callback_data(key) == inp.value:
            return Input("choice", key)
    return inp  # a button of an older menu: the engine says it is not a valid choice


# --- replies into the outbox -------------------------------------------------------------------


@dataclass
class _Queue:
    """The ``on_reply`` hook: queue the reply and keep the media, in the input's transaction."""

    catalog: Any
    update_id: int
    media: MediaRef | None
    now: datetime
    contact_shared: bool = False
    queued: list[int] = field(default_factory=list)

    def __call__(self, session: Session, reply: Reply, contact_id: int) -> None:
        media = self.media
        if media is not None:
            attachments.keep(
                session,
                channel=CHANNEL,
                kind=media.kind,
                provider_ref=media.file_id,
                content_type=media.content_type,
                contact_id=contact_id,
                conversation_id=reply.conversation_id,
                duration_seconds=media.duration_seconds,
                size_bytes=media.size_bytes,
            )
        close = self.contact_shared or _asked_for_phone(session, contact_id)
        payloads = reply_payloads(self.catalog, reply, close_keyboard=close)
        for i, (text, payload) in enumerate(payloads):
            row = enqueue(
                session,
                channel=CHANNEL,
                idempotency_key=f"tg:{self.update_id}:{i}",
                body=text,
                payload=payload,
                contact_id=contact_id,
                kind="reply",
                now=self.now,
            )
            self.queued.append(row.id or 0)


def _asked_for_phone(session: Session, contact_id: int) -> bool:
    """Whether the last reply queued for the contact showed the button that shares their phone
    number: the reply to whatever they did instead takes that keyboard away."""
    payload = session.exec(
        select(Outbox.payload)
        .where(Outbox.contact_id == contact_id, Outbox.channel == CHANNEL, Outbox.kind == "reply")
        .order_by(Outbox.id.desc())
        .limit(1)
    ).first()
    return isinstance(payload, dict) and bool(payload.get("share_phone"))


# --- the shared entry point --------------------------------------------------------------------


def opt_out(runtime: Any, parsed: ParsedUpdate, now: datetime) -> str:
    """The user blocked the bot: no more unsolicited messages (recorded once per update)."""
    with write_session(runtime.engine) as session:
        contact = find_contact(session, runtime.vault, parsed.address or "", lock=True)
        if contact is None:
            return "ignored"  # never wrote to us: nothing to remember
        try:
            with session.begin_nested():
                session.add(
                    Message(
                        contact_id=contact.id,
                        channel=CHANNEL,
                        direction="in",
                        provider_id=str(parsed.update_id),
                        kind="blocked",
                        reply=Reply(
                            prompts=[], language=contact.language or "", status="blocked"
                        ).to_dict(),
                        created_at=now,
                    )
                )
                session.flush()
        except IntegrityError:
            return "duplicate"
        contact.opted_out = True
        contact.survey_consent = False
    return "opted_out"


def process_update(runtime: Any, update: Update, now: datetime | None = None) -> Outcome:
    """Handle one update exactly once (by ``update_id``); replies are queued in the outbox."""
    return process_parsed(runtime, parse_update(update), now)


def process_parsed(runtime: Any, parsed: ParsedUpdate, now: datetime | None = None) -> Outcome:
    """:func:`process_update` for an update already read (the webhook reads it to answer 400)."""
    now = now or datetime.now(UTC)
    if parsed.action == "ignore":
        log.info("telegram update ignored: %s", parsed.reason)
        return Outcome("ignored", parsed.callback_query_id, reason=parsed.reason)
    if parsed.action == "opt_out":
        status = opt_out(runtime, parsed, now)
        log.info("telegram: a user blocked the bot (%s)", status)
        return Outcome(status)
    inp = resolve_input(runtime, parsed)
    queue = _Queue(
        runtime.bundle.catalog,
        parsed.update_id,
        parsed.media,
        now,
        contact_shared=parsed.action == "contact",
    )
    inbound = Inbound(CHANNEL, parsed.address or "", inp, provider_id=str(parsed.update_id))
    reply = runtime.conversations.handle(inbound, now=now, on_reply=queue)
    status = "duplicate" if reply.duplicate else "handled"
    return Outcome(status, parsed.callback_query_id, reply, queued=len(queue.queued))
