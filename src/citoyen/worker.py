"""The worker: the only process that schedules (APScheduler 3.x).

Jobs: expire conversations that waited past their flow's expiry, and dispatch the outbox every
second (:mod:`citoyen.services.dispatch`: leases, retries, rate limits; docs/outbox.md). Without
provider credentials the outbox is delivered to the log channel (a line per message, the recipient
named by alias only), never silently dropped. Recordings and Telegram media are fetched into
storage (:mod:`citoyen.services.media`); queue entries nobody acknowledged in time escalate
(:mod:`citoyen.services.queues`). Survey schedules come with their own module.
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
from citoyen.models import Conversation
from citoyen.services.dispatch import Dispatcher

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


class Worker:
    """Owns the scheduler; ``start(background=False)`` blocks until a signal stops it."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.scheduler = BackgroundScheduler(timezone="Africa/Bamako")
        # One dispatcher for the life of the process: it holds the rate-limit buckets.
        self.dispatcher = Dispatcher(runtime)
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
            self.dispatcher.run_once,
            "interval",
            seconds=1,
            id="dispatch_outbox",
            **{**common, "misfire_grace_time": 5},
        )

    def _module_jobs(self) -> None:
        """Jobs that modules declare (``scheduled_jobs(runtime)``), registered idempotently."""
        from citoyen.services import media, queues
        from citoyen.services.prompts import phone

        for job in [
            *media.scheduled_jobs(self.runtime),
            *queues.scheduled_jobs(self.runtime),
            *phone.scheduled_jobs(self.runtime),
        ]:
            self.scheduler.add_job(**job)

    def _plug_in_senders(self) -> None:
        """Channels whose outbox sender registers at start (SMS registers on import).

        Without credentials a channel registers nothing and its rows go to the log channel.
        """
        from citoyen.channels import telegram_sender

        telegram_sender.register(self.runtime)

    def start(self, background: bool) -> None:
        self._plug_in_senders()
        self._register()
        self._module_jobs()
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
