"""``POST /twilio/status``: Twilio's status callbacks, for messages and (via the voice code) calls.

Message callbacks (``MessageSid``, ``MessageStatus``, ``ErrorCode``) update the outbox row that
sent the message: ``delivery_status`` and the error. Callbacks can arrive out of order (``sent``
after ``delivered``), so a status never replaces a later one. Error 21610 means the recipient
unsubscribed at the carrier or at Twilio: the contact is opted out.

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
from sqlmodel import select

from citoyen.db import write_session
from citoyen.models import Contact, Outbox
from citoyen.web.twilio_auth import require_twilio_signature

log = logging.getLogger(__name__)

bp = Blueprint("twilio_status", __name__)

SID_PATTERN = re.compile(r"[A-Za-z0-9_-]{2,64}")
STATUS_PATTERN = re.compile(r"[a-z_-]{1,20}")
OPT_OUT_CODES = frozenset({"21610"})

# How far along a message is. A callback never moves a row back (callbacks race each other).
STATUS_RANK = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 0,
    "sending": 1,
    "sent": 2,
    "delivered": 3,
    "undelivered": 3,
    "failed": 3,
    "read": 4,
    "canceled": 3,
}
FAILED_STATUSES = frozenset({"undelivered", "failed"})


def _text(status: int, body: str = "") -> Response:
    return Response(body, status=status, mimetype="text/plain")


def update_message_status(
    runtime: Any, sid: str, status: str, error_code: str | None
) -> Outbox | None:
    """Record a message callback on its outbox row; None when no row has that provider id."""
    with write_session(runtime.engine) as session:
        row = session.exec(
            select(Outbox).where(Outbox.provider_id == sid).with_for_update()
        ).first()
        if row is None:
            return None
        current_rank = STATUS_RANK.get(row.delivery_status or "", -1)
        if STATUS_RANK.get(status, 0) >= current_rank:
            row.delivery_status = status
        if error_code:
            row.error = f"[{error_code}] delivery {status}"
        elif status in FAILED_STATUSES:
            row.error = f"delivery {status}"
        if error_code in OPT_OUT_CODES and row.contact_id is not None:
            contact = session.get(Contact, row.contact_id)
            if contact is not None:
                contact.opted_out = True
                contact.survey_consent = False
                log.info("outbox %s: Twilio says the recipient unsubscribed; opted out", row.id)
        return row


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
    if error_code is not None and not error_code.isdigit():
        return _text(400, "malformed ErrorCode")
    row = update_message_status(runtime, sid, status, error_code)
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
