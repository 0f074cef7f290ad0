"""The worker: the only process that schedules (APScheduler 3.x).

Jobs: expire conversations that waited past their flow's expiry, and dispatch the outbox. Without
provider credentials the outbox is delivered to the log channel (a line per message, the recipient
named by alias only), never silently dropped. Real providers, survey schedules, escalation and
recording fetches are added by their own modules as they land.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlmodel import select

from citoyen.db import write_session
from citoyen.models import Contact, Conversation, Outbox
from citoyen.services.privacy import alias_label

log = logging.getLogger(__name__)


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


def dispatch_outbox_to_log(runtime: Any, now: datetime | None = None, limit: int = 100) -> int:
    """Deliver pending outbox rows to the log channel (no provider configured)."""
    now = now or datetime.now(UTC)
    with write_session(runtime.engine) as session:
        rows = session.exec(
            select(Outbox, Contact)
            .join(Contact, Contact.id == Outbox.contact_id, isouter=True)
            .where(Outbox.status == "pending", Outbox.next_attempt_at <= now)
            .order_by(Outbox.id)
            .limit(limit)
        ).all()
        for row, contact in rows:
            who = alias_label(contact.alias) if contact else "a stakeholder"
            log.info("outbox %s -> %s via %s (log channel): %s", row.id, who, row.channel, row.body)
            row.status = "sent"
            row.sent_at = now
            row.provider_id = f"log-{row.id}"
            row.attempts += 1
        return len(rows)


class Worker:
    """Owns the scheduler; ``start(background=False)`` blocks until a signal stops it."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.scheduler = BackgroundScheduler(timezone="Africa/Bamako")
        self._stop = threading.Event()

    def _register(self) -> None:
        common = {
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": 30,
            "replace_existing": True,
        }
        self.scheduler.add_job(
            expire_conversations,
            "interval",
            minutes=1,
            args=[self.runtime],
            id="expire_conversations",
            **common,
        )
        self.scheduler.add_job(
            dispatch_outbox_to_log,
            "interval",
            seconds=5,
            args=[self.runtime],
            id="dispatch_outbox",
            **common,
        )

    def start(self, background: bool) -> None:
        self._register()
        self.scheduler.start()
        jobs = ", ".join(job.id for job in self.scheduler.get_jobs())
        log.info("worker started: scheduler (Africa/Bamako) with jobs: %s", jobs)
        if background:
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self._stop.set())
        self._stop.wait()
        self.shutdown()

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        log.info("worker stopped")
