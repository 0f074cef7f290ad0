"""The log channel: where outbound messages go when no provider is configured for their channel.

A deployment without Twilio or Telegram credentials still runs (DESIGN.md section 3), and its
messages must not vanish: each one becomes a log line naming the citizen by alias, never by
number, so an operator can see what would have been sent.
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from citoyen.channels.base import OutboundMessage, SendResult
from citoyen.models import Contact, Outbox
from citoyen.services.privacy import alias_label

log = logging.getLogger("citoyen.outbox.log_channel")


class LogSender:
    """A :class:`~citoyen.channels.base.Sender` that logs one line per message."""

    def __init__(self, engine: Engine, channel: str = "log") -> None:
        self.engine = engine
        self.channel = channel

    def recipient(self, outbox_id: int) -> str:
        """How the line names the recipient: the contact's alias, or "a stakeholder"."""
        with Session(self.engine) as session:
            alias = session.exec(
                select(Contact.alias)
                .join(Outbox, Outbox.contact_id == Contact.id)
                .where(Outbox.id == outbox_id)
            ).first()
        return alias_label(alias) if alias is not None else "a stakeholder"

    def send(self, message: OutboundMessage) -> SendResult:
        log.info(
            "outbox %s -> %s via %s (log channel): %s",
            message.outbox_id,
            self.recipient(message.outbox_id),
            message.channel,
            message.body,
        )
        return SendResult(provider_id=f"log-{message.outbox_id}")
