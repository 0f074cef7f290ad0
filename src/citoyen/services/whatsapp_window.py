"""The 24-hour WhatsApp window as the database knows it: a row's kind, the contact's language and
their last WhatsApp message, for the WhatsApp sender (read only)."""

from __future__ import annotations

from datetime import UTC

from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from citoyen.channels.whatsapp import CHANNEL, Recipient
from citoyen.models import Contact, Message, Outbox


class DatabaseRecipients:
    """Reads the row's kind, the contact's language and last WhatsApp message (read only)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self, outbox_id: int) -> Recipient:
        with Session(self.engine) as session:
            row = session.exec(
                select(Outbox.kind, Outbox.contact_id, Contact.language)
                .join(Contact, Contact.id == Outbox.contact_id, isouter=True)
                .where(Outbox.id == outbox_id)
            ).first()
            if row is None:
                return Recipient(None, None, "notification")
            kind, contact_id, language = row
            last = None
            if contact_id is not None:
                last = session.exec(
                    select(func.max(Message.created_at)).where(
                        Message.contact_id == contact_id,
                        Message.channel == CHANNEL,
                        Message.direction == "in",
                    )
                ).one()
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        return Recipient(last, language, kind)
