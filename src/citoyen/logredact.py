"""Redaction of phone numbers and Telegram ids from every log record.

Code names citizens by alias (``Citoyen 4821``) and never passes an address to a logger; this
module is the safety net for what slips through anyway: a library logging a request URL, an
exception whose message quotes a form field, a future log call written in a hurry. It replaces
the record factory, so every record of every logger is redacted once, when it is created, before
any handler (file, journal, pytest's capture, gunicorn's error log) formats it. The traceback of a
logged exception is formatted then too and redacted, because formatters print ``exc_text`` as is.

What counts as an identifier (deliberately broad: a masked timestamp costs nothing, a leaked
number can cost a life):

- channel addresses ``tel:…``, ``telegram:…``, ``whatsapp:…`` (the project's canonical form);
- international numbers ``+223 76 00 00 00`` (with spaces, dots or dashes between digits) and
  ``00223…``;
- any other run of 8 to 15 digits standing alone: Malian numbers written locally (8 digits) and
  Telegram ids (9 to 10 digits today); shorter ids when a key names them (``'chat_id': 1234567``,
  ``"id": 1234567``), as python-telegram-bot's debug lines show them.

Telegram bot tokens (``123456:AA…``, in the Bot API URLs that httpx logs) become ``<bot-token>``:
they are credentials.

Each becomes the :func:`citoyen.services.privacy.mask`-style hint (``tel:…00``), so two lines
about the same number can still be told apart by an operator, but the number cannot be read back.
Reference codes (``482-1937``), aliases, ids and Twilio SIDs (letters then hex) are left alone.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable
from typing import Any

# Order matters: secrets and explicit address forms first, then bare numbers.
_PATTERNS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    # A Telegram bot token (in the Bot API URLs httpx and the library log): a credential.
    (re.compile(r"(?<!\d)\d{5,}:[A-Za-z0-9_\-]{30,}"), lambda m: "<bot-token>"),
    # Ids after a key naming them, however short: python-telegram-bot logs its requests as
    # ``{'chat_id': 1234567, ...}`` and answers as ``'from': {'id': ...}``.
    (
        re.compile(r"""((?<![\w])['"]?(?:chat_id|user_id|from_id|id)['"]?\s*[:=]\s*)-?\d{5,}"""),
        lambda m: f"{m.group(1)}…{_last2(m.group(0))}",
    ),
    (
        re.compile(r"\b(tel|telegram|whatsapp|sms):[+\-]?\d(?:[ .\-]?\d)*"),
        lambda m: f"{m.group(1)}:…{_last2(m.group(0))}",
    ),
    (
        re.compile(r"(?<![\w+])(?:\+|00)\d(?:[ .\-]?\d){6,16}(?!\d)"),
        lambda m: f"+…{_last2(m.group(0))}",
    ),
    (
        re.compile(r"(?<![\w\-])-?\d{8,15}(?![\w])"),
        lambda m: f"…{_last2(m.group(0))}",
    ),
)
# A URL-encoded "+" (From=%2B22376...) as Werkzeug and libraries log raw query strings.
_PERCENT_PLUS = re.compile(r"%2B(?=\d)", re.IGNORECASE)


def _last2(text: str) -> str:
    digits = re.sub(r"\D", "", text)
    return digits[-2:]


def redact(text: str) -> str:
    """``text`` with every phone number and Telegram id replaced by a masked hint."""
    if not any(ch.isdigit() for ch in text):
        return text
    text = _PERCENT_PLUS.sub("+", text)
    for pattern, replace in _PATTERNS:
        text = pattern.sub(replace, text)
    return text


class RedactingFilter(logging.Filter):
    """A filter for handlers that receive records built elsewhere (another record factory)."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Redact ``record`` in place: message with its arguments merged, traceback, stack."""
    if getattr(record, "_citoyen_redacted", False):
        return record
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: keep what logging would show, redacted
        message = f"{record.msg!r} % {record.args!r}"
    redacted = redact(message)
    if redacted != message or record.args:
        record.msg = redacted
        record.args = None
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record._citoyen_redacted = True  # type: ignore[attr-defined]
    return record


_installed: dict[str, Any] = {}


def install() -> None:
    """Redact every log record of this process from now on (idempotent).

    Called by each entry point: the CLI (``citoyen …``, hence worker and bot), ``create_app``
    (gunicorn's web workers) and the test suite's conftest.
    """
    if "factory" in _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(previous(*args, **kwargs))

    _installed["factory"] = factory
    _installed["previous"] = previous
    logging.setLogRecordFactory(factory)
    # Handlers of records made by a foreign factory (a library replacing it after us) still
    # get the filter.
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def installed() -> bool:
    return logging.getLogRecordFactory() is _installed.get("factory")
