"""Queueing outbound messages. Every message that is not a synchronous webhook reply goes here.

A row is written in the same transaction as whatever caused it (a report, a status change, a
survey invitation), so a message is queued if and only if its cause is committed. The
``idempotency_key`` makes queueing the same message twice a no-op.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, select

from citoyen.db import INSERT
from citoyen.models import Outbox
from citoyen.prepared import Prepared, bound, session_connection

_OUTBOX = Outbox.__table__  # type: ignore[attr-defined]
# Many rows in one statement; keys queued already are skipped and the new ones come back.
_QUEUE_MANY = {
    name: insert(_OUTBOX)
    .on_conflict_do_nothing(index_elements=["idempotency_key"])
    .returning(_OUTBOX.c.idempotency_key)
    for name, insert in INSERT.items()
}
_QUEUED_COLUMNS = (  # what queued_row gives
    "idempotency_key",
    "kind",
    "channel",
    "contact_id",
    "address_enc",
    "body",
    "payload",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
)
FEW = 8  # up to this many rows, enqueue_many runs a prepared statement made for their number


@functools.lru_cache(maxsize=2 * FEW)
def _queue_few(dialect: str, count: int) -> Prepared:
    """:data:`_QUEUE_MANY` for ``count`` rows as one fixed statement (parameters
    ``<column>_<i>``): the alerts of an emergency, queued as a citizen completes the report."""
    return Prepared(
        INSERT[dialect](_OUTBOX)
        .values([bound(_OUTBOX, _QUEUED_COLUMNS, f"_{i}") for i in range(count)])
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(_OUTBOX.c.idempotency_key)
    )


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
) -> dict[str, Any]:
    """The columns of a newly queued message (what :func:`enqueue` and :func:`enqueue_many`
    insert)."""
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
        "next_attempt_at": now,
        "created_at": now,
    }


def enqueue_many(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Queue :func:`queued_row` rows in one statement; returns the idempotency keys that were
    new (a key queued already, here or concurrently, leaves that row standing)."""
    if not rows:
        return set()
    if len(rows) <= FEW:
        conn = session_connection(session)
        params = {f"{name}_{i}": value for i, row in enumerate(rows) for name, value in row.items()}
        return {
            key for (key,) in _queue_few(conn.dialect.name, len(rows)).execute(conn, params).rows
        }
    statement = _QUEUE_MANY[session.get_bind().dialect.name]
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
) -> Outbox:
    """Queue one message (to a contact, or to an encrypted address such as an on-call phone).

    One ``INSERT ... ON CONFLICT (idempotency_key) DO NOTHING RETURNING`` (the key queued already,
    here or by a concurrent transaction, leaves that row standing and it is returned): it runs
    for every Telegram reply and every notice, where a lookup, a savepoint and a flush cost
    four round trips. The row is loaded into the session, so callers may still change it.
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
    )
    insert = INSERT[session.get_bind().dialect.name]
    row = session.scalars(
        insert(Outbox)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(Outbox)
    ).first()
    if row is not None:
        return row
    return session.exec(select(Outbox).where(Outbox.idempotency_key == idempotency_key)).one()


class RetryError(ValueError):
    """The row cannot be retried (it does not exist, or it has not failed)."""


def retry(session: Session, outbox_id: int, now: datetime) -> Outbox:
    """Put a failed message back in line, to be sent at the worker's next pass.

    For a failure an operator has fixed (a provider outage, a wrong on-call number): the row goes
    back to ``pending`` with ``next_attempt_at = now`` and a fresh set of attempts (the
    dispatcher gives up on a row whose ``attempts`` reached its maximum, so keeping the count
    would make a retry of an exhausted row fail at once); the previous count and error are
    returned in ``previous`` for the caller's audit event. Only failed rows qualify: retrying one
    that is pending, sending or sent could send a message twice. Flushes without committing.
    """
    row = session.get(Outbox, outbox_id)
    if row is None:
        raise RetryError(f"no outbox message {outbox_id}")
    if row.status != "failed":
        raise RetryError(f"outbox message {outbox_id} is {row.status}, not failed")
    row.status = "pending"
    row.next_attempt_at = now
    row.locked_until = None
    row.attempts = 0
    session.add(row)
    session.flush()
    return row
