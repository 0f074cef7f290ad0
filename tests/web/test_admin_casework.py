"""Working a report in the admin: queues, scopes, every action, reveal and its audit trail.

Reports are made the real way (services.effects.create_report, which routes them), staff sign in
through the login form, and every action is a POST with a CSRF token, as a browser sends it. Each
test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask
from sqlmodel import Session, func, select

from citoyen.models import (
    AuditEvent,
    Contact,
    Outbox,
    QueueEntry,
    Report,
    ReportEvent,
    Stakeholder,
    User,
)
from tests.web.conftest import Desk, csrf_token

COMMUNE_IV = "ML-BKO.commune-iv"  # theft here goes to bko-police-c4 (config/routing.yaml)


def rows(desk: Desk, model, *where):  # type: ignore[no-untyped-def]
    with Session(desk.runtime.engine) as session:
        return list(session.exec(select(model).where(*where)).all())


def count(desk: Desk, model, *where) -> int:  # type: ignore[no-untyped-def]
    with Session(desk.runtime.engine) as session:
        return session.exec(select(func.count()).select_from(model).where(*where)).one()


def fresh(desk: Desk, report: Report) -> Report:
    with Session(desk.runtime.engine) as session:
        return session.get(Report, report.id)


def snapshot(desk: Desk) -> dict[str, int]:
    """Row counts and report states: what any action would change."""
    with Session(desk.runtime.engine) as session:
        counts = {
            m.__name__: session.exec(select(func.count()).select_from(m)).one()
            for m in (ReportEvent, Outbox, QueueEntry, AuditEvent)
        }
        states = [
            (r.id, r.status, r.merged_into_id)
            for r in session.exec(select(Report).order_by(Report.id)).all()
        ]
        blocked = session.exec(
            select(func.count()).select_from(Contact).where(Contact.blocked)
        ).one()
    return {**counts, "states": states, "blocked": blocked}  # type: ignore[dict-item]


# --- queues and scope -------------------------------------------------------------------------


def test_agent_sees_own_queue_only(desk: Desk) -> None:
    mine = desk.report(category="theft", area=COMMUNE_IV)
    theirs = desk.report(category="theft", area="ML-BKO.commune-i")
    desk.user("agent4@example.org", "agent", "bko-police-c4")
    desk.login("agent4@example.org")
    page = desk.client.get("/admin/").get_data(as_text=True)
    assert mine.reference in page
    assert theirs.reference not in page
    assert desk.client.get(f"/admin/reports/{mine.id}").status_code == 200
    # Out of scope and non-existent look the same: ids cannot be probed.
    assert desk.client.get(f"/admin/reports/{theirs.id}").status_code == 404
    assert desk.client.get("/admin/reports/999999").status_code == 404
    assert desk.client.get(f"/admin/find?reference={theirs.reference}").status_code == 302
    assert (
        f"/admin/reports/{theirs.id}"
        not in desk.client.get(f"/admin/find?reference={theirs.reference}").headers["Location"]
    )


def test_coordinator_sees_their_area_only(desk: Desk) -> None:
    bamako = desk.report(category="theft", area=COMMUNE_IV)
    kayes = desk.report(category="theft", area="ML-1")
    desk.user("coord@example.org", "coordinator", area="ML-BKO")
    desk.login("coord@example.org")
    page = desk.client.get("/admin/").get_data(as_text=True)
    assert bamako.reference in page
    assert kayes.reference not in page
    assert desk.client.get(f"/admin/reports/{kayes.id}").status_code == 404


def test_analyst_never_opens_a_report(desk: Desk) -> None:
    report = desk.report(category="theft", area=COMMUNE_IV)
    desk.user("analyst@example.org", "analyst")
    desk.login("analyst@example.org")
    assert desk.client.get("/admin/").status_code == 302  # to the dashboard
    assert desk.client.get(f"/admin/reports/{report.id}").status_code == 404
    response = desk.post(f"/admin/reports/{report.id}/note", note="hello")
    assert response.status_code == 404
    assert count(desk, ReportEvent, ReportEvent.kind == "note") == 0


def test_cross_queue_sweep_every_report_route_refuses(desk: Desk, app: Flask) -> None:
    """An agent reaches another queue's report by no URL of the admin, and changes nothing."""
    other = desk.report(category="theft", area="ML-BKO.commune-i", urgency="high")
    desk.user("agent4@example.org", "agent", "bko-police-c4")
    desk.login("agent4@example.org")
    before = snapshot(desk)
    rules = [
        r
        for r in app.url_map.iter_rules()
        if r.endpoint.startswith("admin.") and "report_id" in r.arguments
    ]
    assert len(rules) >= 10, [r.rule for r in rules]
    form = {
        "note": "x" * 20,
        "message": "hello",
        "reason": "a reason long enough",
        "status": "resolved",
        "into": other.reference,
        "stakeholder": "bko-police-c4",
        "entry": "1",
        "user": "1",
    }
    for rule in rules:
        url = rule.rule.replace("<int:report_id>", str(other.id))
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = desk.client.get(url) if method == "GET" else desk.post(url, **form)
            assert response.status_code == 404, (rule.rule, method, response.status_code)
    assert snapshot(desk) == before


def test_queue_filters_and_keyset_pages(desk: Desk) -> None:
    made = [desk.report(category="theft", area=COMMUNE_IV) for _ in range(7)]
    emergency = desk.report(category="armed_attack", area=COMMUNE_IV, urgency="emergency")
    desk.user("admin@example.org", "admin")
    desk.login("admin@example.org")
    page = desk.client.get("/admin/?urgency=emergency").get_data(as_text=True)
    assert "Open emergencies" in page or "Urgences" in page
    assert (
        emergency.reference in page
        and made[0].reference not in page.split("<h1>")[1].split("</section>")[1]
    )

    # Walk every page of 3 (the app's page size is larger: ask the service directly).
    from citoyen.services.access import Staff
    from citoyen.services.queues.listing import QueueFilter, queue_page

    with Session(desk.runtime.engine) as session:
        staff = Staff.of(session.exec(select(User).where(User.email == "admin@example.org")).one())
        seen, cursor = [], None
        while True:
            page_ = queue_page(
                session, staff, QueueFilter(category="theft"), cursor=cursor, limit=3
            )
            seen += [r.reference for r in page_.rows]
            if page_.next_cursor is None:
                break
            cursor = page_.next_cursor
    assert sorted(seen) == sorted(r.reference for r in made)
    assert len(seen) == len(set(seen))
    assert page_.counts == {"open": 7, "acknowledged": 0}
    assert page_.overdue == 0

    assert desk.client.get("/admin/?status=bogus").status_code == 400
    assert desk.client.get("/admin/?area=abc").status_code == 400
    # str.isdigit takes "²" (int() does not), and an id past the database's integers fails there.
    for area in ("²", "9" * 12, "9" * 5000):
        assert desk.client.get(f"/admin/?area={area}").status_code == 400, area
    assert desk.client.get("/admin/?after=not-a-cursor").status_code == 400


# --- actions ---------------------------------------------------------------------------------


def test_triage_new_to_resolved_tells_the_reporter(desk: Desk) -> None:
    report = desk.report(category="theft", area=COMMUNE_IV, language="fr")
    desk.user("agent4@example.org", "agent", "bko-police-c4")
    desk.login("agent4@example.org")
    base = f"/admin/reports/{report.id}"

    assert desk.post(f"{base}/acknowledge").status_code == 302
    assert fresh(desk, report).status == "acknowledged"
    assert (
        desk.post(f"{base}/status", status="in_progress", template="in_progress.patrol").status_code
        == 302
    )
    assert desk.post(f"{base}/reply", message="Une patrouille passe ce soir.").status_code == 302
    assert desk.post(f"{base}/status", status="resolved").status_code == 302
    assert fresh(desk, report).status == "resolved"

    bodies = [o.body for o in rows(desk, Outbox, Outbox.contact_id == report.contact_id)]
    catalog = desk.runtime.bundle.catalog
    ref = report.reference
    assert catalog.render("notify.acknowledged", "fr", {"reference": ref}) in bodies
    assert catalog.render("template.in_progress.patrol", "fr", {"reference": ref}) in bodies
    assert (
        catalog.render(
            "staff.reply", "fr", {"reference": ref, "message": "Une patrouille passe ce soir."}
        )
        in bodies
    )
    assert catalog.render("notify.resolved", "fr", {"reference": ref, "police": "17"}) in bodies
    kinds = [e.kind for e in rows(desk, ReportEvent, ReportEvent.report_id == report.id)]
    assert kinds.count("status_changed") == 3 and "reply" in kinds
    page = desk.client.get(base).get_data(as_text=True)
    assert "Une patrouille passe ce soir." in page  # the reply is in the timeline


def test_refused_actions_say_why_and_change_nothing(desk: Desk) -> None:
    report = desk.report(category="theft", area=COMMUNE_IV)
    desk.user("agent4@example.org", "agent", "bko-police-c4")
    desk.login("agent4@example.org")
    base = f"/admin/reports/{report.id}"
    before = snapshot(desk)
    cases = [
        ("status", {"status": "closed"}),  # closing needs a reason
        ("status", {"status": "flying"}),
        ("status", {"status": "in_progress", "template": "resolved.patrol"}),
        ("status", {"status": "in_progress", "template": "in_progress.nonexistent"}),
        ("reply", {"message": ""}),
        ("reply", {"message": "x" * 601}),
        ("note", {"note": "   "}),
        ("merge", {"into": "000-0000"}),
        ("merge", {"into": report.reference}),
        ("forward", {"stakeholder": "bko-police-c4"}),  # already has it
        ("forward", {"stakeholder": "nobody"}),
    ]
    for action, form in cases:
        response = desk.post(f"{base}/{action}", **form)
        assert response.status_code == 400, (action, form, response.status_code)
        assert "Not done" in response.get_data(as_text=True) or "Pas fait" in response.get_data(
            as_text=True
        )
    assert snapshot(desk) == before


def test_note_assign_forward_merge_spam(desk: Desk) -> None:
    report = desk.report(category="theft", area=COMMUNE_IV)
    twin = desk.report(category="theft", area=COMMUNE_IV)
    junk = desk.report(category="theft", area=COMMUNE_IV)
    desk.user("agent4@example.org", "agent", "bko-police-c4")
    colleague = desk.user("agent4b@example.org", "agent", "bko-police-c4")
    desk.login("agent4@example.org")
    base = f"/admin/reports/{report.id}"

    assert desk.post(f"{base}/note", note="Témoin vu au marché").status_code == 302
    entry = rows(desk, QueueEntry, QueueEntry.report_id == report.id)[0]
    colleague_id = rows(desk, User, User.email == colleague)[0].id
    assert (
        desk.post(f"{base}/assign", entry=str(entry.id), user=str(colleague_id)).status_code == 302
    )
    assert rows(desk, QueueEntry, QueueEntry.id == entry.id)[0].assigned_to == colleague_id
    assert (
        desk.post(f"{base}/forward", stakeholder="bko-ccs-c4", note="médiation").status_code == 302
    )
    holders = {
        s.code
        for e in rows(desk, QueueEntry, QueueEntry.report_id == report.id)
        for s in rows(desk, Stakeholder, Stakeholder.id == e.stakeholder_id)
    }
    assert holders == {"bko-police-c4", "bko-ccs-c4"}

    page = desk.client.get(base).get_data(as_text=True)
    assert twin.reference in page  # suggested as a possible duplicate
    assert desk.post(f"/admin/reports/{twin.id}/merge", into=report.reference).status_code == 302
    assert fresh(desk, twin).merged_into_id == report.id
    assert desk.post(f"/admin/reports/{junk.id}/spam").status_code == 302
    junk_now = fresh(desk, junk)
    assert junk_now.status == "closed"
    closing = rows(
        desk, ReportEvent, ReportEvent.report_id == junk.id, ReportEvent.kind == "status_changed"
    )
    assert closing[-1].data["reason"] == "spam"


def test_agent_cannot_block_but_coordinator_can_with_reason(desk: Desk) -> None:
    report = desk.report(category="theft", area=COMMUNE_IV)
    desk.user("agent4@example.org", "agent", "bko-police-c4")
    desk.user("coord@example.org", "coordinator", area="ML-BKO")
    desk.login("agent4@example.org")
    assert (
        desk.post(f"/admin/reports/{report.id}/block", reason="flood of fake reports").status_code
        == 403
    )
    desk.login("coord@example.org")
    assert desk.post(f"/admin/reports/{report.id}/block", reason="short").status_code == 400
    assert (
        desk.post(f"/admin/reports/{report.id}/block", reason="flood of fake reports").status_code
        == 302
    )
    assert rows(desk, Contact, Contact.id == report.contact_id)[0].blocked
    audit = rows(desk, AuditEvent, AuditEvent.action == "block_sender")
    assert len(audit) == 1 and audit[0].reason == "flood of fake reports"


# --- identity ---------------------------------------------------------------------------------


def _make_named(desk: Desk, address: str) -> Report:
    report = desk.report(category="theft", area=COMMUNE_IV, address=address)
    with Session(desk.runtime.engine) as session:
        row = session.get(Report, report.id)
        row.anonymous, row.callback_ok = False, True
        session.add(row)
        session.commit()
    return report


def test_reveal_needs_role_reason_and_is_audited(desk: Desk) -> None:
    number = "+22376123456"
    named = _make_named(desk, number)
    anonymous = desk.report(category="theft", area=COMMUNE_IV, address="+22376999888")
    desk.user("agent4@example.org", "agent", "bko-police-c4")
    desk.user("coord@example.org", "coordinator", area="ML-BKO")

    desk.login("agent4@example.org")
    page = desk.client.get(f"/admin/reports/{named.id}").get_data(as_text=True)
    assert "/reveal" not in page and number not in page
    assert (
        desk.post(
            f"/admin/reports/{named.id}/reveal", reason="to call the reporter back"
        ).status_code
        == 403
    )

    desk.login("coord@example.org")
    page = desk.client.get(f"/admin/reports/{named.id}").get_data(as_text=True)
    assert "/reveal" in page and number not in page
    assert desk.post(f"/admin/reports/{named.id}/reveal", reason="").status_code == 400
    refused = desk.post(f"/admin/reports/{anonymous.id}/reveal", reason="to call the reporter back")
    assert refused.status_code == 400 and "+22376999888" not in refused.get_data(as_text=True)
    assert count(desk, AuditEvent, AuditEvent.action == "reveal_identity") == 0

    shown = desk.post(f"/admin/reports/{named.id}/reveal", reason="to call the reporter back")
    assert shown.status_code == 200
    assert number in shown.get_data(as_text=True)
    assert shown.headers["Cache-Control"] == "no-store"
    audit = rows(desk, AuditEvent, AuditEvent.action == "reveal_identity")
    assert len(audit) == 1
    assert audit[0].reason == "to call the reporter back" and audit[0].target_id == named.id
    assert number not in str(audit[0].data)
    # Shown once: the page afterwards does not carry it.
    assert number not in desk.client.get(f"/admin/reports/{named.id}").get_data(as_text=True)


def test_pages_never_show_a_number(desk: Desk) -> None:
    number = "+22376555444"
    report = _make_named(desk, number)
    desk.user("admin@example.org", "admin")
    desk.login("admin@example.org")
    for url in ("/admin/", f"/admin/reports/{report.id}", "/admin/?status=all"):
        html = desk.client.get(url).get_data(as_text=True)
        assert number not in html and number[1:] not in html, url


# --- sign-in -----------------------------------------------------------------------------------


def test_login_is_throttled_after_repeated_failures(desk: Desk) -> None:
    desk.user("admin@example.org", "admin")
    for _ in range(5):
        token = csrf_token(desk.client)
        response = desk.client.post(
            "/admin/login",
            data={"email": "admin@example.org", "password": "wrong password", "csrf_token": token},
        )
        assert response.status_code == 401
    # Even the right password is refused for a while, and nothing says whether it was right.
    response = desk.login("admin@example.org")
    assert response.status_code == 429
    assert desk.client.get("/admin/").status_code == 302
    with Session(desk.runtime.engine) as session:
        from citoyen.models import LoginFailure

        keys = [f.key for f in session.exec(select(LoginFailure)).all()]
    assert keys and all(re.fullmatch(r"(email|ip):[0-9a-f]{64}", k) for k in keys)
    assert not any("admin@example.org" in k for k in keys)


def test_language_switch_to_english_and_back(desk: Desk) -> None:
    desk.user("admin@example.org", "admin")
    desk.login("admin@example.org")
    token = desk.token()
    desk.client.post("/admin/language", data={"lang": "fr", "csrf_token": token, "next": "/admin/"})
    assert "Files d’attente" in desk.client.get("/admin/").get_data(as_text=True)
    desk.client.post("/admin/language", data={"lang": "en", "csrf_token": token, "next": "/admin/"})
    assert ">Queues<" in desk.client.get("/admin/").get_data(as_text=True)
    assert (
        desk.client.post("/admin/language", data={"lang": "xx", "csrf_token": token}).status_code
        == 400
    )


@pytest.mark.parametrize("path", ["/admin/login", "/admin/"])
def test_french_is_the_default(desk: Desk, path: str) -> None:
    desk.user("admin@example.org", "admin")
    if path != "/admin/login":
        desk.login("admin@example.org")
    html = desk.client.get(path).get_data(as_text=True)
    assert 'lang="fr"' in html
    assert ("Connexion" in html) if path == "/admin/login" else ("Files d’attente" in html)


def test_late_entries_come_first_and_are_counted(desk: Desk) -> None:
    from datetime import UTC, datetime, timedelta

    fresh_report = desk.report(category="theft", area=COMMUNE_IV)
    old = desk.report(category="theft", area=COMMUNE_IV, now=datetime.now(UTC) - timedelta(days=5))
    desk.user("agent4@example.org", "agent", "bko-police-c4")
    desk.login("agent4@example.org")
    html = desk.client.get("/admin/").get_data(as_text=True)
    assert html.index(old.reference) < html.index(fresh_report.reference)
    late_only = desk.client.get("/admin/?overdue=1").get_data(as_text=True)
    table = late_only.split("<tbody>", 1)[1]
    assert old.reference in table and fresh_report.reference not in table
    from citoyen.services.access import Staff
    from citoyen.services.queues.listing import QueueFilter, queue_page

    with Session(desk.runtime.engine) as session:
        staff = Staff.of(session.exec(select(User).where(User.email == "agent4@example.org")).one())
        page = queue_page(session, staff, QueueFilter())
    assert page.overdue == 1 and page.counts["open"] == 2
    assert [r.overdue for r in page.rows] == [True, False]
