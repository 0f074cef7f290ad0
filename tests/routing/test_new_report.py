"""Making and routing a new report in a handful of statements, without changing what it does.

The report, its entries, its alerts and its events are each one INSERT; what could fail for a
routing reason is worked out before anything is written. These tests pin what those shortcuts
must keep: one entry per stakeholder, the alert counts in the events, the timeline's order,
references drawn again on a collision, the moderation queue when routing fails.
Every test runs on SQLite and PostgreSQL (the ``settings`` fixture).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from citoyen.models import Area, Outbox, QueueEntry, Report, ReportEvent, Stakeholder
from citoyen.runtime import Runtime
from citoyen.services import effects, queues
from tests.routing.support import (
    FIXTURES,
    T0,
    count,
    flows_dir,
    make_report,
    new_conversation,
    outbox,
    queue_codes,
)


def _use(runtime: Runtime, tmp_path: Path, **files: str) -> None:
    """Route with the base fixture configuration, some files replaced."""
    folder = flows_dir(tmp_path, FIXTURES / "base", **files)
    runtime.settings = runtime.settings.model_copy(update={"flows_dir": folder})
    queues.sync_from_settings(runtime)


def _events(runtime: Runtime, report: Report) -> list[ReportEvent]:
    with Session(runtime.engine) as session:
        return list(
            session.exec(
                select(ReportEvent)
                .where(ReportEvent.report_id == report.id)
                .order_by(ReportEvent.id)
            ).all()
        )


def test_the_timeline_starts_with_created_then_one_routed_event_per_queue(
    runtime: Runtime,
) -> None:
    report = make_report(runtime, category="violence", area="ML-BKO.commune-v")
    events = _events(runtime, report)
    assert [e.kind for e in events] == ["created", "routed", "routed", "routed"]
    created = events[0]
    assert (created.to_status, created.created_at) == ("new", T0)
    assert created.data == {"channel": "sms", "urgency": "normal", "incomplete": False}
    assert [e.data["stakeholder"] for e in events[1:]] == queue_codes(runtime, report)
    assert all(e.data["alerts"] == 0 and e.created_at == T0 for e in events[1:])


def test_a_stakeholder_a_rule_names_twice_gets_one_entry_event_and_alert(
    runtime: Runtime, tmp_path: Path
) -> None:
    routing = (
        (FIXTURES / "base" / "routing.yaml")
        .read_text()
        .replace(
            "to: [{nearest: police}, {nearest: mayor_ccs}]", "to: [{nearest: police}, police-c1]"
        )
    )
    _use(runtime, tmp_path, **{"routing.yaml": routing})
    report = make_report(runtime, category="violence", area="ML-BKO.commune-i", urgency="emergency")
    assert queue_codes(runtime, report) == ["police-c1"]
    routed = [e for e in _events(runtime, report) if e.kind == "routed"]
    assert [(e.data["stakeholder"], e.data["alerts"]) for e in routed] == [("police-c1", 1)]
    assert len(outbox(runtime, kind="alert")) == 1


def test_an_alert_already_queued_is_not_counted_again(runtime: Runtime, tmp_path: Path) -> None:
    # A report id used again (SQLite reuses the highest id once its row is gone) finds the
    # alert keys of the report that had it: they stay as they are and count as not new.
    report = make_report(runtime, category="armed_attack", area="ML-BKO.commune-iv")
    with Session(runtime.engine) as session:
        session.add(
            Outbox(
                idempotency_key=f"alert:{report.id + 1}:emergency:"
                + "x" * 32,  # not an address of the next report's stakeholders
                channel="sms",
                kind="alert",
                address_enc="x",
            )
        )
        session.commit()
    again = make_report(
        runtime, category="armed_attack", area="ML-BKO.commune-iv", urgency="emergency"
    )
    assert again.id == report.id + 1
    routed = [e for e in _events(runtime, again) if e.kind == "routed"]
    assert sum(e.data["alerts"] for e in routed) == 2 == len(outbox(runtime, kind="alert")) - 1


def test_a_reference_already_taken_is_drawn_again(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = make_report(runtime)
    drawn: Iterator[str] = iter([first.reference, first.reference, "123-4566"])
    monkeypatch.setattr(effects, "new_reference", lambda: next(drawn))
    second = make_report(runtime, urgency="emergency")
    assert second.reference == "123-4566" and second.id != first.id
    assert count(runtime, Report) == 2
    assert queue_codes(runtime, second) == queue_codes(runtime, first)
    assert all(a.payload["report"] == "123-4566" for a in outbox(runtime, kind="alert"))


def test_a_reference_that_never_comes_free_fails_loudly(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = make_report(runtime)
    monkeypatch.setattr(effects, "new_reference", lambda: first.reference)
    with pytest.raises(RuntimeError, match="unique report reference"):
        make_report(runtime)
    assert count(runtime, Report) == 1


def test_a_configured_stakeholder_made_inactive_is_active_again_when_routed_to(
    runtime: Runtime,
) -> None:
    with Session(runtime.engine) as session:
        row = session.exec(select(Stakeholder).where(Stakeholder.code == "bko-police-c4")).one()
        row.active = False
        session.commit()
    report = make_report(runtime, category="theft", area="ML-BKO.commune-iv")
    assert queue_codes(runtime, report) == ["bko-police-c4"]
    with Session(runtime.engine) as session:
        row = session.exec(select(Stakeholder).where(Stakeholder.code == "bko-police-c4")).one()
        assert row.active


def test_an_area_the_cached_copy_lacks_is_found_in_the_database(runtime: Runtime) -> None:
    make_report(runtime)  # the areas are cached
    # (Areas are only ever added by the seed and imports, never beside a report; this one is
    # added in the report's own transaction to be sure the cache does not have it.)
    with Session(runtime.engine, expire_on_commit=False) as session:
        parent = session.exec(select(Area).where(Area.code == "ML-BKO.commune-iv")).one()
        area = Area(code="ML-BKO.commune-iv.new", name="Nouveau", level="quartier")
        area.parent_id = parent.id
        session.add(area)
        session.flush()
        contact, conversation = new_conversation(session, runtime)
        report = effects.create_report(
            session,
            {"category": "theft", "place": area.code, "urgency": "emergency"},
            contact=contact,
            conversation=conversation,
            flow=None,
            channel="sms",
            now=T0,
        )
        assert report.area_id == area.id
        session.commit()
    # Its label comes from the database too (routing may not know it yet: the area tree is
    # that of the menus, rechecked every few seconds).
    [alert] = outbox(runtime, kind="alert")
    assert "Nouveau, Commune IV, Bamako" in alert.body


def test_a_report_is_made_and_routed_in_a_handful_of_statements(runtime: Runtime) -> None:
    make_report(runtime, category="armed_attack", area="ML-BKO.commune-iv", urgency="emergency")
    statements: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    with Session(runtime.engine, expire_on_commit=False) as session:
        contact, conversation = new_conversation(session, runtime)
        sa.event.listen(runtime.engine, "before_cursor_execute", note)
        try:
            report = effects.create_report(
                session,
                {"category": "armed_attack", "place": "ML-BKO.commune-iv", "urgency": "emergency"},
                contact=contact,
                conversation=conversation,
                flow=None,
                channel="sms",
                now=T0,
            )
        finally:
            sa.event.remove(runtime.engine, "before_cursor_execute", note)
        session.commit()
    assert queue_codes(runtime, report) == ["bko-police-c4", "bko-police-drp", "bko-ccs-c4"]
    assert count(runtime, QueueEntry, QueueEntry.report_id == report.id) == 3
    # The report, its stakeholders, their entries, the alerts, the events (and the areas' change
    # marker when this process last looked more than a few seconds ago): no savepoint.
    assert statements.count("INSERT") == 4 and statements.count("SELECT") <= 2, statements
    assert len(statements) <= 6, statements
