"""Sending Telegram messages from the outbox, and fetching the files citizens sent.

The outbox dispatcher is synchronous and runs in the worker's threads, while python-telegram-bot's
``Bot`` is asyncio. Each :class:`TelegramClient` owns one event loop (created with it, closed by
:meth:`TelegramClient.close`) and runs every API call to completion on it: one loop per sender
rather than per message, because the ``Bot``'s HTTP connection pool belongs to the loop it was
first used on and is reused across messages. A lock serialises callers, since a loop runs one
``run_until_complete`` at a time.

Bot API errors become the dispatcher's vocabulary (:mod:`citoyen.channels.base`):

- ``Forbidden`` (403: "bot was blocked by the user", user deactivated...) -> permanent, and the
  contact is opted out: Telegram will refuse every later message too;
- ``RetryAfter`` (429 flood control) -> transient, ``retry_after`` in seconds as Telegram said;
- ``BadRequest`` (400: chat not found, text or buttons refused...) -> permanent: retrying sends
  the same request;
- ``TimedOut``, ``NetworkError`` (5xx, connection trouble) -> transient;
- ``InvalidToken`` (401/404) -> transient, logged as a configuration error: the message is not at
  fault, and an operator who fixes ``TELEGRAM_BOT_TOKEN`` within the retry window loses nothing.

Telegram has no idempotency key, so a crash between the send and the dispatcher's commit can
deliver one message twice (docs/telegram.md).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Mapping, Sequence
from datetime import timedelta
from typing import Any, BinaryIO, TypeVar

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)

from citoyen.channels.base import (
    OutboundMessage,
    PermanentFetchError,
    PermanentSendError,
    PerThreadSender,
    SendError,
    SendResult,
    TransientFetchError,
    TransientSendError,
)

log = logging.getLogger(__name__)

CHANNEL = "telegram"
# Bots may download files of up to 20 MB (getFile).
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
T = TypeVar("T")


def quiet_http_logs() -> None:
    """Keep httpx's request lines out of INFO logs: their URLs carry the bot token."""
    logger = logging.getLogger("httpx")
    if logger.getEffectiveLevel() < logging.WARNING:
        logger.setLevel(logging.WARNING)


def make_bot(token: str, *, base_url: str | None = None, base_file_url: str | None = None) -> Bot:
    """A ``Bot`` for the real Bot API, or for another server (a local Bot API server, tests)."""
    quiet_http_logs()
    kwargs: dict[str, Any] = {}
    if base_url is not None:
        kwargs["base_url"] = base_url
    if base_file_url is not None:
        kwargs["base_file_url"] = base_file_url
    return Bot(token, **kwargs)


def api_urls(api_url: str | None) -> dict[str, str]:
    """``base_url`` and ``base_file_url`` for a Bot API served at ``api_url`` (``{}``: Telegram's
    own, https://api.telegram.org), as python-telegram-bot names them."""
    if not api_url:
        return {}
    root = api_url.rstrip("/")
    return {"base_url": f"{root}/bot", "base_file_url": f"{root}/file/bot"}


def settings_bot(settings: Any) -> Bot:
    """The deployment's ``Bot``: its token, on ``CITOYEN_TELEGRAM_API_URL`` when set."""
    return make_bot(settings.telegram_bot_token, **api_urls(settings.telegram_api_url))


def chat_id_of(address: str) -> int:
    """The private chat id of ``telegram:ID`` (in a private chat it is the user's id)."""
    kind, _, ident = address.partition(":")
    if kind != "telegram" or not ident.lstrip("-").isdigit():
        raise PermanentSendError("not a Telegram address", code="address")
    return int(ident)


def reply_markup(buttons: Sequence[Sequence[str]] | None) -> InlineKeyboardMarkup | None:
    """Inline buttons from an outbox payload's ``[[label, callback data], ...]``, one per row."""
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(str(label), callback_data=str(data))] for label, data in buttons]
    )


def payload_markup(
    payload: Mapping[str, Any],
) -> InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | None:
    """The ``reply_markup`` of an outbox payload: its inline buttons; or, for a question asking
    for the citizen's phone number (``share_phone``), a keyboard of one button that shares it
    (``request_contact``: Telegram sends the number of the account, which the citizen cannot
    change), hidden once used; or ``remove_keyboard`` to take that keyboard away."""
    share = payload.get("share_phone")
    if share:
        button = KeyboardButton(str(share), request_contact=True)
        return ReplyKeyboardMarkup([[button]], resize_keyboard=True, one_time_keyboard=True)
    inline = reply_markup(payload.get("buttons"))
    if inline is None and payload.get("remove_keyboard"):
        return ReplyKeyboardRemove()
    return inline


def _seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def translate_error(exc: TelegramError, token: str | None = None) -> SendError:
    """The dispatcher's error for a Bot API error (see the module docstring).

    The text is stored on the outbox row, so the bot token is blanked out should the error
    quote a URL.
    """
    text = str(exc)
    if token:
        text = text.replace(token, "<token>")
    if isinstance(exc, RetryAfter):
        # The stored timedelta: the public attribute warns that its type will change.
        delay = getattr(exc, "_retry_after", None) or exc.retry_after
        return TransientSendError(text, code=429, retry_after=_seconds(delay))
    if isinstance(exc, Forbidden):
        return PermanentSendError(text, code=403, opt_out=True)
    if isinstance(exc, ChatMigrated):
        return PermanentSendError(text, code="chat_migrated")
    if isinstance(exc, BadRequest):
        return PermanentSendError(text, code=400)
    if isinstance(exc, InvalidToken):
        log.error("Telegram refused the bot token: check TELEGRAM_BOT_TOKEN")
        return TransientSendError("Telegram refused the bot token", code=401)
    if isinstance(exc, NetworkError):  # TimedOut is a NetworkError
        return TransientSendError(text, code=type(exc).__name__)
    return TransientSendError(text, code=type(exc).__name__)


class TelegramClient:
    """A ``Bot`` and the one event loop its calls run on (see the module docstring)."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self._loop = asyncio.new_event_loop()
        self._lock = threading.Lock()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one Bot API call to completion on this client's loop.

        The bot is initialised on first use (one getMe, which also checks the token), so that
        :meth:`close` can release its connections.
        """
        with self._lock:
            if self._loop.is_closed():
                coro.close()
                raise RuntimeError("this Telegram client is closed")
            return self._loop.run_until_complete(self._call(coro))

    async def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            await self.bot.initialize()
        except BaseException:
            coro.close()
            raise
        return await coro

    def close(self) -> None:
        """Close the bot's HTTP connections and the loop."""
        with self._lock:
            if self._loop.is_closed():
                return
            try:
                self._loop.run_until_complete(self.bot.shutdown())
            finally:
                self._loop.close()


class TelegramSender(TelegramClient):
    """The outbox sender for channel ``telegram``: sendMessage with inline buttons (or the
    keyboard button that shares the citizen's phone number)."""

    channel = CHANNEL

    def send(self, message: OutboundMessage) -> SendResult:
        chat_id = chat_id_of(message.address)
        text = (message.body or "").strip()
        if not text:
            raise PermanentSendError("empty message", code="empty")
        markup = payload_markup(message.payload)
        try:
            sent = self.run(self.bot.send_message(chat_id=chat_id, text=text, reply_markup=markup))
        except TelegramError as exc:
            raise translate_error(exc, self.bot.token) from exc
        # The message id alone: with the chat id it would store the user's Telegram id in clear.
        return SendResult(provider_id=str(sent.message_id))


class TelegramFileFetcher(TelegramClient):
    """Fetches voice notes and photos for the media service (getFile + download).

    ``Attachment.provider_ref`` is the ``file_id`` the update carried. Telegram keeps files for
    bots only for a while (a download link lasts at least an hour; a ``file_id`` longer), which is
    why the worker copies them into our storage soon after they arrive.
    """

    def fetch(self, attachment: Any, dest: BinaryIO) -> str | None:
        file_id = attachment.provider_ref
        if not file_id:
            raise PermanentFetchError("no Telegram file_id")

        async def download() -> None:
            file = await self.bot.get_file(file_id)
            if file.file_size is not None and file.file_size > MAX_DOWNLOAD_BYTES:
                raise PermanentFetchError("file larger than the Bot API lets bots download")
            if not file.file_path:
                raise PermanentFetchError("Telegram gave no download path for this file")
            await file.download_to_memory(dest)

        try:
            self.run(download())
        except TelegramError as exc:
            error = translate_error(exc, self.bot.token)
            if isinstance(error, PermanentSendError):
                raise PermanentFetchError(str(error)) from None
            raise TransientFetchError(str(error)) from None
        return attachment.content_type


def make_sender(runtime: Any) -> PerThreadSender | None:
    """The dispatcher's factory when ``TELEGRAM_BOT_TOKEN`` is set, else None: a
    :class:`TelegramSender` per sending thread, so that the sends the outbox keeps in flight
    do not queue on one event loop."""
    token = runtime.settings.telegram_bot_token
    if not token:
        return None
    settings = runtime.settings
    return PerThreadSender(CHANNEL, lambda: TelegramSender(settings_bot(settings)))


def make_fetcher(runtime: Any) -> TelegramFileFetcher | None:
    """The media fetcher for channel ``telegram`` when ``TELEGRAM_BOT_TOKEN`` is set, else None.

    The runtime lists it in its ``media_fetchers``, which the worker's media job uses.
    """
    token = runtime.settings.telegram_bot_token
    if not token:
        return None
    return TelegramFileFetcher(settings_bot(runtime.settings))
