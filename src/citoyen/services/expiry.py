"""Conversations nobody finished: marked expired once past their ``expires_at``.

A job of the worker (every minute). A conversation whose citizen comes back after expiry is
also handled at that moment by the conversation service; this job keeps the statuses the admin
and the figures read true even when nobody comes back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import select

from citoyen.db import write_session
from citoyen.models import Conversation


def expire_conversations(runtime: Any, now: datetime | None = None) -> int:
    """Mark waiting conversations past their expiry as expired; returns how many."""
    now = now or datetime.now(UTC)
    with write_session(runtime.engine) as session:
        rows = session.exec(
            select(Conversation).where(
                Conversation.status.in_(("active", "waiting")),
                Conversation.expires_at.is_not(None),
                Conversation.expires_at <= now,
            )
        ).all()
        for conversation in rows:
            conversation.status = "expired"
            conversation.state = {**conversation.state, "status": "expired"}
            conversation.updated_at = now
        return len(rows)
