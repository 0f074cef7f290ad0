"""An SMS reply queued in the outbox, for inputs whose reply cannot travel in the webhook's answer.

Twilio's webhook answers with TwiML; an SMS from a gateway phone, or one replayed from the spool
after the database was down, has no answer to carry the reply, so it goes through the outbox in
the input's own transaction: queued if and only if the input is recorded. The messages are the
ones TwiML would carry (:func:`citoyen.channels.sms.reply_texts`), one row each, keyed
``<key>:<n>`` so that a redelivered input queues nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

from citoyen.channels.sms import reply_texts
from citoyen.messages.types import Reply
from citoyen.services.outbox import enqueue


@dataclass
class QueueSmsReply:
    """The ``on_reply`` hook of :meth:`ConversationService.handle` for SMS replies."""

    catalog: Any
    key: str
    now: datetime
    queued: list[int] = field(default_factory=list)

    def __call__(self, session: Session, reply: Reply, contact_id: int) -> None:
        for i, text in enumerate(reply_texts(self.catalog, reply)):
            row = enqueue(
                session,
                channel="sms",
                idempotency_key=f"{self.key}:{i}",
                body=text,
                contact_id=contact_id,
                kind="reply",
                now=self.now,
            )
            self.queued.append(row.id or 0)
