"""Retention: what a closed report keeps once its purpose is served (``citoyen purge``).

A report resolved or closed for ``CITOYEN_RETENTION_DAYS`` (default 365) loses everything that
could identify or expose its reporter, and keeps what statistics need:

- removed: the description and every answer given (free text, places typed), the recording URL,
  the recordings and media themselves (files deleted, provider references forgotten), the words of
  the conversation (inbound bodies, stored replies, conversation state), staff notes and replies on
  its timeline, the texts of messages queued to the reporter, and the link to the reporter;
- kept: reference, channel, language, category, urgency, area, anonymity flag, statuses and the
  dates of every event, queue entries (who acted, how fast), survey answers, the audit log.

The reporter's contact is then erased (its encrypted number replaced by a marker that decrypts to
nothing, its lookup hash by a random value, its other messages' words removed) once it has no
report left that is not purged, no open conversation, and has not written for the same period,
unless it opted out or was blocked (they keep their encrypted number, so the choice or the block
holds when they write again) or agreed to surveys (those need the number).

Everything for one report happens in one transaction, and the purge is idempotent (purged reports
carry ``purged_at``), so an interrupted run is finished by the next. The worker runs it daily
(:func:`scheduled_jobs`).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select, update

from citoyen.db import write_session
from citoyen.models import (
    Attachment,
    Contact,
    Conversation,
    Message,
    Outbox,
    Report,
    ReportEvent,
)
from citoyen.services.privacy import ERASED, is_erased

log = logging.getLogger(__name__)

FINAL_STATUSES = ("resolved", "closed")
OPEN_CONVERSATIONS = ("active", "waiting")
Progress = Callable[[int, int], None]


@dataclass
class PurgeResult:
    reports: int = 0
    attachments: int = 0
    files: int = 0
    contacts: int = 0

    def __str__(self) -> str:
        return (
            f"purged {self.reports} report(s), {self.attachments} recording(s) or media "
            f"({self.files} file(s) deleted); erased {self.contacts} contact(s)"
        )


def cutoff(days: int, now: datetime) -> datetime:
    return now - timedelta(days=days)


def due_reports(session: Session, days: int, now: datetime) -> list[int]:
    """Ids of the reports resolved or closed (last changed) more than ``days`` ago."""
    return list(
        session.exec(
            select(Report.id)
            .where(
                col(Report.status).in_(FINAL_STATUSES),
                col(Report.updated_at) <= cutoff(days, now),
                col(Report.purged_at).is_(None),
            )
            .order_by(col(Report.id))
        ).all()
    )


def purge(
    engine: Engine,
    instance_dir: Path,
    days: int,
    *,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> PurgeResult:
    """Purge every report due and erase the contacts left without purpose."""
    if days <= 0:
        raise ValueError("retention is off (0 days): nothing is purged")
    now = now or datetime.now(UTC)
    result = PurgeResult()
    with Session(engine) as session:
        ids = due_reports(session, days, now)
    for done, report_id in enumerate(ids, 1):
        with write_session(engine) as session:
            report = session.get(Report, report_id)
            if report is None or report.purged_at is not None:
                continue
            contact_id = report.contact_id
            _purge_report(session, report, Path(instance_dir), now, result)
            # In the same transaction: an interrupted run never leaves a contact unlinked from
            # its last report but not erased.
            contact = (
                session.get(Contact, contact_id, with_for_update=True)
                if contact_id is not None
                else None
            )
            if contact is not None and _erasable(session, contact, days, now):
                _erase_contact(session, contact)
                result.contacts += 1
        if progress is not None:
            progress(done, len(ids))
    if result.reports:
        log.info("retention: %s", result)
    return result


def _purge_report(
    session: Session, report: Report, instance_dir: Path, now: datetime, result: PurgeResult
) -> None:
    contact_id = report.contact_id
    report.description = None
    report.recording_url = None
    report.answers = {}
    report.contact_id = None
    report.purged_at = now
    # Not updated_at: the report's last real change stays its date for statistics.
    of_report = col(Attachment.report_id) == report.id
    if report.conversation_id is not None:
        of_report = of_report | (col(Attachment.conversation_id) == report.conversation_id)
    attachments = session.exec(select(Attachment).where(of_report)).all()
    for attachment in attachments:
        if attachment.local_path:
            path = instance_dir / attachment.local_path
            if path.is_file():
                path.unlink()
                result.files += 1
        attachment.local_path = None
        attachment.provider_ref = f"purged:{attachment.id}"
        attachment.status = "purged"
        attachment.error = None
        attachment.contact_id = None
        result.attachments += 1
    if report.conversation_id is not None:
        conversation = session.get(Conversation, report.conversation_id)
        if conversation is not None:
            conversation.state = {"status": conversation.status, "purged": True}
            conversation.menu = []
        session.exec(
            update(Message)
            .where(col(Message.conversation_id) == report.conversation_id)
            .values(body=None, reply=None)
        )
    session.exec(
        update(ReportEvent).where(col(ReportEvent.report_id) == report.id).values(note=None)
    )
    if contact_id is not None:
        # Status notices and staff replies about this report, queued to its reporter.
        session.exec(
            update(Outbox)
            .where(
                col(Outbox.contact_id) == contact_id,
                col(Outbox.payload)["report"].as_string() == report.reference,
                col(Outbox.status) != "pending",
            )
            .values(body=None)
        )
    session.add(
        ReportEvent(
            report_id=report.id,
            kind="purged",
            from_status=report.status,
            to_status=report.status,
            data={"retention": True},
            created_at=now,
        )
    )
    result.reports += 1


def _erasable(session: Session, contact: Contact, days: int, now: datetime) -> bool:
    if is_erased(contact.address_enc) or contact.opted_out or contact.blocked:
        return False  # the choice (or the block) must hold when they write again
    if contact.survey_consent:
        return False  # they asked to be surveyed: that needs their number
    if contact.last_seen_at > cutoff(days, now):
        return False
    reports = session.exec(
        select(func.count())
        .select_from(Report)
        .where(col(Report.contact_id) == contact.id, col(Report.purged_at).is_(None))
    ).one()
    if reports:
        return False
    open_conversations = session.exec(
        select(func.count())
        .select_from(Conversation)
        .where(
            col(Conversation.contact_id) == contact.id,
            col(Conversation.status).in_(OPEN_CONVERSATIONS),
        )
    ).one()
    return not open_conversations


def _erase_contact(session: Session, contact: Contact) -> None:
    """Forget the number for good: nothing left decrypts or hashes back to it."""
    contact.address_enc = ERASED
    # Random, so a new message from the same number makes a new contact, not linked to this one.
    contact.address_hash = f"erased:{secrets.token_hex(16)}"
    session.exec(
        update(Message).where(col(Message.contact_id) == contact.id).values(body=None, reply=None)
    )
    session.exec(
        update(Conversation)
        .where(col(Conversation.contact_id) == contact.id)
        .values(state={"purged": True}, menu=[])
    )
    session.exec(
        update(Outbox)
        .where(col(Outbox.contact_id) == contact.id, col(Outbox.status) != "pending")
        .values(body=None)
    )
    # Nothing can reach a number that is gone: messages still waiting fail, with the reason.
    session.exec(
        update(Outbox)
        .where(col(Outbox.contact_id) == contact.id, col(Outbox.status) == "pending")
        .values(body=None, status="failed", error="recipient erased by the retention purge")
    )


def run_scheduled_purge(runtime: Any) -> PurgeResult | None:
    """The worker's daily job: purge with the configured retention (nothing when it is 0)."""
    days = runtime.settings.retention_days
    if days <= 0:
        return None
    return purge(runtime.engine, runtime.settings.instance_dir, days)


def scheduled_jobs(runtime: Any) -> list[dict[str, Any]]:
    """APScheduler ``add_job`` keyword arguments for the worker (none when retention is off).

    Daily at 03:15 Africa/Bamako (the worker's time zone), when the service is quiet.
    """
    if runtime.settings.retention_days <= 0:
        return []
    return [
        {
            "func": run_scheduled_purge,
            "trigger": "cron",
            "hour": 3,
            "minute": 15,
            "args": [runtime],
            "id": "retention_purge",
            "name": "purge closed reports past the retention period",
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": 3600,
            "replace_existing": True,
        }
    ]
