"""The webhooks of SMS Gateway for Android phones, read: verified, parsed, made neutral.

Every gateway phone posts its events to ``POST /sms-gateway/webhook`` (:mod:`citoyen.web.sms_gateway`;
register one webhook per event on each phone, docs/sms.md): ``sms:received`` is a citizen's SMS,
``sms:sent`` / ``sms:delivered`` / ``sms:failed`` / ``sms:cancelled`` report on a message the
outbox sent. Other events (``system:ping``, ``app:started``, data SMS, MMS) are acknowledged and
ignored. Nothing here touches the database: :mod:`citoyen.services.gateway_inbound` takes it from
there.

**Verification**, as the app documents it: ``X-Signature`` is the hex HMAC-SHA256, keyed with
the phone's signing key, of the raw body followed by the ``X-Timestamp`` header (Unix seconds).
A request without both headers, with a signature made with no configured key, or with a
timestamp further than ``CITOYEN_SMS_GATEWAY_TOLERANCE_SECONDS`` (5 minutes) from now — a
replayed request — is refused. The app signs each delivery attempt afresh, so its own retries
always carry a fresh timestamp.

**The dedupe key.** The ``messageId`` of a received SMS is derived from its content and is not
unique (two "1"s from one citizen may share it), so it is not the dedupe key. The envelope's
``id`` is: the app gives each event its own id and keeps it across its retries (its docs say to
deduplicate on it). The key is ``agw:<deviceId>:<id>`` (the device makes it unique across
phones), the inbound message's provider id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

from citoyen.engine.types import Input
from citoyen.messages.addresses import AddressError, normalise_address
from citoyen.messages.types import Inbound

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


def signing_keys(settings: Any) -> list[str]:
    """Every key a gateway webhook may be signed with: the shared one and each phone's own."""
    keys = [settings.sms_gateway_signing_key or ""]
    keys += [phone.signing_key or "" for phone in settings.sms_gateway_phones]
    return [key for key in dict.fromkeys(keys) if key]


def signature(key: str, body: bytes, timestamp: str) -> str:
    """The app's signature: hex HMAC-SHA256 of the raw body followed by the timestamp."""
    return hmac.new(key.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()


def refusal(settings: Any, headers: Mapping[str, str], body: bytes, now: float) -> str | None:
    """Why this request is not from a gateway phone, or None when it is."""
    keys = signing_keys(settings)
    if not keys:
        return "no signing key configured: no request can be verified"
    given = headers.get(SIGNATURE_HEADER, "").strip().lower()
    stamp = headers.get(TIMESTAMP_HEADER, "").strip()
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
