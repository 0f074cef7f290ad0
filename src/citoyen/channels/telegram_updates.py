"""Telegram updates read, replies written: what a Bot API update means, and a reply's messages.

A Bot API ``Update`` is read into a :class:`ParsedUpdate` (pure: no database, no network); the
service :mod:`citoyen.services.telegram_inbound` turns it into a conversation step and queues the
replies, which :func:`reply_payloads` cuts into Telegram messages with buttons. Nothing here talks
to Telegram or to the database; the callers answer callback queries (see docs/telegram.md).

What each update means:

- text -> ``Input("text")``; the commands /help, /stop, /language and /menu map to the
  deployment's keywords (``config/settings.yaml``), so the engine does what the words do on SMS;
  /start begins the default flow afresh (``Input("start")``), or opts back in after /stop;
- a button press (callback query) -> ``Input("choice", option key)``;
- a shared location -> ``Input("location", code of the nearest known area)``
  (:mod:`citoyen.services.places`); with no known area near it, the citizen is "asked again"
  (below) and picks from the menu. Coordinates are never stored: only the area code is;
- a voice note -> ``Input("recording", file_id)``: the engine takes it as the answer to a free-text
  question and refuses it elsewhere, like a recording on a call;
- a photo -> its caption as text, or (no caption) ``Input("photo", file_id)``: the answer to a
  question that takes photos (adding to a report), else the engine asks the question again; the
  photo itself is kept as an attachment; stickers, documents and the like are "asked again";
- a shared contact -> the sender's own phone number when the contact's ``user_id`` is the
  sender's (what the "share my number" button of a ``phone`` question sends: Telegram vouches
  for it), else "someone else's number"; the service turns it into ``Input("contact")`` with
  the number encrypted (:mod:`citoyen.services.telegram_inbound`). The number is never logged;
- "asked again" is the deployment's ``help`` keyword: the engine answers with the help text and
  the current question, without counting a wrong answer (``Input("start")`` would abandon the
  conversation: it begins a new one);
- voice notes and photos become :class:`~citoyen.models.Attachment` rows (``pending``) that the
  worker downloads with getFile, linked to the conversation and, once it exists, to its report;
- ``my_chat_member`` with status ``kicked`` (the user blocked the bot) opts the contact out;
- edited messages, group chats, channel posts and everything else are ignored (answered 200,
  logged without ids): an edit must not be taken as a second answer, and concerns are raised in
  private chats only, where other people cannot read them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from telegram import Update

from citoyen.channels.telegram_sender import MAX_DOWNLOAD_BYTES
from citoyen.engine.types import Input
from citoyen.messages.addresses import AddressError, normalise_address
from citoyen.messages.render import render_telegram
from citoyen.messages.types import Reply

log = logging.getLogger(__name__)

CHANNEL = "telegram"
# Telegram refuses callback data over 64 bytes; longer option keys travel as a hash of the key.
MAX_CALLBACK_BYTES = 64
HASHED_PREFIX = "h:"
# Telegram accepts 4096 characters per message; split a little below on line or word boundaries.
MAX_TEXT = 4000
# Commands and the keyword group they stand for (the first word of that group is sent).
COMMANDS = {"help": "help", "stop": "stop", "language": "language", "menu": "menu"}


@dataclass(frozen=True)
class MediaRef:
    """A voice note or photo to keep: what getFile needs, and what the admin shows."""

    kind: str  # voice | photo
    file_id: str
    file_unique_id: str
    content_type: str | None = None
    duration_seconds: int | None = None
    size_bytes: int | None = None


@dataclass(frozen=True)
class ParsedUpdate:
    """What one update means, before any database lookup.

    ``action``: ``input`` (``input`` is set), ``command`` (``command`` names it), ``location``
    (``location`` is set), ``contact`` (a shared contact: ``phone`` is the sender's own number,
    ``tel:+…``, or None for someone else's), ``again`` (nothing the flows can use: ask the
    question again), ``opt_out`` (the user blocked the bot) or ``ignore`` (``reason`` says why,
    for the log).
    """

    update_id: int
    action: str
    address: str | None = None
    input: Input | None = None
    command: str | None = None
    location: tuple[float, float] | None = None
    media: MediaRef | None = None
    callback_query_id: str | None = None
    reason: str = ""
    phone: str | None = field(default=None, repr=False)  # never in a log line


# --- reading an update -------------------------------------------------------------------------


def _ignore(update_id: int, reason: str, callback_query_id: str | None = None) -> ParsedUpdate:
    return ParsedUpdate(update_id, "ignore", reason=reason, callback_query_id=callback_query_id)


def _command(text: str) -> str | None:
    """``start`` for "/start", "/start payload" and "/START@citoyen_bot"; None for other text."""
    if not text.startswith("/"):
        return None
    name = text[1:].split(maxsplit=1)[0] if len(text) > 1 else ""
    name = name.split("@", 1)[0].lower()
    return name if name == "start" or name in COMMANDS else None


def _largest_photo(sizes: Sequence[Any]) -> Any | None:
    """The biggest size of a photo that a bot may still download (getFile stops at 20 MB)."""
    usable = [s for s in sizes if s.file_size is None or s.file_size <= MAX_DOWNLOAD_BYTES]
    return max(usable, key=lambda s: (s.width * s.height, s.file_size or 0), default=None)


def parse_update(update: Update) -> ParsedUpdate:
    """Read an update into a :class:`ParsedUpdate` (no database, no network)."""
    uid = update.update_id
    if update.callback_query is not None:
        query = update.callback_query
        chat = query.message.chat if query.message is not None else None
        if chat is None or chat.type != "private":
            return _ignore(uid, "button outside a private chat", query.id)
        if query.from_user.is_bot or not query.data:
            return _ignore(uid, "button without data", query.id)
        return ParsedUpdate(
            uid,
            "input",
            address=f"telegram:{query.from_user.id}",
            input=Input("choice", query.data),
            callback_query_id=query.id,
        )
    if update.my_chat_member is not None:
        member = update.my_chat_member
        if member.chat.type != "private" or member.new_chat_member.status != "kicked":
            return _ignore(uid, f"chat member status {member.new_chat_member.status}")
        return ParsedUpdate(uid, "opt_out", address=f"telegram:{member.from_user.id}")
    if update.message is None:
        for kind in ("edited_message", "channel_post", "edited_channel_post"):
            if getattr(update, kind, None) is not None:
                return _ignore(uid, kind.replace("_", " "))
        return _ignore(uid, "an update kind the flows do not use")
    return _parse_message(uid, update.message)


def parse_text(update_id: int, address: str, text: str) -> ParsedUpdate:
    """A typed text: a command (/start, /help, /menu, /language, /stop) or an input.

    The one reading of Telegram text: the webhook, long polling and ``citoyen chat --channel
    telegram`` (and the transcript tests) all go through it.
    """
    command = _command(text)
    if command is not None:
        return ParsedUpdate(update_id, "command", address, command=command)
    return ParsedUpdate(update_id, "input", address, Input("text", text))


def _seconds(value: Any) -> int | None:
    """Whole seconds from an int or a timedelta.

    Read through ``to_dict()``: the ``duration`` attribute warns that its type will change.
    """
    if value is None:
        return None
    return int(value.total_seconds()) if hasattr(value, "total_seconds") else int(value)


def _parse_message(uid: int, message: Any) -> ParsedUpdate:
    user = message.from_user
    if message.chat.type != "private":
        return _ignore(uid, f"message in a {message.chat.type} chat")
    if user is None or user.is_bot:
        return _ignore(uid, "message not from a person")
    address = f"telegram:{user.id}"
    if message.voice is not None:
        voice = message.voice
        media = MediaRef(
            "voice",
            voice.file_id,
            voice.file_unique_id,
            voice.mime_type or "audio/ogg",
            _seconds(voice.to_dict().get("duration")),
            voice.file_size,
        )
        return ParsedUpdate(uid, "input", address, Input("recording", voice.file_id), media=media)
    if message.photo:
        photo = _largest_photo(message.photo)
        media = (
            MediaRef(
                "photo", photo.file_id, photo.file_unique_id, "image/jpeg", None, photo.file_size
            )
            if photo is not None
            else None
        )
        caption = (message.caption or "").strip()
        if caption:
            return ParsedUpdate(uid, "input", address, Input("text", caption), media=media)
        if media is not None:
            return ParsedUpdate(uid, "input", address, Input("photo", media.file_id), media=media)
        return ParsedUpdate(uid, "again", address)
    if message.location is not None:
        loc = message.location
        return ParsedUpdate(uid, "location", address, location=(loc.latitude, loc.longitude))
    if message.contact is not None:
        return _parse_contact(uid, address, message.contact, user.id)
    if message.text is not None:
        return parse_text(uid, address, message.text)
    # Stickers, documents...: nothing the flows can use; ask the question again.
    return ParsedUpdate(uid, "again", address)


def _parse_contact(uid: int, address: str, contact: Any, sender_id: int) -> ParsedUpdate:
    """A shared contact: the sender's own number (``user_id`` is theirs: Telegram filled it in
    and vouches for the number), or someone else's (``phone`` None). Telegram writes numbers in
    international form, usually without the "+"."""
    if contact.user_id is None or contact.user_id != sender_id:
        return ParsedUpdate(uid, "contact", address)
    raw = str(contact.phone_number or "").strip()
    try:
        phone = normalise_address("tel:" + (raw if raw.startswith("+") else f"+{raw}"))
    except AddressError:
        return ParsedUpdate(uid, "again", address)  # no number we can call: nothing to refuse
    return ParsedUpdate(uid, "contact", address, phone=phone)


# --- from parsed update to neutral input -------------------------------------------------------


def callback_data(key: str) -> str:
    """The callback data of a button for option ``key``: the key, or a hash when too long."""
    if len(key.encode()) <= MAX_CALLBACK_BYTES:
        return key
    return HASHED_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:32]


# --- replies into the outbox -------------------------------------------------------------------


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Pieces of at most ``limit`` characters, cut at a line break or a space when possible."""
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind("\n", 0, limit)
        if cut <= 0:
            cut = rest.rfind(" ", 0, limit)
        if cut <= 0:
            cut = limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    pieces.append(rest)
    return [p for p in pieces if p] or [text]


def reply_payloads(
    catalog: Any, reply: Reply, *, close_keyboard: bool = False
) -> list[tuple[str, dict[str, Any]]]:
    """(text, payload) per Telegram message of a reply.

    Texts without buttons are joined to the message after them ("Bienvenue..." and the first
    question make one message): fewer notifications on the citizen's phone, and fewer messages
    against Telegram's limit of about one per second per chat. Buttons stay under their question
    and go with the last piece of a text too long for one message.

    A question for the citizen's phone number carries ``share_phone``, the label of the keyboard
    button that shares it. ``close_keyboard`` (that button was shown or used just before) puts
    ``remove_keyboard`` on the first message that has no button of its own: Telegram takes one
    keyboard per message, so a reply that is only menus leaves it to a later one.
    """
    out: list[tuple[str, dict[str, Any]]] = []
    pending: list[str] = []
    messages = render_telegram(catalog, reply.prompts, reply.language, reply.params)
    for n, message in enumerate(messages):
        pending.append(message.text)
        if not message.buttons and not message.share_phone and n < len(messages) - 1:
            continue
        pieces = split_text("\n\n".join(pending))
        pending = []
        buttons = [[label, callback_data(key)] for label, key in message.buttons]
        for i, piece in enumerate(pieces):
            payload: dict[str, Any] = {"buttons": buttons if i == len(pieces) - 1 else []}
            if message.share_phone and i == len(pieces) - 1:
                payload["share_phone"] = message.share_phone
            out.append((piece, payload))
    if close_keyboard and not any("share_phone" in payload for _text, payload in out):
        for _text, payload in out:
            if not payload["buttons"]:
                payload["remove_keyboard"] = True
                break
    return out
