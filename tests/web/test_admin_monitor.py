"""The outbox monitor (admins, coordinators in their scope) and the audit log (admins)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.models import AuditEvent, Contact, Outbox, Report
from citoyen.runtime import Runtime
from citoyen.services import casework
from citoyen.services.outbox import enqueue
from citoyen.services.privacy import alias_label
from citoyen.web import create_app
from tests.routing.support import make_report, new_address
from tests.web.conftest import csrf_token, sign_in

NOW = datetime.now(UTC)


@pytest.fixture
def app(rt: Runtime) -> Flask:
    return create_app({"TESTING": True}, runtime=rt)


def notify(rt: Runtime, report: Report, key: str, status: str = "pending", **extra: Any) -> int:
    """An outbox row to the report's reporter, as a status notification is queued."""
    with write_session(rt.engine) as s:
        row = enqueue(
            s,
            channel="sms",
            idempotency_key=key,
            body=f"Votre signalement {report.reference} est en cours.",
            payload={"report": report.reference, "status": "in_progress"},
            contact_id=report.contact_id,
            kind="notification",
            now=NOW - timedelta(hours=1),
        )
        row.status = status
        for name, value in extra.items():
            setattr(row, name, value)
        s.add(row)
        s.flush()
        return row.id  # type: ignore[return-value]


@pytest.fixture
def scene(rt: Runtime) -> dict[str, Any]:
    """A Bamako report (emergency: on-call alerts are queued) and a Ségou one, with one failed
    notification each."""
    bko_number, seg_number = new_address(), new_address()
    bko = make_report(rt, category="armed_attack", urgency="emergency", address=bko_number, now=NOW)
    seg = make_report(rt, category="theft", area="ML-4.segou.segou", address=seg_number, now=NOW)
    return {
        "bko": bko,
        "seg": seg,
        "numbers": (bko_number, seg_number),
        "bko_failed": notify(rt, bko, "n-bko", "failed", attempts=8, error="[30003] unreachable"),
        "seg_failed": notify(rt, seg, "n-seg", "failed", attempts=3, error="[21211] invalid"),
    }


def alias_of(rt: Runtime, report: Report) -> str:
    with Session(rt.engine) as s:
        contact = s.get(Contact, report.contact_id)
        assert contact is not None
        return alias_label(contact.alias)


def test_admin_sees_every_row_as_aliases_and_on_call(app: Flask, rt: Runtime, scene) -> None:
    client = sign_in(app, "admin@example.org", "admin")
    response = client.get("/admin/outbox")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert alias_of(rt, scene["bko"]) in html and alias_of(rt, scene["seg"]) in html
    with Session(rt.engine) as s:
        alerts = s.exec(select(Outbox).where(Outbox.address_enc.is_not(None))).all()
        everything = s.exec(select(Outbox)).all()
    assert alerts, "an emergency in Bamako alerts the on-call phones"
    assert html.count(">on-call<") == len(alerts)
    for number in scene["numbers"]:
        assert number not in html and number.lstrip("+") not in html
    # Counts per status and channel: the failed notification of each report.
    assert re.search(r'data-status="failed" data-channel="sms">2<', html)
    pending = sum(1 for r in everything if r.status == "pending")
    assert f'data-total="pending">{pending}<' in html
    rows = re.findall(r"<tr>\s*<td>(\d+)</td>", html)
    assert sorted(int(r) for r in rows) == sorted(r.id for r in everything)


def test_filter_by_status(app: Flask, rt: Runtime, scene) -> None:
    client = sign_in(app, "admin@example.org", "admin")
    html = client.get("/admin/outbox?status=failed").get_data(as_text=True)
    ids = {int(i) for i in re.findall(r"<tr>\s*<td>(\d+)</td>", html)}
    assert ids == {scene["bko_failed"], scene["seg_failed"]}
    assert client.get("/admin/outbox?status=nonsense").status_code == 400
    assert client.get("/admin/outbox?after=x").status_code == 400
    for after in ("²", "9" * 12, "9" * 5000):
        assert client.get(f"/admin/outbox?after={after}").status_code == 400, after


def test_keyset_pagination(app: Flask, rt: Runtime) -> None:
    report = make_report(rt, now=NOW)
    made = [notify(rt, report, f"n-{i}") for i in range(53)]
    client = sign_in(app, "admin@example.org", "admin")
    html = client.get("/admin/outbox?status=pending").get_data(as_text=True)
    first = [int(i) for i in re.findall(r"<tr>\s*<td>(\d+)</td>", html)]
    assert len(first) == 50 and first == sorted(first, reverse=True)
    link = re.search(r'rel="next" href="([^"]+)"', html)
    assert link
    html = client.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    second = [int(i) for i in re.findall(r"<tr>\s*<td>(\d+)</td>", html)]
    assert not set(first) & set(second)
    assert set(made) <= set(first) | set(second)
    assert 'rel="next"' not in html


def test_coordinator_sees_rows_of_their_area_only(app: Flask, rt: Runtime, scene) -> None:
    client = sign_in(app, "coord@example.org", "coordinator", area="ML-4")
    html = client.get("/admin/outbox").get_data(as_text=True)
    ids = {int(i) for i in re.findall(r"<tr>\s*<td>(\d+)</td>", html)}
    assert scene["seg_failed"] in ids and scene["bko_failed"] not in ids
    assert alias_of(rt, scene["bko"]) not in html
    token = csrf_token(client, "/admin/outbox")
    response = client.post(f"/admin/outbox/{scene['bko_failed']}/retry", data={"csrf_token": token})
    assert response.status_code == 404
    with Session(rt.engine) as s:
        assert s.get(Outbox, scene["bko_failed"]).status == "failed"  # type: ignore[union-attr]
    # Their own area's row they may retry.
    response = client.post(f"/admin/outbox/{scene['seg_failed']}/retry", data={"csrf_token": token})
    assert response.status_code == 302


def test_retry_puts_a_failed_row_back_and_audits(app: Flask, rt: Runtime, scene) -> None:
    client = sign_in(app, "admin@example.org", "admin")
    token = csrf_token(client, "/admin/outbox")
    before = datetime.now(UTC)
    response = client.post(f"/admin/outbox/{scene['bko_failed']}/retry", data={"csrf_token": token})
    assert response.status_code == 302
    with Session(rt.engine) as s:
        row = s.get(Outbox, scene["bko_failed"])
        assert row is not None
        # A fresh set of attempts: the dispatcher gives up on a row at its maximum.
        assert row.status == "pending" and row.attempts == 0
        assert before - timedelta(seconds=1) <= row.next_attempt_at <= datetime.now(UTC)
        [event] = s.exec(select(AuditEvent).where(AuditEvent.action == "outbox_retry")).all()
    assert (event.target_type, event.target_id) == ("outbox", scene["bko_failed"])
    assert event.data["attempts"] == 8 and "30003" in event.data["error"]
    # Retrying it again is refused: it is no longer failed.
    response = client.post(f"/admin/outbox/{scene['bko_failed']}/retry", data={"csrf_token": token})
    assert response.status_code == 302
    with Session(rt.engine) as s:
        assert len(s.exec(select(AuditEvent).where(AuditEvent.action == "outbox_retry")).all()) == 1
    assert client.post("/admin/outbox/999999/retry", data={"csrf_token": token}).status_code == 404


def test_retry_without_csrf_token_is_refused(app: Flask, rt: Runtime, scene) -> None:
    client = sign_in(app, "admin@example.org", "admin")
    assert client.post(f"/admin/outbox/{scene['bko_failed']}/retry").status_code == 400
    with Session(rt.engine) as s:
        assert s.get(Outbox, scene["bko_failed"]).status == "failed"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("role", "outbox", "audit"),
    [("admin", 200, 200), ("coordinator", 200, 403), ("agent", 403, 403), ("analyst", 403, 403)],
)
def test_who_may_open_what(app: Flask, role: str, outbox: int, audit: int) -> None:
    scope = {"agent": {"stakeholder": "bko-police-c4"}, "coordinator": {"area": "ML-BKO"}}
    client = sign_in(app, f"{role}@example.org", role, **scope.get(role, {}))
    assert client.get("/admin/outbox").status_code == outbox
    assert client.get("/admin/audit").status_code == audit


def test_audit_log_lists_filters_and_pages(app: Flask, rt: Runtime) -> None:
    client = sign_in(app, "admin@example.org", "admin")
    with write_session(rt.engine) as s:
        from citoyen.models import User
        from citoyen.services.access import Staff

        admin = s.exec(select(User).where(User.email == "admin@example.org")).one()
        me = Staff.of(admin)
        for i in range(55):
            casework.audit(s, me, "export", data={"format": "csv", "rows": i}, now=NOW)
        casework.audit(
            s, me, "reveal_identity", target_type="report", target_id=7, reason="Police request"
        )
    html = client.get("/admin/audit").get_data(as_text=True)
    assert "admin@example.org" in html and "Police request" in html and "report 7" in html
    filtered = client.get("/admin/audit?action=reveal_identity").get_data(as_text=True)
    assert "Police request" in filtered and "rows: " not in filtered
    page = client.get("/admin/audit?action=export").get_data(as_text=True)
    assert page.count("rows: ") == 50
    link = re.search(r'rel="next" href="([^"]+)"', page)
    assert link
    rest = client.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert rest.count("rows: ") == 5 and "Police request" not in rest


@pytest.mark.parametrize("which", ["seg_failed", "bko_failed"])
def test_a_retried_row_is_sent_by_the_dispatcher(
    app: Flask, rt: Runtime, scene, which: str
) -> None:
    """End to end: retried from the page, the row is sent at the dispatcher's next pass (no
    provider configured: the log channel stands in for SMS), also one that had used all its
    attempts (bko_failed: 8)."""
    from citoyen.services.dispatch import dispatch_once

    client = sign_in(app, "admin@example.org", "admin")
    token = csrf_token(client, "/admin/outbox")
    client.post(f"/admin/outbox/{scene[which]}/retry", data={"csrf_token": token})
    # SMS is rate-limited per pass: the dispatcher works through the older pending rows first.
    start = datetime.now(UTC)
    for second in range(1, 60):
        dispatch_once(rt, now=start + timedelta(seconds=second))
        with Session(rt.engine) as s:
            row = s.get(Outbox, scene[which])
            assert row is not None
            if row.status != "pending":
                break
    assert (row.status, row.attempts) == ("sent", 1)


def test_outbox_page_says_how_long_the_queue_takes(app: Flask, rt: Runtime, scene) -> None:
    """3,600 SMS waiting at one a second: an hour. The page is read on the wall clock, so the
    rows are due now and the figure is the rate's alone."""
    from sqlmodel import func

    from citoyen.services.outbox import enqueue_many, queued_row

    with write_session(rt.engine) as s:
        waiting = s.exec(
            select(func.count(Outbox.id)).where(
                Outbox.channel == "sms", Outbox.status.in_(("pending", "sending"))
            )
        ).one()
        enqueue_many(
            s,
            [
                queued_row(
                    channel="sms",
                    idempotency_key=f"wave:{i}",
                    contact_id=scene["bko"].contact_id,
                    now=NOW - timedelta(minutes=1),
                )
                for i in range(3600 - waiting)
            ],
        )
    html = sign_in(app, "admin@example.org", "admin").get("/admin/outbox").get_data(as_text=True)
    row = re.search(r'<tr data-channel="sms">(.*?)</tr>', html, re.S)
    assert row is not None
    assert re.search(r"<td data-waiting>3600</td>", row[1])
    assert "60 per minute" in row[1]
    # One hour, give or take the seconds the request itself took.
    assert re.search(r"<td data-takes>(1 h 0 min|59 min)</td>", row[1]), row[1]


def test_admins_see_call_backs_by_alias_never_by_number(app: Flask, rt: Runtime, scene) -> None:
    from citoyen.models import CallbackRequest

    with write_session(rt.engine) as s:
        for n, status in enumerate(("requested", "answered", "failed")):
            s.add(
                CallbackRequest(
                    request_key=f"conversation:test{n}",
                    contact_id=scene["bko"].contact_id,
                    source="sms",
                    status=status,
                    reason="no-answer" if status == "failed" else None,
                    attempts=3 if status == "failed" else 1,
                    due_at=NOW,
                    requested_at=NOW,
                )
            )
    html = sign_in(app, "admin@example.org", "admin").get("/admin/outbox").get_data(as_text=True)
    assert 'id="callbacks-title"' in html
    for status in ("requested", "answered", "failed"):
        assert f'<td data-callbacks="{status}">1</td>' in html
    assert '<td data-callbacks="placed">0</td>' in html
    assert html.count(alias_of(rt, scene["bko"])) >= 3
    assert "no answer" in html
    for number in scene["numbers"]:
        assert number not in html and number[-8:] not in html
    # Coordinators see their queues' messages, not every citizen's call-backs.
    coordinator = sign_in(app, "coord@example.org", "coordinator", area="ML-BKO")
    assert 'id="callbacks-title"' not in coordinator.get("/admin/outbox").get_data(as_text=True)


def test_a_call_back_a_machine_answered_says_so(app: Flask, rt: Runtime, scene) -> None:
    from citoyen.models import CallbackRequest

    with write_session(rt.engine) as s:
        s.add(
            CallbackRequest(
                request_key="conversation:machine",
                contact_id=scene["bko"].contact_id,
                source="telegram",
                status="requested",
                reason="machine",
                attempts=1,
                due_at=NOW,
                requested_at=NOW,
            )
        )
    html = sign_in(app, "admin@example.org", "admin").get("/admin/outbox").get_data(as_text=True)
    row = re.search(r'<tr data-callback="\d+">(.*?)</tr>', html, re.S)
    assert row is not None
    assert "answering machine or fax" in row[1] and "telegram" in row[1]
