"""WhatsApp messages into conversations, on their own channel ``whatsapp``.

The channel (:mod:`citoyen.channels.whatsapp_inbound`) reads Twilio's form without touching the
database; here the message becomes a conversation input, looking up what needs the database:

- text -> ``Input("text")``;
- a shared location -> ``Input("location", code of the nearest known area)``, or the question
  again when no area is near; coordinates are never stored;
- a voice note -> ``Input("recording", <media ref>)``, the answer to a free-text question;
- a photo -> its caption as text, or ``Input("photo")`` (see :mod:`citoyen.engine.types`);
- voice notes and photos become attachments (:func:`citoyen.services.attachments.keep`) in the
  message's transaction, joined to the conversation's report.

The contact is the phone number's (``tel:+223…``, the same person as on SMS); the conversation,
reports and exports say ``whatsapp``. The reply goes back as TwiML: a reply to a message is inside
WhatsApp's 24-hour customer-service window, so free-form text is allowed.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from citoyen.channels.whatsapp_inbound import CHANNEL, Media, WhatsAppMessage
from citoyen.db import session_scope
from citoyen.engine.types import Input
from citoyen.messages.types import Inbound, Reply
from citoyen.services import attachments
from citoyen.services.conversations import OnReply
from citoyen.services.inbound import ask_again
from citoyen.services.places import nearest_area


def _input(runtime: Any, message: WhatsAppMessage) -> Input:
    keywords = runtime.bundle.settings.keywords
    media = message.media
    if message.point is not None:
        with session_scope(runtime.engine) as session:
            area = nearest_area(session, *message.point)
        return Input("location", area.code) if area is not None else ask_again(keywords)
    if media is not None and media.kind == "voice":
        return Input("recording", media.ref)
    if media is not None and not message.text:
        return Input("photo", media.ref)
    return Input("text", message.text)


def _keeping(media: Media | None) -> OnReply | None:
    """Keep the media in the input's transaction, when it carries one."""
    if media is None:
        return None

    def run(session: Session, reply: Reply, contact_id: int) -> None:
        attachments.keep(
            session,
            channel=CHANNEL,
            kind=media.kind,
            provider_ref=media.ref,
            content_type=media.content_type,
            contact_id=contact_id,
            conversation_id=reply.conversation_id,
        )

    return run


def process(runtime: Any, message: WhatsAppMessage, sid: str) -> Reply:
    """Step the sender's conversation with one message, exactly once (by ``sid``)."""
    inbound = Inbound(CHANNEL, message.address, _input(runtime, message), provider_id=sid)
    return runtime.conversations.handle(inbound, on_reply=_keeping(message.media))
