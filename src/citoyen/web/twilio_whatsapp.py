"""WhatsApp through Twilio: the messaging webhook's requests whose ``From`` is ``whatsapp:+…``.

:mod:`citoyen.web.twilio_sms` hands them here after the signature check. The channel reads the
form (:mod:`citoyen.channels.whatsapp_inbound`, 400 for what is not a usable message), the service
steps the conversation (:mod:`citoyen.services.whatsapp_inbound`), and the reply is TwiML as for
SMS.
"""

from __future__ import annotations

import logging

from flask import Response, current_app, request

from citoyen.channels.whatsapp_inbound import BadRequest, is_whatsapp, read_message
from citoyen.services import whatsapp_inbound
from citoyen.web.twiml import render_twiml, twiml

log = logging.getLogger(__name__)

__all__ = ["handle", "is_whatsapp"]


def handle(sid: str, body: str) -> Response:
    """Answer one signed WhatsApp message (``sid`` and ``body`` already checked) with TwiML."""
    runtime = current_app.extensions["citoyen"]
    try:
        message = read_message(request.form, body)
    except BadRequest as exc:
        log.warning("twilio whatsapp refused (400): %s", exc)
        return Response(str(exc), status=400, mimetype="text/plain")
    return twiml(render_twiml(whatsapp_inbound.process(runtime, message, sid)))
