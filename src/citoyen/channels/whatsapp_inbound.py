"""Reading a WhatsApp message that Twilio posts: the form into a neutral message, no database.

Twilio posts WhatsApp messages to the same webhook as SMS (``POST /twilio/sms``), with
``whatsapp:`` addresses, signed the same way; :mod:`citoyen.web.twilio_sms` hands them on after
the signature check. This module reads the form and refuses what is not a usable message
(:class:`BadRequest`: the web answers 400); :mod:`citoyen.services.whatsapp_inbound` then turns it
into a conversation input. What a message may carry, as on Telegram:

- text (``Body``), or the id of a template's quick-reply button the citizen tapped
  (``ButtonPayload``: the word the button stands for, such as ``APPEL``, whatever language the
  button's label is in);
- a shared location (``Latitude`` / ``Longitude``);
- a voice note or a photo (the first media item, ``MediaContentType0`` ``audio/*`` or
  ``image/*``), kept as ``MM…/ME…`` so that the download URL is rebuilt from the account setting
  and credentials only ever go to Twilio. Documents, stickers and vCards are ignored.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from citoyen.engine.textnorm import whole_number
from citoyen.messages.addresses import AddressError, normalise_address

CHANNEL = "whatsapp"
PREFIX = "whatsapp:"
# Twilio's media URL: .../Accounts/AC…/Messages/MM…/Media/ME…
MEDIA_URL = re.compile(r"/Messages/((?:MM|SM)[0-9a-fA-F]{32})/Media/(ME[0-9a-fA-F]{32})$")
MAX_NUM_MEDIA = 10
MAX_BUTTON_PAYLOAD = 256  # WhatsApp's limit for a quick-reply button's id


class BadRequest(ValueError):
    """A form that is not a usable WhatsApp message; the text is the reason sent back."""


@dataclass(frozen=True)
class Media:
    kind: str  # voice | photo
    ref: str  # MM…/ME…
    content_type: str


@dataclass(frozen=True)
class WhatsAppMessage:
    """What one WhatsApp message says, read from Twilio's form."""

    address: str  # tel:+223…: the same contact as on SMS
    text: str
    point: tuple[float, float] | None
    media: Media | None


def is_whatsapp(form: Any) -> bool:
    return str(form.get("From", "")).strip().startswith(PREFIX)


def _one(form: Any, name: str) -> str:
    values = form.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"{name} given more than once")
    return values[0] if values else ""


def _media(form: Any) -> Media | None:
    count = whole_number(_one(form, "NumMedia").strip() or "0", max_digits=2)
    if count is None or count > MAX_NUM_MEDIA:
        raise BadRequest("malformed NumMedia")
    if count == 0:
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


def _text(form: Any, body: str) -> str:
    """What the citizen said: a tapped quick-reply button's id, else the body. WhatsApp puts
    the button's label in ``Body``; the id, chosen when the template was made, is what the flows
    know (a keyword, a choice's number)."""
    payload = _one(form, "ButtonPayload").strip()
    if len(payload) > MAX_BUTTON_PAYLOAD:
        raise BadRequest("malformed ButtonPayload")
    return payload or body.strip()


def read_message(form: Any, body: str) -> WhatsAppMessage:
    """The message in Twilio's form (``body`` already checked), or :class:`BadRequest`."""
    sender = _one(form, "From").strip().removeprefix(PREFIX)
    try:
        address = normalise_address(sender)
    except AddressError:
        raise BadRequest("From is not a WhatsApp number") from None
    if not address.startswith("tel:"):
        raise BadRequest("From is not a WhatsApp number")
    return WhatsAppMessage(address, _text(form, body), _location(form), _media(form))
