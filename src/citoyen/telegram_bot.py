"""``citoyen telegram``: the bot by long polling, and ``citoyen telegram set-webhook``.

Long polling works behind NAT with no public URL, which suits a first deployment; webhook mode
(``POST /telegram/webhook``) suits a deployment with an https address. Both hand every update to
:func:`citoyen.services.telegram_inbound.process_update`, so they behave the same: one
transaction per update, deduplicated by ``update_id``, replies queued in the outbox.

The outbox is delivered by the worker (``citoyen run`` / ``citoyen worker``). So that the bot
process alone can also answer (a deployment of just ``citoyen telegram``), it runs a dispatcher
for the ``telegram`` channel in a background thread; dispatchers share the outbox safely (rows
are claimed with leases), see docs/telegram.md.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from typing import Any

from telegram import Bot, Update
from telegram.error import TelegramError
from telegram.ext import Application, ContextTypes, TypeHandler

from citoyen.channels.telegram_sender import (
    CHANNEL,
    api_urls,
    make_bot,
    make_sender,
)
from citoyen.services.telegram_inbound import Outcome, process_update

log = logging.getLogger(__name__)

# The update kinds the bot acts on (others are ignored, so Telegram need not send them).
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
WEBHOOK_PATH = "/telegram/webhook"
# setWebhook's secret_token: 1-256 characters, letters, digits, "_" and "-" only.
SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
DISPATCH_INTERVAL_SECONDS = 1.0


class TelegramSetupError(Exception):
    """A configuration problem the operator must fix; the message says how."""


# --- polling -----------------------------------------------------------------------------------


async def handle_polled_update(runtime: Any, bot: Bot, update: Update) -> Outcome:
    """Process one polled update; answer its button press straight away.

    The conversation service is synchronous (database), so it runs in a thread. The callback
    query is answered after the update is recorded, and a failure to answer only costs the
    citizen a spinner for a few seconds: it is logged, never raised.
    """
    outcome = await asyncio.to_thread(process_update, runtime, update)
    if outcome.callback_query_id:
        try:
            await bot.answer_callback_query(outcome.callback_query_id)
        except TelegramError as exc:
            log.info("telegram: could not answer a button press: %s", exc)
    return outcome


def build_application(runtime: Any, bot: Bot | None = None) -> Application:
    """The python-telegram-bot application: one handler that takes every update."""
    builder = Application.builder()
    if bot is not None:
        builder = builder.bot(bot)
    else:
        make_bot(runtime.settings.telegram_bot_token)  # quiets httpx logs (token in URLs)
        builder = builder.token(runtime.settings.telegram_bot_token)
        urls = api_urls(runtime.settings.telegram_api_url)
        if urls:
            builder = builder.base_url(urls["base_url"]).base_file_url(urls["base_file_url"])
    app = builder.build()

    async def on_update(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        if isinstance(update, Update):
            await handle_polled_update(runtime, context.bot, update)

    app.add_handler(TypeHandler(Update, on_update))
    return app


class TelegramDispatchThread(threading.Thread):
    """Delivers the ``telegram`` outbox rows from the bot process, every second.

    Its dispatcher is limited to the ``telegram`` channel: other channels are the worker's, and
    this process has none of their senders (it would hand them to the log channel). Without a
    token there is nothing to send with, and it does nothing.
    """

    def __init__(
        self,
        runtime: Any,
        sender: Any | None = None,
        interval: float = DISPATCH_INTERVAL_SECONDS,
    ) -> None:
        from citoyen.services.dispatch import Dispatcher

        super().__init__(name="telegram-dispatch", daemon=True)
        self.runtime = runtime
        self.interval = interval
        self.stopping = threading.Event()
        self.sender = sender if sender is not None else make_sender(runtime)
        self.dispatcher = (
            Dispatcher(runtime, {CHANNEL: self.sender}, channels=(CHANNEL,))
            if self.sender is not None
            else None
        )

    def run_cycle(self) -> Any | None:
        """One dispatch pass (None when this process does not dispatch)."""
        if self.dispatcher is None:
            return None
        return self.dispatcher.run_once()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.run_cycle()
            except Exception:  # a database hiccup must not end the bot's replies for good
                log.exception("telegram outbox dispatch failed; trying again")

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout=10)
        if self.sender is not None:
            self.sender.close()


def run_polling(runtime: Any, *, dispatch: bool = True) -> None:
    """Run the bot by long polling until interrupted (this also removes any webhook)."""
    thread = TelegramDispatchThread(runtime) if dispatch else None
    if thread is not None and thread.dispatcher is not None:
        thread.start()
    log.info("Telegram bot: long polling; each update goes through the conversation service")
    try:
        build_application(runtime).run_polling(allowed_updates=ALLOWED_UPDATES)
    finally:
        if thread is not None:
            thread.stop()


# --- webhook registration ----------------------------------------------------------------------


def webhook_url(runtime: Any) -> str:
    """The webhook address, after checking what Telegram requires of it."""
    settings = runtime.settings
    if not settings.telegram_bot_token:
        raise TelegramSetupError("TELEGRAM_BOT_TOKEN is not set: the Telegram bot is off.")
    public = settings.public_url.rstrip("/")
    if not public.startswith("https://"):
        raise TelegramSetupError(
            f"CITOYEN_PUBLIC_URL is {public!r}: Telegram calls webhooks over https only. Set it "
            "to the https address of this service, or use `citoyen telegram` (long polling)."
        )
    secret = settings.telegram_webhook_secret
    if not secret:
        raise TelegramSetupError(
            "TELEGRAM_WEBHOOK_SECRET is not set: without it the webhook refuses every update. "
            "Set it to a random string (letters, digits, _ and -), e.g. "
            '`python -c "import secrets; print(secrets.token_urlsafe(32))"`.'
        )
    if not SECRET_TOKEN.fullmatch(secret):
        raise TelegramSetupError(
            "TELEGRAM_WEBHOOK_SECRET must be 1 to 256 letters, digits, _ or - (Telegram's rule)."
        )
    return public + WEBHOOK_PATH


def set_webhook(runtime: Any, bot: Bot | None = None) -> str:
    """Register ``CITOYEN_PUBLIC_URL/telegram/webhook`` with Telegram; return the URL."""
    url = webhook_url(runtime)
    settings = runtime.settings
    bot = bot or make_bot(settings.telegram_bot_token, **api_urls(settings.telegram_api_url))

    async def call() -> None:
        async with bot:
            await bot.set_webhook(
                url=url,
                secret_token=runtime.settings.telegram_webhook_secret,
                allowed_updates=ALLOWED_UPDATES,
            )

    try:
        asyncio.run(call())
    except TelegramError as exc:
        raise TelegramSetupError(f"Telegram refused the webhook: {exc}") from exc
    return url
