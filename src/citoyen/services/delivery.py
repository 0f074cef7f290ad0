"""Delivery reports from providers, recorded on the outbox row that sent the message.

Twilio's status callbacks (``POST /twilio/status``) arrive out of order (``sent`` after
``delivered``), so a status never replaces a later one; the error code is kept on the row; error
21610 means the recipient unsubscribed at the carrier or at Twilio, so the contact is opted out
and no longer invited to surveys.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import select

from citoyen.db import write_session
from citoyen.models import Contact, Outbox

log = logging.getLogger(__name__)

OPT_OUT_CODES = frozenset({"21610"})

# How far along a message is. A callback never moves a row back (callbacks race each other).
STATUS_RANK = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 0,
    "sending": 1,
    "sent": 2,
    "delivered": 3,
    "undelivered": 3,
    "failed": 3,
    "read": 4,
    "canceled": 3,
}
FAILED_STATUSES = frozenset({"undelivered", "failed"})


def record_delivery(runtime: Any, sid: str, status: str, error_code: str | None) -> Outbox | None:
    """Record a message callback on its outbox row; None when no row has that provider id."""
    with write_session(runtime.engine) as session:
        row = session.exec(
            select(Outbox).where(Outbox.provider_id == sid).with_for_update()
        ).first()
        if row is None:
            return None
        current_rank = STATUS_RANK.get(row.delivery_status or "", -1)
        if STATUS_RANK.get(status, 0) >= current_rank:
            row.delivery_status = status
        if error_code:
            row.error = f"[{error_code}] delivery {status}"
        elif status in FAILED_STATUSES:
            row.error = f"delivery {status}"
        if error_code in OPT_OUT_CODES and row.contact_id is not None:
            contact = session.get(Contact, row.contact_id)
            if contact is not None:
                contact.opted_out = True
                contact.survey_consent = False
                log.info("outbox %s: Twilio says the recipient unsubscribed; opted out", row.id)
        return row
