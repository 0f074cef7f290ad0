"""Routing a new report into queues, emergency alerts, and loading stakeholders into the database.

Every test runs on SQLite and PostgreSQL (the ``settings`` fixture).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.models import Contact, Outbox, QueueEntry, Report, ReportEvent, Stakeholder
from citoyen.runtime import Runtime
from citoyen.services import queues
from citoyen.services.privacy import alias_label
from citoyen.services.queues import routes
from tests.routing.support import (
    FIXTURES,
    LOCALES,
    T0,
    count,
    flows_dir,
    make_report,
    new_conversation,
    outbox,
    queue_codes,
)


def test_each_stakeholder_gets_its_own_entry_and_event(runtime: Runtime) -> None:
    report = make_report(runtime, category="violence", area="ML-BKO.commune-v")
    assert queue_codes(runtime, report) == ["bko-police-c5", "bko-ccs-c5", "bko-vbg"]
    with Session(runtime.engine) as session:
        rows = queues.entries(session, report)
        events = session.exec(
            select(ReportEvent)
            .where(ReportEvent.report_id == report.id, ReportEvent.kind == "routed")
            .order_by(ReportEvent.id)
        ).all()
    for entry, _stakeholder in rows:
        assert entry.status == "open" and entry.via == "rule" and entry.escalation_level == 0
        assert entry.due_at == T0.replace(day=T0.day + 2)  # normal: 48 h
        assert entry.rule_line is not None
    assert [e.stakeholder_id for e in events] == [s.id for _e, s in rows]
    assert [e.data["stakeholder"] for e in events] == ["bko-police-c5", "bko-ccs-c5", "bko-vbg"]
    # Not an emergency: nobody is alerted.
    assert outbox(runtime) == []


def test_routing_is_in_the_transaction_that_creates_the_report(runtime: Runtime) -> None:
    from citoyen.services import effects

    with Session(runtime.engine) as session:
        contact, conversation = new_conversation(session, runtime)
        effects.create_report(
            session,
            {"category": "armed_attack", "place": "ML-BKO.commune-ii", "urgency": "emergency"},
            contact=contact,
            conversation=conversation,
            flow=None,
            channel="sms",
            now=T0,
        )
        assert session.exec(select(QueueEntry)).all()  # visible inside the transaction
        session.rollback()  # the report is not committed: neither are its entries or alerts
    assert count(runtime, Report) == count(runtime, QueueEntry) == count(runtime, Outbox) == 0


def test_emergency_alerts_each_on_call_address_once_without_the_reporter(
    runtime: Runtime,
) -> None:
    address = "+22377123456"
    report = make_report(
        runtime,
        category="armed_attack",
        area="ML-BKO.commune-iv",
        urgency="emergency",
        address=address,
    )
    # Police of Commune IV, district police (urgency-specific rule), CCS (no on-call address).
    assert queue_codes(runtime, report) == ["bko-police-c4", "bko-police-drp", "bko-ccs-c4"]
    alerts = outbox(runtime, kind="alert")
    assert len(alerts) == 2
    decrypted = sorted(runtime.vault.decrypt(a.address_enc) for a in alerts)
    assert decrypted == ["tel:+22320200010", "tel:+22320200014"]
    with Session(runtime.engine) as session:
        contact = session.exec(select(Contact)).one()
        catalog = runtime.bundle.catalog
        expected = catalog.render(
            "alert.emergency",
            "fr",
            {
                "reference": report.reference,
                "category": catalog.render("report.category.armed_attack", "fr"),
                "place": "Commune IV, Bamako",
                "urgency": catalog.render("alert.urgency.emergency", "fr"),
                "deadline": "02/03 09:15",
            },
        )
    for alert in alerts:
        assert alert.channel == "sms" and alert.contact_id is None and alert.status == "pending"
        assert alert.body == expected
        shown = f"{alert.body} {alert.payload} {alert.idempotency_key}"
        for secret in (
            address,
            address.removeprefix("+"),
            address[-8:],
            alias_label(contact.alias),
            str(contact.alias),
        ):
            assert secret not in shown
    # Routing the same report again (a retry) queues nothing more.
    with Session(runtime.engine) as session:
        queues.route_report(session, session.get(Report, report.id), now=T0)
        session.commit()
    assert len(outbox(runtime, kind="alert")) == 2


def test_stakeholders_sharing_an_on_call_address_alert_it_once(
    runtime: Runtime, tmp_path: Path
) -> None:
    shared = (
        (FIXTURES / "base" / "stakeholders.yaml")
        .read_text()
        .replace('"tel:+22320200002"', '"tel:+22320200001"')
    )
    routing = (
        (FIXTURES / "base" / "routing.yaml")
        .read_text()
        .replace("to: [{nearest: police}, {nearest: mayor_ccs}]", "to: [police-c1, police-bko]")
    )
    folder = flows_dir(tmp_path, **{"stakeholders.yaml": shared, "routing.yaml": routing})
    runtime.settings = runtime.settings.model_copy(update={"flows_dir": folder})
    queues.sync_from_settings(runtime)
    report = make_report(runtime, category="violence", area="ML-BKO.commune-i", urgency="emergency")
    assert queue_codes(runtime, report) == ["police-c1", "police-bko"]
    [alert] = outbox(runtime, kind="alert")
    assert runtime.vault.decrypt(alert.address_enc) == "tel:+22320200001"
    assert alert.payload["stakeholder"] == "police-c1"
    # The first stakeholder's event counts the alert, the other's does not.
    with Session(runtime.engine) as session:
        routed = session.exec(
            select(ReportEvent)
            .where(ReportEvent.report_id == report.id, ReportEvent.kind == "routed")
            .order_by(ReportEvent.id)
        ).all()
    assert [(e.data["stakeholder"], e.data["alerts"]) for e in routed] == [
        ("police-c1", 1),
        ("police-bko", 0),
    ]


def test_telegram_on_call_addresses_get_telegram_alerts(runtime: Runtime) -> None:
    # Other is routed to moderation, whose on-call address is a Telegram chat.
    report = make_report(runtime, category="other", area="ML-BKO.commune-i", urgency="emergency")
    assert queue_codes(runtime, report) == ["moderation"]
    [alert] = outbox(runtime, kind="alert")
    assert alert.channel == "telegram"
    assert runtime.vault.decrypt(alert.address_enc) == "telegram:-1000000000001"


@pytest.mark.parametrize(
    ("category", "area"),
    [(None, "ML-BKO.commune-i"), ("theft", None), ("theft", "ML-7.gao.gao")],
)
def test_reports_no_rule_takes_go_to_moderation(
    runtime: Runtime, category: str | None, area: str | None
) -> None:
    report = make_report(runtime, category=category, area=area)
    assert queue_codes(runtime, report) == ["moderation"]


# A bug in the routing table, or in the alerts' texts: either way nothing of the routing was
# written, and the report is in the moderation queue.
@pytest.mark.parametrize("part", ["resolve", "_alert_rows"])
def test_a_report_is_never_dropped_even_when_routing_breaks(
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    part: str,
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in the routing table")

    monkeypatch.setattr(routes, part, broken)
    report = make_report(runtime, category="violence", area="ML-BKO.commune-v", urgency="emergency")
    assert queue_codes(runtime, report) == ["moderation"]
    with Session(runtime.engine) as session:
        events = session.exec(
            select(ReportEvent).where(ReportEvent.report_id == report.id).order_by(ReportEvent.id)
        ).all()
    assert [e.kind for e in events] == ["created", "routed"]
    assert events[1].note == "routing failed: see the service log"
    assert outbox(runtime) == []
    assert "routing report" in caplog.text and "a bug in the routing table" in caplog.text


def test_configured_stakeholders_missing_from_the_database_still_get_their_entries(
    settings: object,
) -> None:
    from citoyen.services.areas.seeding import seed_shipped_areas

    rt = Runtime(settings)  # migrated and seeded, but no `stakeholders sync` (not ensure_ready)
    rt.migrate()
    with write_session(rt.engine) as session:
        seed_shipped_areas(session)
    queues.install(rt)
    report = make_report(rt, category="theft", area="ML-4.san.fion")
    assert queue_codes(rt, report) == ["seg-gendarmerie-san"]
    with Session(rt.engine) as session:
        row = session.exec(
            select(Stakeholder).where(Stakeholder.code == "seg-gendarmerie-san")
        ).one()
    assert (row.kind, row.on_call) == ("gendarmerie", [])
    # The sync fills in the on-call addresses of the row it finds.
    assert queues.sync_from_settings(rt).updated >= 1
    with Session(rt.engine) as session:
        row = session.exec(
            select(Stakeholder).where(Stakeholder.code == "seg-gendarmerie-san")
        ).one()
    assert [rt.vault.decrypt(i["address_enc"]) for i in row.on_call] == ["tel:+22320200036"]


def test_sync_creates_updates_and_deactivates(runtime: Runtime, tmp_path: Path) -> None:
    with Session(runtime.engine) as session:
        rows = {s.code: s for s in session.exec(select(Stakeholder)).all()}
    assert len(rows) == 52 and all(s.active for s in rows.values())
    police = rows["bko-police-c4"]
    assert police.kind == "police" and police.area_id is not None
    [on_call] = police.on_call
    assert on_call["channel"] == "sms" and on_call["hint"] == "tel:…14"
    assert "22320200014" not in str(police.on_call)  # encrypted at rest
    assert runtime.vault.decrypt(on_call["address_enc"]) == "tel:+22320200014"

    # Same files again: nothing changes, ciphertexts included.
    again = queues.sync_from_settings(runtime)
    assert (again.created, again.updated, again.deactivated, again.unchanged) == (0, 0, 0, 52)
    with Session(runtime.engine) as session:
        same = session.exec(select(Stakeholder).where(Stakeholder.code == "bko-police-c4")).one()
    assert same.on_call == police.on_call

    # A smaller configuration: renamed, new and removed stakeholders.
    text = (
        (FIXTURES / "base" / "stakeholders.yaml")
        .read_text()
        .replace("name: Moderation", "name: Modération")
    )
    folder = flows_dir(
        tmp_path,
        **{
            "stakeholders.yaml": text,
            "routing.yaml": (FIXTURES / "base" / "routing.yaml").read_text(),
        },
    )
    runtime.settings = runtime.settings.model_copy(update={"flows_dir": folder})
    result = queues.sync_from_settings(runtime)
    assert (result.created, result.updated, result.deactivated) == (4, 1, 51)
    with Session(runtime.engine) as session:
        active = set(session.exec(select(Stakeholder.code).where(Stakeholder.active)).all())
        assert active == {"moderation", "police-bko", "police-c1", "ccs-c1", "pc"}
        assert session.exec(select(Stakeholder).where(Stakeholder.code == "bko-police-c4")).one()


def test_sync_refuses_areas_the_database_does_not_have(runtime: Runtime) -> None:
    config = queues.router_for_settings(runtime.settings).config
    from dataclasses import replace

    bad = replace(
        config,
        stakeholders={
            **config.stakeholders,
            "x": replace(config.stakeholders["moderation"], code="x", area="ML-BKO.commune-ix"),
        },
    )
    with Session(runtime.engine) as session, pytest.raises(queues.SyncError) as raised:
        queues.sync_stakeholders(session, bad, runtime.vault)
    assert raised.value.problems == ["stakeholder 'x': unknown area 'ML-BKO.commune-ix'"]


def test_stakeholders_sync_command(settings: object) -> None:
    from click.testing import CliRunner

    from citoyen.cli import main
    from citoyen.services.areas.seeding import seed_shipped_areas

    rt = Runtime(settings)  # migrated and seeded; first start's sync not run yet
    rt.migrate()
    with write_session(rt.engine) as session:
        seed_shipped_areas(session)
    runner = CliRunner()
    result = runner.invoke(main, ["stakeholders", "sync"], obj={"settings": settings})
    assert result.exit_code == 0, result.output
    assert "stakeholders: 52 created, 0 updated, 0 unchanged, 0 deactivated" in result.output
    again = runner.invoke(main, ["stakeholders", "sync"], obj={"settings": settings})
    assert "stakeholders: 0 created, 0 updated, 52 unchanged, 0 deactivated" in again.output
    broken = settings.model_copy(  # type: ignore[attr-defined]
        update={
            "flows_dir": flows_dir(
                Path(str(settings.instance_dir)),
                FIXTURES / "base",  # type: ignore[attr-defined]
                FIXTURES / "broken" / "unknown_stakeholder",
            )
        }
    )
    result = runner.invoke(main, ["stakeholders", "sync"], obj={"settings": broken})
    assert result.exit_code == 1
    assert "unknown stakeholder 'pcc'" in " ".join(result.output.split())


def test_queue_lists_a_stakeholders_entries_most_urgent_first(runtime: Runtime) -> None:
    from datetime import timedelta

    later = make_report(runtime, category="theft", area="ML-BKO.commune-iii")
    urgent = make_report(
        runtime,
        category="theft",
        area="ML-BKO.commune-iii",
        urgency="emergency",
        now=T0 + timedelta(hours=1),
    )
    make_report(runtime, category="theft", area="ML-BKO.commune-ii")
    with Session(runtime.engine) as session:
        police = session.exec(select(Stakeholder).where(Stakeholder.code == "bko-police-c3")).one()
        rows = queues.queue(session, police.id)
    assert [r.reference for _e, r in rows] == [urgent.reference, later.reference]


def test_locales_of_another_folder_are_used_when_installed(
    runtime: Runtime, tmp_path: Path
) -> None:
    """A runtime pointed at other folders routes with them (install per database)."""
    import shutil

    locales = tmp_path / "locales"
    shutil.copytree(LOCALES, locales)
    fr = locales / "fr.yaml"
    fr.write_text(
        fr.read_text(encoding="utf-8").replace("URGENT citoyen", "ALERTE citoyen"), encoding="utf-8"
    )
    from citoyen.services import flows as flows_service

    flows_service.clear_cache()
    runtime.settings = runtime.settings.model_copy(update={"locales_dir": locales})
    queues.install(runtime)
    make_report(runtime, category="theft", area="ML-BKO.commune-i", urgency="emergency")
    alerts = outbox(runtime, kind="alert")
    assert alerts and all(a.body.startswith("ALERTE citoyen") for a in alerts)
    flows_service.clear_cache()
