"""TwiML answers of the messaging webhook, shared by SMS and WhatsApp (both arrive on it)."""

from __future__ import annotations

from collections.abc import Iterable

from flask import Response, current_app
from twilio.twiml.messaging_response import MessagingResponse

from citoyen.channels.sms import MAX_SEGMENTS, split_sms
from citoyen.engine.sms import join_messages
from citoyen.messages.render import render_sms_parts
from citoyen.messages.types import Reply


def render_twiml(reply: Reply) -> str:
    """The reply as TwiML: one ``<Message>`` per prompt, prompts joined where that costs no
    more segments (the welcome and the first question), none for an empty reply."""
    catalog = current_app.extensions["citoyen"].bundle.catalog
    parts = render_sms_parts(catalog, reply.prompts, reply.language, reply.params)
    return messages_twiml(
        text for message in join_messages(parts, MAX_SEGMENTS) for text in split_sms(message)
    )


def messages_twiml(texts: Iterable[str]) -> str:
    """``<Response>`` with one ``<Message>`` per text, built by the twilio library's
    ``MessagingResponse`` (as voice uses ``VoiceResponse``)."""
    response = MessagingResponse()
    for text in texts:
        response.message(text)
    return str(response)


def twiml(xml: str, status: int = 200) -> Response:
    return Response(xml, status=status, mimetype="text/xml")
