"""``POST /telegram/webhook``: Telegram updates in webhook mode (``citoyen telegram set-webhook``).

Telegram proves a request is its own with the secret given to setWebhook, sent back in
``X-Telegram-Bot-Api-Secret-Token``; it is compared in constant time. A missing or wrong secret
gets 403 with nothing stored and a log line that names no user; so does every request while
``TELEGRAM_WEBHOOK_SECRET`` (or the bot token) is not configured, because then no request can be
told apart from a forgery. A body that is not an update gets 400, never 500.

The answer is quick: the update goes through the conversation service (one short transaction)
and the replies are queued in the outbox for the worker to send. A button press is answered in
the webhook response itself (Telegram's "reply to the webhook with a method call"), which stops
the button's loading indicator at once without any outgoing request.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from telegram import Bot, Update

from citoyen.channels.telegram_sender import make_bot
from citoyen.channels.telegram_updates import parse_update, process_parsed
from citoyen.services.privacy import normalise_address

log = logging.getLogger(__name__)

bp = Blueprint("telegram_webhook", __name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_BOT_KEY = "citoyen.telegram_bot"


def _bot(app: Flask, token: str) -> Bot:
    """One ``Bot`` per app, only to give parsed objects their bot (it makes no request here)."""
    bot = app.extensions.get(_BOT_KEY)
    if bot is None or bot.token != token:
        bot = app.extensions[_BOT_KEY] = make_bot(token)
    return bot


def _refuse(reason: str) -> tuple[str, int]:
    log.warning("telegram webhook: request refused (%s)", reason)
    return "", 403


def _bad(reason: str) -> tuple[str, int]:
    log.info("telegram webhook: bad request (%s)", reason)
    return "", 400


@bp.post("/telegram/webhook")
def webhook() -> Any:
    from citoyen.web import runtime_of

    runtime = runtime_of(current_app)
    settings = runtime.settings
    secret = settings.telegram_webhook_secret
    if not secret:
        return _refuse("TELEGRAM_WEBHOOK_SECRET is not set: no request can be verified")
    if not settings.telegram_bot_token:
        return _refuse("TELEGRAM_BOT_TOKEN is not set: Telegram is off")
    given = request.headers.get(SECRET_HEADER)
    if given is None:
        return _refuse("no secret token header")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        return _refuse("wrong secret token")

    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        return _bad("body is not a JSON object")
    update_id = data.get("update_id")
    if type(update_id) is not int or update_id < 0:
        return _bad("update_id missing or not a non-negative integer")
    try:
        update = Update.de_json(data, _bot(current_app, settings.telegram_bot_token))
        parsed = parse_update(update)
        if parsed.address:
            # A user id that is no Telegram id (too long, found by fuzzing) is the sender's fault.
            normalise_address(parsed.address)
        value = parsed.input.value if parsed.input is not None else None
        if value is not None and not isinstance(value, str):
            # python-telegram-bot keeps JSON types as given: a button's data or a text that is
            # a number or a boolean (found by fuzzing) is not an update Telegram sends.
            raise TypeError("input value is not text")
    except Exception as exc:  # any shape python-telegram-bot cannot read is the sender's fault
        return _bad(f"not a Telegram update: {type(exc).__name__}")

    outcome = process_parsed(runtime, parsed, now=None)
    if outcome.callback_query_id:
        return jsonify(method="answerCallbackQuery", callback_query_id=outcome.callback_query_id)
    return Response(status=200)


def init_app(app: Flask) -> None:
    """Register the webhook; it is exempt from CSRF (Telegram proves itself with the secret)."""
    from citoyen.web.admin import csrf

    csrf.exempt(bp)
    app.register_blueprint(bp)
