"""TwiML answers of the messaging webhook, shared by SMS and WhatsApp (both arrive on it)."""

from __future__ import annotations

from collections.abc import Iterable

from flask import Response, current_app
from twilio.twiml.messaging_response import MessagingResponse

from citoyen.channels.sms import reply_texts
from citoyen.messages.types import Reply


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
