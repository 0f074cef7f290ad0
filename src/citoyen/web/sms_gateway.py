"""``POST /sms-gateway/webhook``: the webhooks of SMS Gateway for Android phones.

Verified and read by :mod:`citoyen.channels.gateway_webhook` (signature and timestamp, the
dedupe key), handled by :mod:`citoyen.services.gateway_inbound` (the conversation, the reply
queued in the outbox, delivery reports). A request that fails verification gets **403** and
nothing is stored; a malformed body gets 400 with a short reason, never a 500; the sender's
number is never logged. An SMS whose sender is no phone number (an operator's notice, a short
code) is answered 200 and ignored: the phone would otherwise retry it for two days.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Flask, Response, current_app, request

from citoyen.channels.gateway_webhook import (
    RECEIVED,
    STATUS_EVENTS,
    BadRequest,
    NotACitizen,
    parse_event,
    received_inbound,
    refusal,
)
from citoyen.messages.addresses import AddressError
from citoyen.services.gateway_inbound import handle_received, handle_status

log = logging.getLogger(__name__)

bp = Blueprint("sms_gateway", __name__)


def _text(status: int, body: str = "") -> Response:
    return Response(body, status=status, mimetype="text/plain")


@bp.post("/sms-gateway/webhook")
def webhook() -> Response:
    from citoyen.web import runtime_of

    runtime = runtime_of(current_app)
    body = request.get_data(cache=False)
    reason = refusal(runtime.settings, request.headers, body, time.time())
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
