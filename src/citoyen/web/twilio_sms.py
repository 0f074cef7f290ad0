"""``POST /twilio/sms``: inbound SMS from Twilio, answered with TwiML.

The adapter is thin: check the signature, turn the form into a neutral :class:`Inbound`, let the
conversation service do the work (dedupe by MessageSid, contact, flow step, effects) and render
the reply as one ``<Message>`` per prompt, long ones split on word boundaries (see
:func:`citoyen.channels.sms.split_sms` for the size chosen and why). A repeated MessageSid gets
the stored reply, so the same TwiML, and stores nothing.

Malformed requests get a 4xx with a short reason, never a 500, and no log line ever carries the
sender's number (the conversation service logs the contact's alias).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from flask import Blueprint, Flask, Response, current_app, request
from twilio.twiml.messaging_response import MessagingResponse

from citoyen.channels.sms import reply_texts
from citoyen.engine.types import Input
from citoyen.messages.addresses import AddressError, normalise_address
from citoyen.messages.types import Inbound, Reply
from citoyen.services import spool
from citoyen.web.twilio_auth import require_twilio_signature

log = logging.getLogger(__name__)

bp = Blueprint("twilio_sms", __name__)

# Twilio SIDs are two letters and 32 hex digits; accept any short token so a provider change of
# format does not turn into refused messages, but keep it within the column (120).
SID_PATTERN = re.compile(r"[A-Za-z0-9_-]{2,64}")
MAX_BODY_CHARS = 1600  # Twilio's own limit for one (concatenated) inbound message


class BadRequest(ValueError):
    """A form that is not a usable inbound SMS; the text is the short reason sent back."""


def _single(name: str, *, required: bool) -> str:
    values = request.form.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"{name} given more than once")
    value = values[0] if values else ""
    if required and not value.strip():
        raise BadRequest(f"missing {name}")
    return value


def parse_inbound() -> Inbound:
    """The neutral inbound event of this request, or :class:`BadRequest`."""
    sender = _single("From", required=True).strip()
    sid = _single("MessageSid", required=True).strip()
    body = _single("Body", required=False)
    if not SID_PATTERN.fullmatch(sid):
        raise BadRequest("MessageSid is not a Twilio id")
    if len(body) > MAX_BODY_CHARS:
        raise BadRequest("Body too long")
    try:
        address = normalise_address(sender)
    except AddressError:
        raise BadRequest("From is not a phone number") from None
    if not address.startswith("tel:"):
        raise BadRequest("From is not a phone number")
    return Inbound("sms", address, Input("text", body.strip()), provider_id=sid)


def render_twiml(reply: Reply) -> str:
    """The reply as TwiML: its SMS messages (channels.sms.reply_texts), none when empty."""
    return messages_twiml(reply_texts(current_app.extensions["citoyen"].bundle.catalog, reply))


def messages_twiml(texts: Iterable[str]) -> str:
    """``<Response>`` with one ``<Message>`` per text, built by the twilio library's
    ``MessagingResponse`` (as voice uses ``VoiceResponse``)."""
    response = MessagingResponse()
    for text in texts:
        response.message(text)
    return str(response)


def twiml(xml: str, status: int = 200) -> Response:
    return Response(xml, status=status, mimetype="text/xml")


@bp.post("/twilio/sms")
@require_twilio_signature
def inbound_sms() -> Response:
    try:
        inbound = parse_inbound()
    except BadRequest as exc:
        log.warning("twilio sms refused (400): %s", exc)
        return Response(str(exc), status=400, mimetype="text/plain")
    runtime = current_app.extensions["citoyen"]
    try:
        # Kept on disk and answered when the database cannot take it (services/spool.py).
        reply = spool.handle(runtime, inbound)
    except spool.SpoolFull as exc:
        log.error("twilio sms refused (503): the database and the spool are unavailable: %s", exc)
        return Response("temporarily unavailable", status=503, mimetype="text/plain")
    except AddressError:
        log.warning("twilio sms refused (400): unusable sender address")
        return Response("From is not a phone number", status=400, mimetype="text/plain")
    return twiml(render_twiml(reply))


def init_app(app: Flask) -> None:
    """Register ``/twilio/sms`` and ``/twilio/status``, exempt from the admin's CSRF check
    (Twilio cannot send a CSRF token; the signature is the check)."""
    from citoyen.web import twilio_status
    from citoyen.web.admin import csrf

    csrf.exempt(bp)
    app.register_blueprint(bp)
    twilio_status.init_app(app)
