"""Telegram by long polling: updates become neutral inputs, replies become messages with buttons.

Long polling works behind NAT with no public URL, which suits a first deployment. The handlers
only translate: the conversation service does the work, in a worker thread because it talks to
the database synchronously.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from citoyen.channels.render import render_telegram
from citoyen.engine.types import Input
from citoyen.services.conversations import Inbound

log = logging.getLogger(__name__)


def update_to_inbound(update: Update) -> Inbound | None:
    """The neutral input an update carries, or None for updates citizens did not send."""
    user = update.effective_user
    if user is None or user.is_bot:
        return None
    address = f"telegram:{user.id}"
    pid = str(update.update_id)
    if update.callback_query is not None:
        return Inbound("telegram", address, Input("choice", update.callback_query.data), pid)
    message = update.message
    if message is None:
        return None
    if message.text is not None:
        return Inbound("telegram", address, Input("text", message.text), pid)
    return None


def reply_markup(buttons: list[tuple[str, str]]) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=key)] for label, key in buttons]
    )


def build_application(runtime: Any) -> Application:
    app = Application.builder().token(runtime.settings.telegram_bot_token).build()
    catalog = runtime.bundle.catalog

    async def on_update(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        inbound = update_to_inbound(update)
        if inbound is None:
            return
        if update.callback_query is not None:
            await update.callback_query.answer()
        reply = await asyncio.to_thread(runtime.conversations.handle, inbound)
        chat = update.effective_chat
        if chat is None:
            return
        for message in render_telegram(catalog, reply.prompts, reply.language, reply.params):
            await chat.send_message(message.text, reply_markup=reply_markup(message.buttons))

    app.add_handler(CallbackQueryHandler(on_update))
    app.add_handler(MessageHandler(filters.TEXT, on_update))
    return app


def run_polling(runtime: Any) -> None:
    log.info("Telegram bot: long polling; each update goes through the conversation service")
    build_application(runtime).run_polling(allowed_updates=["message", "callback_query"])
