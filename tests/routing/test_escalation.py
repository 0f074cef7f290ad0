"""Escalation of unacknowledged queue entries, driven by a fake clock (``now``).

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.models import QueueEntry, Report, ReportEvent, Stakeholder
from citoyen.runtime import Runtime
from citoyen.services import queues
from tests.routing.support import T0, entry_of, make_report, outbox, queue_codes, stakeholder_id


def escalate(rt: Runtime, at: timedelta) -> list[str]:
    """Run the escalation job at T0 + ``at``; return the codes of the entries it opened."""
    with write_session(rt.engine) as session:
        opened = queues.escalate_due(session, now=T0 + at)
        return [session.get(Stakeholder, e.stakeholder_id).code for e in opened]


def events(rt: Runtime, report: Report, kind: str) -> list[ReportEvent]:
    with Session(rt.engine) as session:
        return list(
            session.exec(
                select(ReportEvent)
                .where(ReportEvent.report_id == report.id, ReportEvent.kind == kind)
                .order_by(ReportEvent.id)
            ).all()
        )


def test_an_unacknowledged_emergency_escalates_after_its_sla(runtime: Runtime) -> None:
    report = make_report(runtime, category="theft", area="ML-BKO.commune-iv", urgency="emergency")
    assert queue_codes(runtime, report) == ["bko-police-c4"]
    alerts_before = len(outbox(runtime, kind="alert"))

    assert escalate(runtime, timedelta(minutes=14, seconds=59)) == []
    assert escalate(runtime, timedelta(minutes=15)) == ["bko-police-drp"]

    with Session(runtime.engine) as session:
        late = entry_of(session, report, "bko-police-c4")
        new = entry_of(session, report, "bko-police-drp")
    assert late.escalated_at == T0 + timedelta(minutes=15)
    assert late.status == "open"  # the commissariat can still take it in hand
    assert (new.via, new.escalation_level, new.escalated_from_id) == ("escalation", 1, late.id)
    assert new.chain == "police"
    assert new.due_at == T0 + timedelta(minutes=30)  # a new SLA from the escalation
    [event] = events(runtime, report, "escalated")
    assert event.stakeholder_id == new.stakeholder_id
    assert event.data["from"] == "bko-police-c4" and event.data["level"] == 1
    assert event.created_at == T0 + timedelta(minutes=15)
    # One alert to the district police's on-call phone, saying it was escalated.
    [alert] = outbox(runtime, kind="alert")[alerts_before:]
    assert runtime.vault.decrypt(alert.address_enc) == "tel:+22320200010"
    assert alert.body.startswith(f"ESCALADE citoyen - signalement {report.reference} : ")
    assert "avant le 02/03 09:30" in alert.body

    # Each overdue entry escalates once: running the job again changes nothing.
    assert escalate(runtime, timedelta(minutes=16)) == []
    # The escalated entry has its own deadline, then goes up the chain: the governor.
    assert escalate(runtime, timedelta(minutes=30)) == ["bko-gouvernorat"]
    # Then national moderation; then the chain is exhausted.
    assert escalate(runtime, timedelta(minutes=45)) == ["moderation"]
    assert escalate(runtime, timedelta(hours=3)) == []
    [overdue] = events(runtime, report, "overdue")
    assert overdue.data == {"stakeholder": "moderation", "level": 3, "already_with": []}
    assert queue_codes(runtime, report) == [
        "bko-police-c4",
        "bko-police-drp",
        "bko-gouvernorat",
        "moderation",
    ]


def test_acknowledged_entries_do_not_escalate(runtime: Runtime) -> None:
    report = make_report(runtime, category="violence", area="ML-BKO.commune-v")
    police = stakeholder_id(runtime, "bko-police-c5")
    with write_session(runtime.engine) as session:
        queues.acknowledge(
            session,
            session.get(Report, report.id),
            user_id=None,
            stakeholder_id=police,
            now=T0 + timedelta(hours=1),
        )
    # 48 h later the police entry is acknowledged; the CCS and the GBV service escalate to the
    # governor (default chain), who gets a single entry.
    assert escalate(runtime, timedelta(hours=48)) == ["bko-gouvernorat"]
    with Session(runtime.engine) as session:
        assert entry_of(session, report, "bko-police-c5").escalated_at is None
        assert entry_of(session, report, "bko-ccs-c5").escalated_at is not None
        assert entry_of(session, report, "bko-vbg").escalated_at is not None
    assert len(events(runtime, report, "escalated")) == 1


def test_resolved_reports_do_not_escalate(runtime: Runtime) -> None:
    report = make_report(runtime, category="theft", area="ML-4.san.fion", urgency="emergency")
    with write_session(runtime.engine) as session:
        queues.change_status(
            session, session.get(Report, report.id), "resolved", user_id=None, now=T0
        )
    assert escalate(runtime, timedelta(days=3)) == []
    assert events(runtime, report, "escalated") == []


def test_rural_chain_goes_to_the_legion_then_the_prefet(runtime: Runtime) -> None:
    report = make_report(runtime, category="theft", area="ML-4.san.fion")
    assert escalate(runtime, timedelta(hours=47)) == []
    assert escalate(runtime, timedelta(hours=48)) == ["seg-gendarmerie-legion"]
    assert escalate(runtime, timedelta(hours=96)) == ["seg-prefet-san"]
    with Session(runtime.engine) as session:
        prefet = entry_of(session, report, "seg-prefet-san")
    assert prefet.escalation_level == 2


def test_the_worker_job_and_its_schedule(runtime: Runtime) -> None:
    make_report(runtime, category="theft", area="ML-BKO.commune-i", urgency="emergency")
    assert queues.escalate_overdue(runtime, now=T0 + timedelta(minutes=10)) == 0
    assert queues.escalate_overdue(runtime, now=T0 + timedelta(minutes=20)) == 1
    with Session(runtime.engine) as session:
        assert len(session.exec(select(QueueEntry)).all()) == 2

    [job] = queues.scheduled_jobs(runtime)
    scheduler = BackgroundScheduler(timezone="Africa/Bamako")
    added = scheduler.add_job(**job)  # what the worker does with each dict
    assert added.id == "escalate_queues"
    assert added.func is queues.escalate_overdue and added.args == (runtime,)
    assert added.trigger.interval == timedelta(seconds=30)


def test_entries_whose_next_step_is_already_on_the_report_open_nothing_new(
    runtime: Runtime,
) -> None:
    report = make_report(
        runtime, category="armed_attack", area="ML-BKO.commune-iv", urgency="emergency"
    )
    assert queue_codes(runtime, report) == ["bko-police-c4", "bko-police-drp", "bko-ccs-c4"]
    # All three miss the deadline. The commissariat's next step (the district police) and the
    # council's (the governor, opened for the district police) are already on the report.
    assert escalate(runtime, timedelta(minutes=15)) == ["bko-gouvernorat"]
    overdue = {
        e.data["stakeholder"]: e.data["already_with"] for e in events(runtime, report, "overdue")
    }
    assert overdue == {"bko-police-c4": ["bko-police-drp"], "bko-ccs-c4": ["bko-gouvernorat"]}
    # The admin words these events itself, in the staff's language: no English note is stored.
    assert {e.note for e in events(runtime, report, "overdue")} == {None}
    assert len(events(runtime, report, "escalated")) == 1
