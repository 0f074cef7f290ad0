"""Outbound WhatsApp through Twilio, inside and outside the 24-hour customer-service window.

The outbox's sender for channel ``whatsapp`` (status notices, staff replies and survey invitations
to citizens who wrote on WhatsApp; replies to their own messages go back as TwiML). WhatsApp
allows free-form text within 24 hours of the citizen's last message; after that only approved
templates (channels/whatsapp_templates.py). So for each message:

- the citizen's last WhatsApp message is less than 24 hours old: the text is sent as it is;
- otherwise the template of the message's purpose (``status``, ``staff_reply``, ``survey``) in
  the citizen's language is sent, ``ContentSid`` and ``ContentVariables`` (the text, the
  reference);
- no such template: the message is **held**: the row stays pending with the reason in its error
  ("held: no WhatsApp template for status in 'bm'", shown in the outbox monitor) and is tried
  again every hour; if the citizen writes meanwhile, the window opens and it goes free-form.
  After its attempts it is failed, visible, and can be sent again from the monitor once a
  template is configured. Never dropped.

Importing this module registers the sender (the dispatcher imports ``citoyen.channels.whatsapp``
the first time it sees the channel).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from citoyen.channels.base import OutboundMessage, SendResult, TransientSendError
from citoyen.channels.sms import SmsSender, TwilioSmsProvider
from citoyen.channels.whatsapp_templates import Templates, load_templates

log = logging.getLogger(__name__)

CHANNEL = "whatsapp"
WINDOW = timedelta(hours=24)
# A held message is looked at again this often (the citizen may write and open the window).
HOLD_RETRY_SECONDS = 3600.0


@dataclass(frozen=True)
class Recipient:
    """What the sender needs to know about a row's recipient to choose free-form or template."""

    last_inbound_at: datetime | None
    language: str | None
    kind: str


def purpose_of(kind: str, payload: dict[str, Any]) -> str | None:
    """Which template a message needs outside the window: notices carry the report's status,
    staff replies only its reference; survey invitations are their own kind."""
    if kind == "survey":
        return "survey"
    if kind == "notification":
        return "status" if "status" in payload else "staff_reply"
    return None


def window_open(last_inbound_at: datetime | None, now: datetime) -> bool:
    return last_inbound_at is not None and now - last_inbound_at < WINDOW


class WhatsAppSender(SmsSender):
    """The outbox sender for channel ``"whatsapp"`` (Twilio's Messages API)."""

    channel = CHANNEL

    def __init__(
        self,
        provider: TwilioSmsProvider,
        templates: Templates,
        recipients: Callable[[int], Recipient],
        *,
        default_language: str = "fr",
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(provider)
        self.twilio = provider
        self.templates = templates
        self.recipients = recipients
        self.default_language = default_language
        self.now = now

    def send(self, message: OutboundMessage) -> SendResult:
        number, body = self.checked(message)
        to = f"whatsapp:{number}"
        recipient = self.recipients(message.outbox_id)
        if window_open(recipient.last_inbound_at, self.now()):
            return SendResult(self.twilio.create(to=to, body=body))
        purpose = purpose_of(recipient.kind, message.payload)
        language = recipient.language or self.default_language
        template = self.templates.get(purpose, language) if purpose else None
        if template is None:
            raise TransientSendError(
                f"held: no WhatsApp template for {purpose or recipient.kind} in '{language}' "
                "outside the 24-hour window",
                code="held",
                retry_after=HOLD_RETRY_SECONDS,
            )
        values = {"body": body, "reference": str(message.payload.get("report") or "")}
        variables = {n: values[source] for n, source in template.variables.items()}
        sid = self.twilio.create(
            to=to, content_sid=template.content_sid, content_variables=json.dumps(variables)
        )
        return SendResult(sid)


def whatsapp_sender(runtime: Any, recipients: Callable[[int], Recipient]) -> WhatsAppSender | None:
    """The WhatsApp sender of this deployment, or None when Twilio or the sender is not set;
    ``recipients`` tells a row's kind, language and the citizen's last message (the runtime
    passes the database's, services.whatsapp_window)."""
    settings = runtime.settings
    if not (settings.twilio_enabled and settings.twilio_whatsapp_from):
        return None
    provider = TwilioSmsProvider(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        f"whatsapp:{settings.twilio_whatsapp_from}",
        status_callback=settings.public_url.rstrip("/") + "/twilio/status",
        api_url=settings.twilio_api_url,
    )
    languages = tuple(runtime.bundle.settings.languages.enabled)
    templates = load_templates(
        settings.flows_dir, languages, config_dir=settings.resolved_config_dir
    )
    for problem in templates.problems:
        if problem.level == "error":
            log.error("whatsapp templates: %s", problem)
    return WhatsAppSender(
        provider,
        templates,
        recipients,
        default_language=runtime.bundle.settings.languages.default,
    )
