"""Queueing is idempotent: one row per idempotency key, whoever queues it and however often.

Every test runs on SQLite and PostgreSQL (the ``settings`` fixture).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, func, select

from citoyen.db import write_session
from citoyen.models import Outbox
from citoyen.runtime import Runtime
from citoyen.services.outbox import enqueue, enqueue_many, queued_row

NOW = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def runtime(settings) -> Runtime:
    return Runtime(settings)


def rows(runtime: Runtime) -> list[Outbox]:
    with Session(runtime.engine) as session:
        return list(session.exec(select(Outbox).order_by(Outbox.id)).all())


def test_a_key_queued_twice_is_one_row_the_first(runtime: Runtime) -> None:
    with write_session(runtime.engine) as session:
        first = enqueue(
            session, channel="sms", idempotency_key="notice:1", body="Reçu.", address_enc="x"
        )
        again = enqueue(
            session, channel="sms", idempotency_key="notice:1", body="Autre.", address_enc="x"
        )
        assert again is first
    with write_session(runtime.engine) as session:  # a later transaction
        later = enqueue(
            session, channel="sms", idempotency_key="notice:1", body="Encore.", address_enc="x"
        )
        assert later.id == first.id
    [row] = rows(runtime)
    assert (row.body, row.status, row.attempts, row.payload) == ("Reçu.", "pending", 0, {})


def test_the_queued_row_can_still_be_changed_in_the_transaction(runtime: Runtime) -> None:
    later = NOW + timedelta(hours=8)
    with write_session(runtime.engine) as session:
        row = enqueue(
            session,
            channel="telegram",
            idempotency_key="survey:1:invite:0",
            body="Question",
            payload={"buttons": [["1", "Oui"]]},
            address_enc="x",
            kind="survey",
            now=NOW,
        )
        row.next_attempt_at = later  # quiet hours: sent in the morning
    [stored] = rows(runtime)
    assert stored.next_attempt_at == later and stored.created_at == NOW
    assert (stored.kind, stored.payload) == ("survey", {"buttons": [["1", "Oui"]]})


def test_a_message_needs_a_recipient(runtime: Runtime) -> None:
    with write_session(runtime.engine) as session, pytest.raises(ValueError):
        enqueue(session, channel="sms", idempotency_key="nobody", body="?")
    assert rows(runtime) == []


def test_transactions_queueing_one_key_at_once_make_one_row(runtime: Runtime) -> None:
    ids: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def queue() -> None:
        try:
            start.wait(5)
            with write_session(runtime.engine) as session:
                row = enqueue(
                    session, channel="sms", idempotency_key="alert:7", body="!", address_enc="x"
                )
                ids.append(row.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=queue) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(ids) == 4 and len(set(ids)) == 1
    with Session(runtime.engine) as session:
        assert session.exec(select(func.count()).select_from(Outbox)).one() == 1


def test_many_rows_in_one_statement_skip_keys_queued_already(runtime: Runtime) -> None:
    now = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    with write_session(runtime.engine) as s:
        enqueue(s, channel="sms", idempotency_key="k1", body="first", address_enc="a", now=now)
    batch = [
        queued_row(channel="sms", idempotency_key=key, body=key, address_enc="a", now=now)
        for key in ("k1", "k2", "k3")
    ]
    with write_session(runtime.engine) as s:
        assert enqueue_many(s, batch) == {"k2", "k3"}
        assert enqueue_many(s, []) == set()
    got = {row.idempotency_key: row for row in rows(runtime)}
    assert sorted(got) == ["k1", "k2", "k3"]
    assert got["k1"].body == "first" and got["k3"].status == "pending"
    assert got["k3"].next_attempt_at == now
