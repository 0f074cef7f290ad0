"""WhatsApp through Twilio: the messaging webhook's requests whose ``From`` is ``whatsapp:+…``.

Twilio posts WhatsApp messages to the same webhook as SMS (``POST /twilio/sms``), with
``whatsapp:`` addresses, signed the same way; :mod:`citoyen.web.twilio_sms` hands them here
after the signature check. They run the same flows on their own channel, ``whatsapp``: the
contact is the phone number's (``tel:+223…``, the same person as on SMS), the conversation,
reports and exports say ``whatsapp``, and the reply is TwiML as for SMS (a reply to a message is
inside WhatsApp's 24-hour customer-service window, so free-form text is allowed).

What a message may carry, as on Telegram:

- text (``Body``) -> ``Input("text")``;
- a shared location (``Latitude`` / ``Longitude``) -> ``Input("location", code of the nearest
  known area)``, or the question again when no area is near; coordinates are never stored;
- a voice note (``MediaContentType0`` ``audio/*``) -> ``Input("recording", <media ref>)``, taken
  as the answer to a free-text question;
- a photo (``image/*``) -> its caption as text, or the question again;
- voice notes and photos (the first media item) become :class:`~citoyen.models.Attachment` rows
  (``pending``) that the worker downloads from Twilio with the account's credentials, linked to
  the conversation and, once it exists, to its report.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, request
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from citoyen.db import session_scope
from citoyen.engine.types import Input
from citoyen.messages.addresses import AddressError, normalise_address
from citoyen.messages.types import Inbound, Reply
from citoyen.models import Attachment
from citoyen.services.attachments import link_to_report
from citoyen.services.conversations import OnReply
from citoyen.services.places import nearest_area
from citoyen.services.telegram_inbound import ask_again

log = logging.getLogger(__name__)

CHANNEL = "whatsapp"
PREFIX = "whatsapp:"
# Twilio's media URL: .../Accounts/AC…/Messages/MM…/Media/ME… ; kept as "MM…/ME…" so that the
# download URL is rebuilt from the account setting and credentials only ever go to Twilio.
MEDIA_URL = re.compile(r"/Messages/((?:MM|SM)[0-9a-fA-F]{32})/Media/(ME[0-9a-fA-F]{32})$")
MAX_NUM_MEDIA = 10


class BadRequest(ValueError):
    """A form that is not a usable WhatsApp message; the text is the reason sent back."""


@dataclass(frozen=True)
class Media:
    kind: str  # voice | photo
    ref: str  # MM…/ME…
    content_type: str


def is_whatsapp(form: Any) -> bool:
    return str(form.get("From", "")).strip().startswith(PREFIX)


def _one(form: Any, name: str) -> str:
    values = form.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"{name} given more than once")
    return values[0] if values else ""


def _media(form: Any) -> Media | None:
    count = _one(form, "NumMedia").strip() or "0"
    if not count.isdigit() or int(count) > MAX_NUM_MEDIA:
        raise BadRequest("malformed NumMedia")
    if int(count) == 0:
        return None
    url = _one(form, "MediaUrl0").strip()
    content_type = _one(form, "MediaContentType0").strip().lower()
    match = MEDIA_URL.search(url)
    if match is None:
        raise BadRequest("MediaUrl0 is not a Twilio media URL")
    kind = "voice" if content_type.startswith("audio/") else "photo"
    if not content_type.startswith(("audio/", "image/")):
        return None  # documents, stickers, vCards: nothing the flows can use
    return Media(kind, f"{match.group(1)}/{match.group(2)}", content_type[:100])


def _location(form: Any) -> tuple[float, float] | None:
    lat, lon = _one(form, "Latitude").strip(), _one(form, "Longitude").strip()
    if not lat and not lon:
        return None
    try:
        point = float(lat), float(lon)
    except ValueError:
        raise BadRequest("malformed Latitude/Longitude") from None
    if not all(math.isfinite(v) for v in point) or abs(point[0]) > 90 or abs(point[1]) > 180:
        raise BadRequest("malformed Latitude/Longitude")
    return point


def parse(runtime: Any, form: Any, sid: str, body: str) -> tuple[Inbound, Media | None]:
    """The neutral inbound of a WhatsApp message (and its media), or :class:`BadRequest`."""
    sender = _one(form, "From").strip().removeprefix(PREFIX)
    try:
        address = normalise_address(sender)
    except AddressError:
        raise BadRequest("From is not a WhatsApp number") from None
    if not address.startswith("tel:"):
        raise BadRequest("From is not a WhatsApp number")
    keywords = runtime.bundle.settings.keywords
    point = _location(form)
    media = _media(form)
    text = body.strip()
    if point is not None:
        with session_scope(runtime.engine) as session:
            area = nearest_area(session, *point)
        inp = Input("location", area.code) if area is not None else ask_again(keywords)
    elif media is not None and media.kind == "voice":
        inp = Input("recording", media.ref)
    elif media is not None and not text:
        inp = ask_again(keywords)
    else:
        inp = Input("text", text)
    return Inbound(CHANNEL, address, inp, provider_id=sid), media


def keep_media(
    session: Session, media: Media, contact_id: int, conversation_id: int | None
) -> None:
    """An Attachment row for a voice note or photo (once per media item)."""
    row = Attachment(
        conversation_id=conversation_id,
        contact_id=contact_id,
        channel=CHANNEL,
        kind=media.kind,
        provider_ref=media.ref,
        content_type=media.content_type,
        status="pending",
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        pass  # the same media stored already


def media_hook(media: Media | None) -> OnReply | None:
    """Keep the media, linked to the conversation's report when there is one already, in the
    input's transaction (a report made later takes the conversation's attachments itself)."""
    if media is None:
        return None

    def run(session: Session, reply: Reply, contact_id: int) -> None:
        keep_media(session, media, contact_id, reply.conversation_id)
        if reply.conversation_id is not None:
            link_to_report(session, reply.conversation_id)

    return run


def handle(sid: str, body: str) -> Response:
    """Answer one signed WhatsApp message (``sid`` and ``body`` already checked) with TwiML."""
    from citoyen.web.twiml import render_twiml, twiml

    runtime = current_app.extensions["citoyen"]
    try:
        inbound, media = parse(runtime, request.form, sid, body)
        reply = runtime.conversations.handle(inbound, on_reply=media_hook(media))
    except (BadRequest, AddressError) as exc:
        reason = str(exc) if isinstance(exc, BadRequest) else "From is not a WhatsApp number"
        log.warning("twilio whatsapp refused (400): %s", reason)
        return Response(reason, status=400, mimetype="text/plain")
    return twiml(render_twiml(reply))
