"""The worker's expiry job: open conversations past their ``expires_at`` become expired, the
others are left as they are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.models import Conversation
from citoyen.runtime import Runtime
from citoyen.services.contacts import get_or_create_contact
from citoyen.services.expiry import expire_conversations

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def runtime(settings) -> Runtime:  # type: ignore[no-untyped-def]
    return Runtime(settings)


def test_open_conversations_past_their_expiry_are_expired(runtime: Runtime) -> None:
    # (status, expires_at) -> whether the job expires it
    cases = {
        "waiting, lapsed": ("waiting", NOW - timedelta(seconds=1), True),
        "active, lapsing now": ("active", NOW, True),
        "waiting, still open": ("waiting", NOW + timedelta(minutes=1), False),
        "waiting, no expiry": ("waiting", None, False),
        "completed, lapsed": ("completed", NOW - timedelta(hours=1), False),
    }
    with write_session(runtime.engine) as session:
        contact, _ = get_or_create_contact(session, runtime.vault, "tel:+22370000001", NOW)
        for node, (status, expires_at, _expired) in cases.items():
            session.add(
                Conversation(
                    contact_id=contact.id,
                    channel="sms",
                    flow_id="report",
                    flow_version="v1",
                    node=node,
                    status=status,
                    state={"node": node, "status": status},
                    started_at=NOW - timedelta(hours=2),
                    updated_at=NOW - timedelta(hours=2),
                    expires_at=expires_at,
                )
            )

    assert expire_conversations(runtime, NOW) == 2

    with Session(runtime.engine) as session:
        rows = {c.node: c for c in session.exec(select(Conversation)).all()}
    for node, (status, _expires_at, expired) in cases.items():
        row = rows[node]
        if expired:
            assert (row.status, row.state) == ("expired", {"node": node, "status": "expired"})
            assert row.updated_at.replace(tzinfo=UTC) == NOW
        else:
            assert (row.status, row.state["status"]) == (status, status), node
            assert row.updated_at.replace(tzinfo=UTC) == NOW - timedelta(hours=2), node
    assert expire_conversations(runtime, NOW) == 0
