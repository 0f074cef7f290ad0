"""Report life: status changes with who/when/why, the citizen's notification, rerouting.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.models import Contact, QueueEntry, Report, ReportEvent
from citoyen.runtime import Runtime
from citoyen.services import queues
from citoyen.services.users import create_user
from tests.routing.support import T0, entry_of, make_report, outbox, queue_codes, stakeholder_id


def user(rt: Runtime, email: str, stakeholder: str | None = None, role: str = "agent") -> int:
    with write_session(rt.engine) as session:
        if stakeholder is None and role == "agent":
            role = "coordinator"
        # A coordinator without a stakeholder coordinates an area (here: Bamako).
        area = "ML-BKO" if role == "coordinator" and stakeholder is None else None
        return create_user(session, email, role, "a-long-password", stakeholder, area_code=area).id


def change(rt: Runtime, report: Report, to: str, at: timedelta = timedelta(hours=1), **kw):
    with write_session(rt.engine) as session:
        return queues.change_status(
            session, session.get(Report, report.id), to, now=T0 + at, **{"user_id": None, **kw}
        )


def notifications(rt: Runtime) -> list:
    return outbox(rt, kind="notification")


def reload(rt: Runtime, report: Report) -> Report:
    with Session(rt.engine) as session:
        return session.get(Report, report.id)


def test_report_life_records_who_when_and_why(runtime: Runtime) -> None:
    agent = user(runtime, "agent@police.ml", "bko-police-c4")
    report = make_report(runtime, category="theft", area="ML-BKO.commune-iv")
    change(runtime, report, "acknowledged", timedelta(minutes=5), user_id=agent, note="on it")
    change(runtime, report, "in_progress", timedelta(hours=2), user_id=agent)
    change(runtime, report, "resolved", timedelta(days=1), user_id=agent, note="bike returned")
    with Session(runtime.engine) as session:
        rows = session.exec(
            select(ReportEvent)
            .where(ReportEvent.report_id == report.id, ReportEvent.kind == "status_changed")
            .order_by(ReportEvent.id)
        ).all()
        police = entry_of(session, report, "bko-police-c4")
    assert [(e.from_status, e.to_status) for e in rows] == [
        ("new", "acknowledged"),
        ("acknowledged", "in_progress"),
        ("in_progress", "resolved"),
    ]
    assert [e.created_at for e in rows] == [
        T0 + timedelta(minutes=5),
        T0 + timedelta(hours=2),
        T0 + timedelta(days=1),
    ]
    assert {e.user_id for e in rows} == {agent}
    assert {e.stakeholder_id for e in rows} == {stakeholder_id(runtime, "bko-police-c4")}
    assert [e.note for e in rows] == ["on it", None, "bike returned"]
    assert reload(runtime, report).status == "resolved"
    assert police.status == "closed" and police.acknowledged_by == agent
    assert police.acknowledged_at == T0 + timedelta(minutes=5)
    assert len(notifications(runtime)) == 3


@pytest.mark.parametrize(
    ("start", "to", "reason", "message"),
    [
        ("new", "new", None, "a report cannot go from 'new' to 'new'"),
        ("new", "done", None, "unknown status 'done'"),
        ("new", "closed", None, "closing needs a reason"),
        ("new", "closed", "bored", "closing needs a reason"),
        ("new", "acknowledged", "spam", "a reason is only given when closing"),
        ("resolved", "acknowledged", None, "a report cannot go from 'resolved' to 'acknowledged'"),
        ("closed", "in_progress", None, "a report cannot go from 'closed' to 'in_progress'"),
        ("new", "closed", "not_responsible", "'not responsible' must say which stakeholder"),
        ("new", "closed", "duplicate", "closing as a duplicate needs the report it duplicates"),
    ],
)
def test_transitions_that_are_refused(
    runtime: Runtime, start: str, to: str, reason: str | None, message: str
) -> None:
    report = make_report(runtime)
    if start == "resolved":
        change(runtime, report, "resolved")
    elif start == "closed":
        change(runtime, report, "closed", reason="spam")
    before = len(notifications(runtime))
    with pytest.raises(queues.StatusError) as raised:
        change(runtime, report, to, reason=reason)
    assert str(raised.value).startswith(message)
    assert reload(runtime, report).status == start
    assert len(notifications(runtime)) == before


def test_a_status_change_tells_a_bambara_reporter_once_in_bambara(runtime: Runtime) -> None:
    report = make_report(runtime, category="theft", language="bm", channel="voice")
    event = change(runtime, report, "acknowledged")
    [message] = notifications(runtime)
    catalog = runtime.bundle.catalog
    assert message.body == catalog.render(
        "notify.acknowledged", "bm", {"reference": report.reference}
    )
    assert message.channel == "sms"  # voice reporters hear back by SMS
    assert message.contact_id == report.contact_id
    assert message.payload == {"report": report.reference, "status": "acknowledged"}
    assert event.data == {"notified": 1}


def test_category_and_reason_variants_with_a_generic_fallback(runtime: Runtime) -> None:
    catalog = runtime.bundle.catalog
    police = {"police": "17", "fire": "18"}
    armed = make_report(runtime, category="armed_attack", language="en", channel="telegram")
    change(runtime, armed, "acknowledged")
    change(runtime, armed, "in_progress")
    change(runtime, armed, "closed", reason="no_further_action")
    spam = make_report(runtime, category="other", language="fr")
    change(runtime, spam, "closed", reason="spam")
    bodies = [(m.channel, m.body) for m in notifications(runtime)]
    ref = armed.reference
    assert bodies == [
        (
            "telegram",
            catalog.render("notify.acknowledged.armed_attack", "en", {"reference": ref, **police}),
        ),
        ("telegram", catalog.render("notify.in_progress", "en", {"reference": ref})),
        ("telegram", catalog.render("notify.closed.no_further_action", "en", {"reference": ref})),
        ("sms", catalog.render("notify.closed", "fr", {"reference": spam.reference})),
    ]
    assert all("{" not in body for _c, body in bodies)


@pytest.mark.parametrize("flag", ["opted_out", "blocked"])
def test_reporters_who_asked_not_to_be_contacted_are_not_written_to(
    runtime: Runtime, flag: str
) -> None:
    report = make_report(runtime, language="bm")
    with write_session(runtime.engine) as session:
        setattr(session.get(Contact, report.contact_id), flag, True)
    event = change(runtime, report, "resolved")
    assert notifications(runtime) == []
    assert event.data == {"notified": 0, "not_notified": {flag: 1}}
    assert reload(runtime, report).status == "resolved"


def test_acknowledging_marks_the_acting_stakeholders_entry_only(runtime: Runtime) -> None:
    report = make_report(runtime, category="violence", area="ML-BKO.commune-v")
    vbg = user(runtime, "ecoute@vbg.ml", "bko-vbg")
    police = user(runtime, "agent@police.ml", "bko-police-c5")
    with write_session(runtime.engine) as session:
        queues.acknowledge(session, session.get(Report, report.id), user_id=vbg, now=T0)
    with write_session(runtime.engine) as session:
        event = queues.acknowledge(
            session, session.get(Report, report.id), user_id=police, now=T0 + timedelta(minutes=1)
        )
    assert event.kind == "acknowledged"  # the report was already acknowledged: no new status
    with Session(runtime.engine) as session:
        states = {
            s.code: e.status for e, s in queues.entries(session, session.get(Report, report.id))
        }
    assert states == {
        "bko-police-c5": "acknowledged",
        "bko-ccs-c5": "open",
        "bko-vbg": "acknowledged",
    }
    assert len(notifications(runtime)) == 1  # the citizen is told once


def test_staff_acting_for_no_stakeholder_acknowledge_every_entry(runtime: Runtime) -> None:
    report = make_report(runtime, category="violence", area="ML-BKO.commune-v")
    coordinator = user(runtime, "coord@citoyen.ml", role="coordinator")
    change(runtime, report, "acknowledged", user_id=coordinator)
    with Session(runtime.engine) as session:
        states = {e.status for e, _s in queues.entries(session, session.get(Report, report.id))}
    assert states == {"acknowledged"}


def test_a_resolved_report_can_be_reopened(runtime: Runtime) -> None:
    report = make_report(runtime, category="theft", area="ML-BKO.commune-iv")
    change(runtime, report, "resolved")
    change(runtime, report, "in_progress", timedelta(days=2), note="stolen again")
    with Session(runtime.engine) as session:
        assert entry_of(session, report, "bko-police-c4").status == "acknowledged"
    assert [m.payload["status"] for m in notifications(runtime)] == ["resolved", "in_progress"]


def test_not_responsible_reroutes_instead_of_closing(runtime: Runtime) -> None:
    agent = user(runtime, "agent@police.ml", "bko-police-c4")
    report = make_report(runtime, category="theft", area="ML-BKO.commune-iv")
    event = change(
        runtime, report, "closed", reason="not_responsible", user_id=agent, note="commune V"
    )
    assert event.kind == "rerouted"
    assert (event.from_status, event.to_status, event.user_id, event.note) == (
        "new",
        "new",
        agent,
        "commune V",
    )
    assert event.data == {
        "reason": "not_responsible",
        "declined_by": "bko-police-c4",
        "to": ["bko-police-drp"],
    }
    assert reload(runtime, report).status == "new"  # not closed
    assert notifications(runtime) == []  # for the citizen the report is still being handled
    with Session(runtime.engine) as session:
        assert entry_of(session, report, "bko-police-c4").status == "declined"
        drp = entry_of(session, report, "bko-police-drp")
    assert (drp.status, drp.via) == ("open", "reroute")
    assert drp.due_at == T0 + timedelta(hours=1, days=2)

    # The district police declines too: nobody of the rule is left, moderation takes it.
    drp_id = stakeholder_id(runtime, "bko-police-drp")
    change(runtime, report, "closed", reason="not_responsible", stakeholder_id=drp_id)
    assert queue_codes(runtime, report) == ["bko-police-c4", "bko-police-drp", "moderation"]
    # Even moderation declining leaves the report in the moderation queue: never dropped.
    change(
        runtime,
        report,
        "closed",
        reason="not_responsible",
        stakeholder_id=stakeholder_id(runtime, "moderation"),
    )
    with Session(runtime.engine) as session:
        open_entries = session.exec(
            select(QueueEntry).where(QueueEntry.report_id == report.id, QueueEntry.status == "open")
        ).all()
    assert len(open_entries) == 1
    assert open_entries[0].stakeholder_id == stakeholder_id(runtime, "moderation")


def test_declining_leaves_the_others_on_the_report(runtime: Runtime) -> None:
    report = make_report(runtime, category="violence", area="ML-BKO.commune-v")
    event = change(
        runtime,
        report,
        "closed",
        reason="not_responsible",
        stakeholder_id=stakeholder_id(runtime, "bko-ccs-c5"),
    )
    # The police and the GBV service are still on it; the council's place goes to nobody new
    # (the rule's nearest mayor/CCS was the one that declined).
    assert event.data["to"] == []
    assert queue_codes(runtime, report) == ["bko-police-c5", "bko-ccs-c5", "bko-vbg"]
