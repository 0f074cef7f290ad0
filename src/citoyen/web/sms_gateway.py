"""``POST /sms-gateway/webhook``: the webhooks of SMS Gateway for Android phones.

Every gateway phone posts its events here (register one webhook per event on each phone; see
docs/sms.md): ``sms:received`` is a citizen's SMS, ``sms:sent`` / ``sms:delivered`` /
``sms:failed`` / ``sms:cancelled`` report on a message the outbox sent. Other events
(``system:ping``, ``app:started``, data SMS, MMS) are acknowledged and ignored.

**Verification**, as the app documents it: ``X-Signature`` is the hex HMAC-SHA256, keyed with
the phone's signing key, of the raw body followed by the ``X-Timestamp`` header (Unix seconds).
A request without both headers, with a signature made with no configured key, or with a
timestamp further than ``CITOYEN_SMS_GATEWAY_TOLERANCE_SECONDS`` (5 minutes) from now — a
replayed request — gets **403** and nothing is stored. The app signs each delivery attempt
afresh, so its own retries always carry a fresh timestamp.

**Exactly once.** The ``messageId`` of a received SMS is derived from its content and is not
unique (two "1"s from one citizen may share it), so it is not the dedupe key. The envelope's
``id`` is: the app gives each event its own id and keeps it across its retries (its docs say to
deduplicate on it). The key is ``agw:<deviceId>:<id>`` (the device makes it unique across
phones), given to the conversation service as the provider id: a redelivered event, also one
arriving twice at once, gets the stored reply and stores nothing. The reply cannot travel in the
webhook's answer, so it is queued in the outbox in the same transaction (``on_reply``), one row
per SMS part, keyed by the event.

Malformed bodies get 400 with a short reason, never a 500; the sender's number is never logged.
An SMS whose sender is no phone number (an operator's notice, a short code) is answered 200 and
ignored: the phone would otherwise retry it for two days.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from sqlmodel import Session

from citoyen.channels.sms import split_sms
from citoyen.engine.types import Input
from citoyen.messages.addresses import AddressError, normalise_address
from citoyen.messages.render import render_sms_parts
from citoyen.messages.types import Inbound, Reply
from citoyen.services.delivery import record_delivery
from citoyen.services.outbox import enqueue

log = logging.getLogger(__name__)

bp = Blueprint("sms_gateway", __name__)

SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Timestamp"
# The app's ids (event ids, device ids, message ids) are short tokens; bound them to the columns.
ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,48}")
MAX_BODY_CHARS = 1600
# What each delivery event means for the outbox row (the words of /twilio/status).
STATUS_EVENTS = {
    "sms:sent": "sent",
    "sms:delivered": "delivered",
    "sms:failed": "failed",
    "sms:cancelled": "canceled",
}
RECEIVED = "sms:received"


class BadRequest(ValueError):
    """A body that is not a usable gateway event; the text is the short reason sent back."""


class NotACitizen(ValueError):
    """An SMS from a sender that is no phone number (the operator's "OrangeMali" notices, a
    short code): a real event, acknowledged and ignored, so the phone does not retry it."""


def _text(status: int, body: str = "") -> Response:
    return Response(body, status=status, mimetype="text/plain")


def signing_keys(settings: Any) -> list[str]:
    """Every key a gateway webhook may be signed with: the shared one and each phone's own."""
    keys = [settings.sms_gateway_signing_key or ""]
    keys += [phone.signing_key or "" for phone in settings.sms_gateway_phones]
    return [key for key in dict.fromkeys(keys) if key]


def signature(key: str, body: bytes, timestamp: str) -> str:
    """The app's signature: hex HMAC-SHA256 of the raw body followed by the timestamp."""
    return hmac.new(key.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()


def refusal(settings: Any, body: bytes, now: float) -> str | None:
    """Why this request is not from a gateway phone, or None when it is."""
    keys = signing_keys(settings)
    if not keys:
        return "no signing key configured: no request can be verified"
    given = request.headers.get(SIGNATURE_HEADER, "").strip().lower()
    stamp = request.headers.get(TIMESTAMP_HEADER, "").strip()
    if not given or not stamp:
        return "unsigned"
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        return "malformed timestamp"
    if abs(now - int(stamp)) > settings.sms_gateway_tolerance_seconds:
        return "timestamp outside the tolerance window (a replay, or the phone's clock is off)"
    if not any(hmac.compare_digest(signature(key, body, stamp), given) for key in keys):
        return "wrong signature"
    return None


def _field(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise BadRequest(f"missing or malformed {name}")
    return value


def parse_event(body: bytes) -> tuple[str, str, str, dict[str, Any]]:
    """(event, event id, device id, payload) of a webhook body, or :class:`BadRequest`."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest("body is not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("body is not a JSON object")
    event = data.get("event")
    if not isinstance(event, str) or not event or len(event) > 40:
        raise BadRequest("missing or malformed event")
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise BadRequest("missing or malformed payload")
    return event, _field(data, "id"), _field(data, "deviceId"), payload


def received_inbound(event_id: str, device_id: str, payload: dict[str, Any]) -> Inbound:
    """The neutral inbound event of an ``sms:received`` payload, or :class:`BadRequest`."""
    # "sender" since the app's 2026 payloads; "phoneNumber" before, and still sent beside it.
    sender = payload.get("sender") or payload.get("phoneNumber")
    text = payload.get("message")
    if not isinstance(sender, str) or not sender.strip():
        raise BadRequest("missing sender")
    if not isinstance(text, str):
        raise BadRequest("missing message")
    if len(text) > MAX_BODY_CHARS:
        raise BadRequest("message too long")
    try:
        address = normalise_address(sender.strip())
    except AddressError:
        raise NotACitizen from None
    if not address.startswith("tel:"):
        raise NotACitizen
    key = f"agw:{device_id}:{event_id}"
    return Inbound("sms", address, Input("text", text.strip()), provider_id=key)


@dataclass
class QueueReply:
    """The ``on_reply`` hook: the reply as SMS parts in the outbox, in the input's transaction."""

    catalog: Any
    key: str
    now: datetime
    queued: list[int] = field(default_factory=list)

    def __call__(self, session: Session, reply: Reply, contact_id: int) -> None:
        parts = render_sms_parts(self.catalog, reply.prompts, reply.language, reply.params)
        texts = [text for part in parts for text in split_sms(part)]
        for i, text in enumerate(texts):
            row = enqueue(
                session,
                channel="sms",
                idempotency_key=f"{self.key}:{i}",
                body=text,
                contact_id=contact_id,
                kind="reply",
                now=self.now,
            )
            self.queued.append(row.id or 0)


def handle_received(runtime: Any, inbound: Inbound) -> Reply:
    hook = QueueReply(runtime.bundle.catalog, inbound.provider_id or "", datetime.now(UTC))
    return runtime.conversations.handle(inbound, on_reply=hook)


def handle_status(runtime: Any, event: str, payload: dict[str, Any]) -> None:
    message_id = payload.get("messageId")
    if not isinstance(message_id, str) or not ID_PATTERN.fullmatch(message_id):
        raise BadRequest("missing or malformed messageId")
    status = STATUS_EVENTS[event]
    row = record_delivery(runtime, message_id, status, None)
    if row is None:
        log.info("sms gateway %s for a message not in the outbox: ignored", event)
    else:
        log.info("outbox %s: delivery %s (sms gateway)", row.id, status)


@bp.post("/sms-gateway/webhook")
def webhook() -> Response:
    from citoyen.web import runtime_of

    runtime = runtime_of(current_app)
    body = request.get_data(cache=False)
    reason = refusal(runtime.settings, body, time.time())
    if reason is not None:
        log.warning("sms gateway webhook refused (403): %s", reason)
        return _text(403)
    try:
        event, event_id, device_id, payload = parse_event(body)
        if event == RECEIVED:
            inbound = received_inbound(event_id, device_id, payload)
            try:
                reply = handle_received(runtime, inbound)
            except AddressError:
                raise BadRequest("sender is not a phone number") from None
            log.info(
                "sms gateway: message from %s %s",
                reply.contact_alias or "a citizen",
                "(a redelivery: nothing stored)" if reply.duplicate else "handled",
            )
        elif event in STATUS_EVENTS:
            handle_status(runtime, event, payload)
        else:
            log.info("sms gateway event %s ignored", event)
    except NotACitizen:
        log.info("sms gateway: an SMS from a sender that is no phone number, ignored")
    except BadRequest as exc:
        log.warning("sms gateway webhook refused (400): %s", exc)
        return _text(400, str(exc))
    return _text(200)


def init_app(app: Flask) -> None:
    """Register the webhook, exempt from CSRF (the phones prove themselves by signature)."""
    from citoyen.web.admin import csrf

    csrf.exempt(bp)
    app.register_blueprint(bp)
