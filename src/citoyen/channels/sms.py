"""Outbound SMS: a provider interface, Twilio as the first provider, and word-boundary splitting.

Twilio's two-way SMS may not be available for Malian numbers, so the SMS channel does not talk to
Twilio directly: :class:`SmsSender` (the outbox's sender for channel ``"sms"``) hands a phone
number and a text to an :class:`SmsProvider`. Twilio is one provider; a local gateway (an
operator's HTTP API, an Android gateway, Kannel...) is another class with the same ``send`` and
its errors mapped to :class:`TransientSendError` / :class:`PermanentSendError` (see docs/sms.md).

:func:`twilio_sms_sender` is the ``"sms"`` sender factory the runtime registers: Twilio when
credentials are configured, else None (the dispatcher then uses the log channel).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Protocol

import phonenumbers

from citoyen.channels.base import (
    OutboundMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)
from citoyen.engine.sms import join_messages, segments
from citoyen.engine.sms_budget import MAX_MESSAGE_SEGMENTS
from citoyen.messages.render import render_sms_parts
from citoyen.messages.types import Reply

if TYPE_CHECKING:
    from twilio.http import HttpClient

log = logging.getLogger(__name__)

# One SMS part of a reply is at most this many segments (459 GSM-7 characters, or 201 when a
# single character such as Bambara's ɛ/ɔ forces UCS-2). Each segment is billed; Twilio advises
# keeping messages under 320 characters for deliverability, and older handsets reassemble long
# concatenated messages poorly. Three segments keep a whole menu in one message while a longer
# text is cut where we choose (between lines, then between words), not mid-word by the network.
MAX_SEGMENTS = MAX_MESSAGE_SEGMENTS  # the validator's SMS budget counts with the same figure
# Twilio refuses bodies over 1600 characters (error 21617).
TWILIO_MAX_BODY = 1600
# Where the twilio library sends API calls; CITOYEN_TWILIO_API_URL replaces it (tests, edges).
TWILIO_API_URL = "https://api.twilio.com"
# Connections kept open to Twilio: the outbox's largest number of sends in flight per channel
# (citoyen.services.dispatch.MAX_IN_FLIGHT).
KEEP_CONNECTIONS = 64
# Twilio API calls give up after this long: well within the dispatcher's lease (see dispatch.py).
TWILIO_TIMEOUT_SECONDS = 20.0

# Twilio error codes (https://www.twilio.com/docs/api/errors).
OPT_OUT_CODES = frozenset({21610})  # "Attempt to send to unsubscribed recipient"
INVALID_NUMBER_CODES = frozenset(
    {
        21211,  # invalid 'To' phone number
        21614,  # 'To' number is not a valid mobile number
        21612,  # the 'To' number is not currently reachable via SMS
        21408,  # permission to send to this region is not enabled
        21265,  # 'To' number cannot be a short code
    }
)


class SmsProvider(Protocol):
    """Something that can send one SMS. ``to`` is E.164 (``+22376...``); returns the provider id.

    Implementations raise :class:`TransientSendError` for what is worth retrying (network,
    rate limit, provider outage) and :class:`PermanentSendError` for what never will succeed
    (invalid or unsubscribed number; ``opt_out=True`` for the latter).
    """

    name: str

    def send(self, to: str, body: str) -> str: ...


def _is_valid_number(e164: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        return False


def phone_number(address: str) -> str:
    """The E.164 number of a ``tel:`` address; anything else cannot receive an SMS, and neither
    can a number that does not exist in its country's plan: it fails here with that reason,
    without a provider call (which would be billed or count against the account's error rate)."""
    if not address.startswith("tel:+"):
        raise PermanentSendError("recipient has no phone number", code="no_phone_number")
    if not _is_valid_number(address.removeprefix("tel:")):
        raise PermanentSendError(
            "recipient's number is not a valid phone number", code="invalid_number"
        )
    return address.removeprefix("tel:")


class SmsSender:
    """The outbox sender for channel ``"sms"`` on top of any :class:`SmsProvider`."""

    channel = "sms"

    def __init__(self, provider: SmsProvider, max_body: int = TWILIO_MAX_BODY) -> None:
        self.provider = provider
        self.max_body = max_body

    def send(self, message: OutboundMessage) -> SendResult:
        to, body = self.checked(message)
        return SendResult(provider_id=self.provider.send(to, body))

    def checked(self, message: OutboundMessage) -> tuple[str, str]:
        """The number and text of ``message``, or :class:`PermanentSendError` when it cannot
        be an SMS (no phone number, empty, longer than one provider message may be)."""
        to = phone_number(message.address)
        body = (message.body or "").strip()
        if not body:
            raise PermanentSendError("empty SMS body", code="empty_body")
        if len(body) > self.max_body:
            # Splitting would give one outbox row several provider ids (and status callbacks):
            # whoever queues a message keeps it short instead (see docs/outbox.md).
            raise PermanentSendError(
                f"SMS body of {len(body)} characters is over {self.max_body}", code="too_long"
            )
        return to, body


class TwilioSmsProvider:
    """Twilio's Messages API, with delivery reports to ``/twilio/status``."""

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        status_callback: str | None,
        *,
        http_client: HttpClient | None = None,
        timeout: float = TWILIO_TIMEOUT_SECONDS,
        api_url: str | None = None,
    ) -> None:
        from twilio.rest import Client

        if http_client is None:
            http_client = twilio_http_client(api_url, timeout=timeout)
        self.client = Client(account_sid, auth_token, http_client=http_client)
        self.from_number = from_number
        self.status_callback = status_callback

    def send(self, to: str, body: str) -> str:
        return self.create(to=to, body=body)

    def create(self, **kwargs: Any) -> str:
        """One Messages API call from this provider's number (``body``, or a WhatsApp template's
        ``content_sid`` and ``content_variables``); returns the MessageSid."""
        from twilio.base.exceptions import TwilioException, TwilioRestException

        kwargs["from_"] = self.from_number
        if self.status_callback:
            kwargs["status_callback"] = self.status_callback
        try:
            message = self.client.messages.create(**kwargs)
        except TwilioRestException as exc:
            raise map_twilio_error(exc) from None
        except TwilioException as exc:
            raise TransientSendError(f"twilio: {type(exc).__name__}") from None
        except OSError as exc:  # requests' connection errors and timeouts are OSErrors
            raise TransientSendError(f"twilio unreachable: {type(exc).__name__}") from None
        return str(message.sid)


def twilio_http_client(
    api_url: str | None = None, *, timeout: float = TWILIO_TIMEOUT_SECONDS
) -> HttpClient:
    """The twilio library's own HTTP client, sending to ``api_url`` instead of Twilio's address
    when given (a local fake in tests, a regional edge), and logging quietly."""
    from twilio.http.http_client import TwilioHttpClient

    # The library logs requests at INFO (URLs, never the form); keep that out of our logs.
    quiet = logging.getLogger("citoyen.channels.sms.twilio_http")
    quiet.setLevel(logging.WARNING)
    base = (api_url or TWILIO_API_URL).rstrip("/")

    class RebasedTwilioHttpClient(TwilioHttpClient):
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if url.startswith(TWILIO_API_URL + "/"):
                url = base + url[len(TWILIO_API_URL) :]
            return super().request(method, url, *args, **kwargs)

    client = RebasedTwilioHttpClient(timeout=timeout, logger=quiet)
    if client.session is not None:
        # The outbox sends up to a second of the SMS rate at once (citoyen.services.dispatch):
        # keep that many connections alive, where requests keeps 10 and reopens the rest.
        from requests.adapters import HTTPAdapter

        adapter = HTTPAdapter(pool_maxsize=KEEP_CONNECTIONS)
        client.session.mount("https://", adapter)
        client.session.mount("http://", adapter)
    return client


def map_twilio_error(exc: Any) -> TransientSendError | PermanentSendError:
    """Twilio REST errors as the outbox understands them.

    21610 (unsubscribed): permanent and the contact opted out. Invalid numbers: permanent.
    429, 5xx and authentication failures (401: a credentials problem the operator can fix
    before retries run out, not a property of the message): transient. Other 4xx: permanent.
    The message never includes the recipient's number (Twilio's texts sometimes do).
    """
    status = int(getattr(exc, "status", 0) or 0)
    code = getattr(exc, "code", None)
    label = f"twilio {code or status}"
    text = scrub_numbers(str(getattr(exc, "msg", "") or ""))
    detail = f"{label}: {text}" if text else label
    if code in OPT_OUT_CODES:
        return PermanentSendError(detail, code=code, opt_out=True)
    if code in INVALID_NUMBER_CODES:
        return PermanentSendError(detail, code=code)
    if status == 429 or status >= 500 or status in (401, 408):
        return TransientSendError(detail, code=code or status)
    return PermanentSendError(detail, code=code or status)


_NUMBERS = re.compile(r"\+?\d[\d ()./-]{5,}\d")


def scrub_numbers(text: str) -> str:
    """Provider error texts may quote the number ("The 'To' number +223... is not valid")."""
    return _NUMBERS.sub("[number]", text)[:300]


def twilio_sms_sender(runtime: Any) -> SmsSender | None:
    """The Twilio SMS sender for this deployment, or None when Twilio is not configured."""
    settings = runtime.settings
    if not (settings.twilio_enabled and settings.twilio_from_number):
        return None
    provider = TwilioSmsProvider(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        settings.twilio_from_number,
        status_callback=settings.public_url.rstrip("/") + "/twilio/status",
        api_url=settings.twilio_api_url,
    )
    return SmsSender(provider)


# --- splitting long texts ---------------------------------------------------------------------


def reply_texts(catalog: Any, reply: Reply) -> list[str]:
    """The SMS messages of a reply, in order: one per prompt, prompts joined where that costs
    no more segments (the welcome and the first question), each cut to the segment limit. The
    webhook's TwiML and the outbox (a spooled message's reply) send the same messages."""
    parts = render_sms_parts(catalog, reply.prompts, reply.language, reply.params)
    return [text for message in join_messages(parts, MAX_SEGMENTS) for text in split_sms(message)]


def split_sms(text: str, max_segments: int = MAX_SEGMENTS) -> list[str]:
    """Cut ``text`` into messages of at most ``max_segments`` segments each.

    Cuts between paragraphs, else between lines, else between words; a single word longer than a
    whole message (a URL) is cut where it must be. Whitespace at the cuts is dropped; nothing
    else is lost or reordered.
    """
    text = text.strip()
    if not text:
        return []
    if segments(text) <= max_segments:
        return [text]
    fits = lambda s: segments(s) <= max_segments  # noqa: E731
    return _pack(text, fits, ("\n\n", "\n", " "))


def _pack(text: str, fits: Any, separators: tuple[str, ...]) -> list[str]:
    if fits(text):
        return [text]
    if not separators:
        return _hard_split(text, fits)
    sep, rest = separators[0], separators[1:]
    pieces = [p.strip() for p in text.split(sep)]
    pieces = [p for p in pieces if p]
    out: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current}{sep}{piece}" if current else piece
        if fits(candidate):
            current = candidate
            continue
        if current:
            out.append(current)
        if fits(piece):
            current = piece
        else:
            parts = _pack(piece, fits, rest)
            out.extend(parts[:-1])
            current = parts[-1]
    if current:
        out.append(current)
    return out


def _hard_split(text: str, fits: Any) -> list[str]:
    out: list[str] = []
    current = ""
    for ch in text:
        if fits(current + ch):
            current += ch
        else:
            out.append(current)
            current = ch
    if current:
        out.append(current)
    return out
