"""Queueing outbound messages. Every message that is not a synchronous webhook reply goes here.

A row is written in the same transaction as whatever caused it (a report, a status change, a
survey invitation), so a message is queued if and only if its cause is committed. The
``idempotency_key`` makes queueing the same message twice a no-op. A survey's rows carry its
window (``quiet_hours``): the dispatcher sends them only inside it (docs/outbox.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, select

from citoyen.db import insert_or_skip
from citoyen.models import Outbox

_OUTBOX = Outbox.__table__  # type: ignore[attr-defined]


def queued_row(
    *,
    channel: str,
    idempotency_key: str,
    body: str | None = None,
    payload: dict[str, Any] | None = None,
    contact_id: int | None = None,
    address_enc: str | None = None,
    kind: str = "reply",
    now: datetime,
    send_at: datetime | None = None,
    quiet_hours: str | None = None,
) -> dict[str, Any]:
    """The columns of a newly queued message (what :func:`enqueue` and :func:`enqueue_many`
    insert), to be sent from ``send_at`` (default: ``now``), and only inside ``quiet_hours``
    (a survey's window, :func:`citoyen.services.quiet_hours.spec`) when given."""
    if contact_id is None and address_enc is None:
        raise ValueError("an outbox message needs a contact or an address")
    return {
        "idempotency_key": idempotency_key,
        "kind": kind,
        "channel": channel,
        "contact_id": contact_id,
        "address_enc": address_enc,
        "body": body,
        "payload": payload or {},
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": send_at or now,
        "quiet_hours": quiet_hours,
        "created_at": now,
    }


def enqueue_many(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Queue :func:`queued_row` rows in one statement; returns the idempotency keys that were
    new (a key queued already, here or concurrently, leaves that row standing)."""
    if not rows:
        return set()
    statement = insert_or_skip(session, _OUTBOX, ["idempotency_key"]).returning(
        _OUTBOX.c.idempotency_key
    )
    return set(session.execute(statement, rows).scalars())


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
    send_at: datetime | None = None,
    quiet_hours: str | None = None,
) -> Outbox:
    """Queue one message (to a contact, or to an encrypted address such as an on-call phone).

    One ``INSERT ... ON CONFLICT (idempotency_key) DO NOTHING RETURNING``: the key queued already,
    here or by a concurrent transaction, leaves that row standing and it is returned. The row is
    loaded into the session, so callers may still change it.
    """
    values = queued_row(
        channel=channel,
        idempotency_key=idempotency_key,
        body=body,
        payload=payload,
        contact_id=contact_id,
        address_enc=address_enc,
        kind=kind,
        now=now or datetime.now(UTC),
        send_at=send_at,
        quiet_hours=quiet_hours,
    )
    row = session.scalars(
        insert_or_skip(session, Outbox, ["idempotency_key"]).values(**values).returning(Outbox)
    ).first()
    if row is not None:
        return row
    return session.exec(select(Outbox).where(Outbox.idempotency_key == idempotency_key)).one()


class RetryError(ValueError):
    """The row cannot be retried (it does not exist, or it has not failed)."""


class NoSuchMessage(RetryError):
    """There is no outbox row with this id."""


@dataclass(frozen=True)
class Retried:
    """A row put back in line, with the attempts and error it had, for the audit event."""

    row: Outbox
    attempts_before: int
    error_before: str | None


def retry(session: Session, outbox_id: int, now: datetime) -> Retried:
    """Put a failed message back in line, to be sent at the worker's next pass.

    For a failure an operator has fixed (a provider outage, a wrong on-call number): the row goes
    back to ``pending`` with ``next_attempt_at = now`` and a fresh set of attempts (the
    dispatcher gives up on a row whose ``attempts`` reached its maximum, so keeping the count
    would make a retry of an exhausted row fail at once); the previous count and error are
    returned beside the row for the caller's audit event. Only failed rows qualify: retrying one
    that is pending, sending or sent could send a message twice. Flushes without committing.
    """
    row = session.get(Outbox, outbox_id)
    if row is None:
        raise NoSuchMessage(f"no outbox message {outbox_id}")
    if row.status != "failed":
        raise RetryError(f"outbox message {outbox_id} is {row.status}, not failed")
    retried = Retried(row, row.attempts, row.error)
    row.status = "pending"
    row.next_attempt_at = now
    row.locked_until = None
    row.attempts = 0
    session.add(row)
    session.flush()
    return retried
