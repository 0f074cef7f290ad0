"""The retention purge: closed reports lose what identifies or exposes the reporter, statistics
stay, and the reporter's number is erased when nothing needs it any more."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlmodel import Session, select

from citoyen.cli import main
from citoyen.config import Settings
from citoyen.db import get_engine, write_session
from citoyen.models import (
    Attachment,
    Contact,
    Conversation,
    Message,
    Outbox,
    Report,
    ReportEvent,
)
from citoyen.services.contacts import find_contact, get_or_create_contact
from citoyen.services.privacy import Vault, is_erased
from citoyen.services.retention import purge, scheduled_jobs

KEY = "q3zkx8cQoB9o6c1ZCqbsb9Uu3mC1uHnP0E0y0F4l1yM="
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=400)


def _report(engine, instance: Path, number: str, ref: str, status: str, when: datetime) -> int:  # type: ignore[no-untyped-def]
    """A report as a conversation leaves it: words, a recording on disk, timeline, notices."""
    vault = Vault(KEY)
    with write_session(engine) as session:
        contact, _ = get_or_create_contact(session, vault, number, when)
        conversation = Conversation(
            contact_id=contact.id,
            channel="sms",
            flow_id="report",
            flow_version="v1",
            node="done",
            status="completed",
            state={"answers": {"description": "les hommes armés au puits de Kalaban"}},
        )
        session.add(conversation)
        session.flush()
        session.add(
            Message(
                contact_id=contact.id,
                conversation_id=conversation.id,
                channel="sms",
                direction="in",
                body="les hommes armés au puits de Kalaban",
                created_at=when,
            )
        )
        report = Report(
            reference=ref,
            contact_id=contact.id,
            conversation_id=conversation.id,
            channel="sms",
            category="armed_group",
            urgency="high",
            description="les hommes armés au puits de Kalaban",
            recording_url="https://api.twilio.com/recordings/RE1",
            answers={"description": "les hommes armés au puits de Kalaban"},
            anonymous=False,
            status=status,
            created_at=when,
            updated_at=when,
        )
        session.add(report)
        session.flush()
        path = instance / "media" / "voice" / f"{ref}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"RIFF voice")
        session.add(
            Attachment(
                report_id=report.id,
                conversation_id=conversation.id,
                contact_id=contact.id,
                channel="voice",
                kind="recording",
                provider_ref=f"RE{ref}",
                local_path=str(path.relative_to(instance)),
                status="fetched",
                duration_seconds=31,
            )
        )
        session.add(
            ReportEvent(report_id=report.id, kind="note", note="le voisin du chef", created_at=when)
        )
        session.add(
            Outbox(
                idempotency_key=f"notify:{ref}",
                kind="notification",
                channel="sms",
                contact_id=contact.id,
                body=f"Votre signalement {ref} est résolu.",
                payload={"report": ref, "status": status},
                status="sent",
            )
        )
        return report.id


def test_purge_removes_identity_and_words_and_keeps_statistics(db_url: str, tmp_path: Path) -> None:
    engine = get_engine(db_url)
    instance = tmp_path / "instance"
    old_closed = _report(engine, instance, "+22376500001", "111-1111", "resolved", OLD)
    recent = _report(
        engine, instance, "+22376500002", "222-2222", "closed", NOW - timedelta(days=3)
    )
    still_open = _report(engine, instance, "+22376500003", "333-3333", "in_progress", OLD)

    seen: list[tuple[int, int]] = []
    result = purge(engine, instance, 365, now=NOW, progress=lambda d, t: seen.append((d, t)))
    assert (result.reports, result.attachments, result.files, result.contacts) == (1, 1, 1, 1)
    assert seen == [(1, 1)]

    vault = Vault(KEY)
    with Session(engine) as session:
        report = session.get(Report, old_closed)
        assert report is not None and report.purged_at is not None
        assert (report.description, report.recording_url, report.answers) == (None, None, {})
        assert report.contact_id is None
        # Statistics keep what they count.
        assert (report.category, report.urgency, report.status) == (
            "armed_group",
            "high",
            "resolved",
        )
        assert report.created_at == OLD
        attachment = session.exec(
            select(Attachment).where(Attachment.report_id == old_closed)
        ).one()
        assert attachment.local_path is None and attachment.status == "purged"
        assert attachment.provider_ref.startswith("purged:") and attachment.duration_seconds == 31
        assert not (instance / "media" / "voice" / "111-1111.wav").exists()
        notes = session.exec(
            select(ReportEvent.note).where(ReportEvent.report_id == old_closed)
        ).all()
        assert set(notes) == {None}
        kinds = session.exec(
            select(ReportEvent.kind).where(ReportEvent.report_id == old_closed)
        ).all()
        assert "purged" in kinds
        bodies = session.exec(
            select(Message.body).where(Message.conversation_id == report.conversation_id)
        ).all()
        assert set(bodies) == {None}
        conversation = session.get(Conversation, report.conversation_id)
        assert "answers" not in conversation.state
        outbox = session.exec(
            select(Outbox).where(Outbox.idempotency_key == "notify:111-1111")
        ).one()
        assert outbox.body is None
        # The reporter's number is gone: no contact is found for it, nothing decrypts.
        assert find_contact(session, vault, "+22376500001") is None
        erased = session.get(Contact, outbox.contact_id)
        assert erased is not None and is_erased(erased.address_enc)

        # The recent and the open report are untouched.
        for report_id in (recent, still_open):
            kept = session.get(Report, report_id)
            assert kept is not None and kept.purged_at is None
            assert kept.description and kept.contact_id is not None
        assert find_contact(session, vault, "+22376500002") is not None

    again = purge(engine, instance, 365, now=NOW)
    assert (again.reports, again.contacts) == (0, 0)


def test_contacts_whose_choice_must_hold_keep_their_number(db_url: str, tmp_path: Path) -> None:
    """Opted out, blocked, surveyed, or with another report not yet purged: not erased."""
    engine = get_engine(db_url)
    instance = tmp_path / "instance"
    numbers = ["+22376600001", "+22376600002", "+22376600003", "+22376600004"]
    for i, number in enumerate(numbers):
        _report(engine, instance, number, f"40{i}-0000", "closed", OLD)
    _report(engine, instance, numbers[3], "499-9999", "new", OLD)
    vault = Vault(KEY)
    with write_session(engine) as session:
        find_contact(session, vault, numbers[0]).opted_out = True
        find_contact(session, vault, numbers[1]).blocked = True
        find_contact(session, vault, numbers[2]).survey_consent = True
    result = purge(engine, instance, 365, now=NOW)
    assert (result.reports, result.contacts) == (4, 0)
    with Session(engine) as session:
        for number in numbers:
            contact = find_contact(session, vault, number)
            assert contact is not None and vault.decrypt(contact.address_enc) == f"tel:{number}"


def test_purge_command_and_scheduled_job(settings: Settings) -> None:
    from citoyen import db
    from citoyen.runtime import Runtime

    db.upgrade(settings.resolved_database_url)
    engine = get_engine(settings.resolved_database_url)
    _report(engine, settings.instance_dir, "+22376700001", "555-5555", "resolved", OLD)
    runner = CliRunner()
    dry = runner.invoke(main, ["purge", "--dry-run"], obj={"settings": settings})
    assert dry.exit_code == 0, dry.output
    assert "1 report(s) resolved or closed more than 365 days ago would be purged" in dry.output
    done = runner.invoke(main, ["purge"], obj={"settings": settings})
    assert done.exit_code == 0, done.output
    out = " ".join(done.output.split())
    assert "purged 1 report(s)" in out and "erased 1 contact(s)" in out

    jobs = scheduled_jobs(Runtime(settings))
    assert [j["id"] for j in jobs] == ["retention_purge"]
    assert jobs[0]["trigger"] == "cron"
    off = settings.model_copy(update={"retention_days": 0})
    assert scheduled_jobs(Runtime(off)) == []
    refused = runner.invoke(main, ["purge"], obj={"settings": off})
    assert refused.exit_code != 0 and "retention is off" in refused.output
