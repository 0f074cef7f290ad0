"""``POST /telegram/webhook``: Telegram updates in webhook mode (``citoyen telegram set-webhook``).

Telegram proves a request is its own with the secret given to setWebhook, sent back in
``X-Telegram-Bot-Api-Secret-Token``; it is compared in constant time. A missing or wrong secret
gets 403 with nothing stored and a log line that names no user; so does every request while
``TELEGRAM_WEBHOOK_SECRET`` (or the bot token) is not configured, because then no request can be
told apart from a forgery. A body that is not an update gets 400, never 500: that includes JSON
nested deeper than any update (:data:`MAX_DEPTH`; Python's parser fails with ``RecursionError``
around 1,000 levels, which Flask's ``get_json(silent=True)`` does not catch) and text holding a
lone UTF-16 surrogate (``"\ud800"`` is valid JSON but no UTF-8 text, so no database stores it).

The answer is quick: the update goes through the conversation service (one short transaction)
and the replies are queued in the outbox for the worker to send. A button press is answered in
the webhook response itself (Telegram's "reply to the webhook with a method call"), which stops
the button's loading indicator at once without any outgoing request.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from telegram import Bot, Update

from citoyen.channels.telegram_sender import make_bot
from citoyen.channels.telegram_updates import parse_update
from citoyen.messages.addresses import normalise_address
from citoyen.services.telegram_inbound import process_parsed

log = logging.getLogger(__name__)

bp = Blueprint("telegram_webhook", __name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_BOT_KEY = "citoyen.telegram_bot"
# Telegram's updates nest a few levels (update > message > reply_to_message > chat...); 32 leaves
# room for any of them and refuses bodies made to exhaust the parser or the stack.
MAX_DEPTH = 32


class NotAnUpdate(ValueError):
    """A body that cannot be a Telegram update; the text is the reason (never a value)."""


def _check_values(data: Any) -> None:
    """Walk the decoded JSON without recursion: too deep, or a string that is no UTF-8 text
    (a lone surrogate, in keys too), is :class:`NotAnUpdate`."""
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise NotAnUpdate(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            pending.extend((key, depth) for key in value)
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise NotAnUpdate("a string holds a lone UTF-16 surrogate") from None


def read_update_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object fit to be an update, or :class:`NotAnUpdate`."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise NotAnUpdate(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # also UnicodeDecodeError: bytes that are not UTF-8
        raise NotAnUpdate("body is not JSON") from None
    if not isinstance(data, dict):
        raise NotAnUpdate("body is not a JSON object")
    _check_values(data)
    return data


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

    try:
        data = read_update_json(request.get_data(cache=False))
    except NotAnUpdate as exc:
        return _bad(str(exc))
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
