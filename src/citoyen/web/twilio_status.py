"""``POST /twilio/status``: Twilio's status callbacks, for messages and (via the voice code) calls.

Message callbacks (``MessageSid``, ``MessageStatus``, ``ErrorCode``) are checked here and recorded
on the outbox row that sent the message by :func:`citoyen.services.delivery.record_delivery`
(which keeps the rules: callbacks out of order, error 21610 opting the contact out).

An unknown MessageSid is answered 200 with nothing changed (Twilio would otherwise retry a
callback we can do nothing with) and logged. Call callbacks (``CallSid``/``CallStatus``) belong
to the voice channel: they are handed to ``citoyen.services.calls.handle_call_status`` when
that module exists, so this file does not depend on the voice work being present.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

from citoyen.engine.textnorm import whole_number
from citoyen.services.delivery import record_delivery
from citoyen.web.twilio_auth import require_twilio_signature

log = logging.getLogger(__name__)

bp = Blueprint("twilio_status", __name__)

SID_PATTERN = re.compile(r"[A-Za-z0-9_-]{2,64}")
STATUS_PATTERN = re.compile(r"[a-z_-]{1,20}")


def _text(status: int, body: str = "") -> Response:
    return Response(body, status=status, mimetype="text/plain")


@bp.post("/twilio/status")
@require_twilio_signature
def status_callback() -> Response:
    form = request.form
    runtime = current_app.extensions["citoyen"]
    sid = form.get("MessageSid", "").strip()
    if not sid:
        if form.get("CallSid"):
            return _call_status(runtime, form)
        return _text(400, "missing MessageSid or CallSid")
    status = form.get("MessageStatus", "").strip().lower()
    error_code = form.get("ErrorCode", "").strip() or None
    if not SID_PATTERN.fullmatch(sid):
        return _text(400, "MessageSid is not a Twilio id")
    if not STATUS_PATTERN.fullmatch(status):
        return _text(400, "missing or malformed MessageStatus")
    if error_code is not None and whole_number(error_code) is None:
        return _text(400, "malformed ErrorCode")
    row = record_delivery(runtime, sid, status, error_code)
    if row is None:
        log.info("twilio status %s for unknown MessageSid %s: ignored", status, sid)
    else:
        log.info("outbox %s: delivery %s (error code %s)", row.id, status, error_code or "none")
    return _text(200)


def _call_status(runtime: Any, form: Any) -> Response:
    """Hand a call status to the voice channel, when it is installed."""
    try:
        from citoyen.services.calls import handle_call_status
    except ImportError:
        log.info("call status callback ignored: no voice call handling installed")
        return _text(200)
    result = handle_call_status(runtime, form)
    if isinstance(result, Response):
        return result
    return _text(200)


def init_app(app: Flask) -> None:
    """Register ``/twilio/status`` (called by ``twilio_sms.init_app``), exempt from CSRF."""
    from citoyen.web.admin import csrf

    csrf.exempt(bp)
    app.register_blueprint(bp)
