"""Queueing outbound messages. Every message that is not a synchronous webhook reply goes here.

A row is written in the same transaction as whatever caused it (a report, a status change, a
survey invitation), so a message is queued if and only if its cause is committed. The
``idempotency_key`` makes queueing the same message twice a no-op.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from citoyen.models import Outbox


def enqueue(
    session: Session,
    *,
    channel: str,
    idempotency_key: str,
    body: str | None = None,
    payload: dict[str, Any] | None = None,
    contact_id: int | None = None,
    address_enc: str | None = None,
    kind: str = "reply",
    now: datetime | None = None,
) -> Outbox:
    """Queue one message (to a contact, or to an encrypted address such as an on-call phone)."""
    if contact_id is None and address_enc is None:
        raise ValueError("an outbox message needs a contact or an address")
    existing = session.exec(select(Outbox).where(Outbox.idempotency_key == idempotency_key)).first()
    if existing is not None:
        return existing
    now = now or datetime.now(UTC)
    row = Outbox(
        idempotency_key=idempotency_key,
        kind=kind,
        channel=channel,
        contact_id=contact_id,
        address_enc=address_enc,
        body=body,
        payload=payload or {},
        status="pending",
        next_attempt_at=now,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        # Queued concurrently by another transaction: that row stands.
        return session.exec(select(Outbox).where(Outbox.idempotency_key == idempotency_key)).one()
    return row
