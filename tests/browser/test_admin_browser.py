"""The admin in a real browser: sign in, triage a report from new to resolved with a reply,
reveal with a reason (and find it in the audit log), an agent refused another queue, page
weight. Pages are driven by their forms' actions and field names, not by their words, so the
same steps hold in French and English."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pyotp
from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.models import AuditEvent, Outbox, Report
from citoyen.services.users import create_user
from tests.browser.conftest import LiveAdmin, shot
from tests.routing.support import make_report

PASSWORD = "correct horse battery"
COMMUNE_IV = "ML-BKO.commune-iv"


def _user(
    live: LiveAdmin, email: str, role: str, stakeholder: str | None = None, area: str | None = None
) -> str:
    with write_session(live.runtime.engine) as session:
        create_user(session, email, role, PASSWORD, stakeholder, area_code=area)
    return email


def _report(live: LiveAdmin, **kwargs) -> Report:  # type: ignore[no-untyped-def]
    kwargs.setdefault("now", datetime.now(UTC))
    return make_report(live.runtime, **kwargs)


# What each person's authenticator app holds (their secret) and the last 30-second step used.
_APPS: dict[tuple[int, str], list] = {}


def _login(page, email: str) -> None:  # type: ignore[no-untyped-def]
    """Sign in as a person would: the password, then, when asked, enrol (scan the secret into
    an app, type its code, note the recovery codes, continue) or type the app's current code."""
    page.goto("/admin/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_load_state()
    app = (id(page.context), email)
    if page.url.endswith("/admin/two-factor/enrol"):
        secret = page.inner_text("#totp-secret").replace(" ", "")
        assert page.locator(".qr svg").count() == 1
        step = int(time.time()) // 30
        page.fill("input[name=code]", pyotp.TOTP(secret).at(step * 30))
        page.click("form.login button[type=submit]")
        page.wait_for_load_state()
        assert page.locator("ul.recovery-codes li").count() == 10
        _APPS[app] = [secret, step]
        page.click("#continue")
        page.wait_for_load_state()
    elif page.url.endswith("/admin/login/code"):
        secret, last = _APPS[app]
        step = max(int(time.time()) // 30, last + 1)  # a code is accepted once
        _APPS[app] = [secret, step]
        page.fill("input[name=code]", pyotp.TOTP(secret).at(step * 30))
        page.click("form.login button[type=submit]")
        page.wait_for_load_state()


def _logout(page) -> None:  # type: ignore[no-untyped-def]
    page.click("form[action='/admin/logout'] button")
    page.wait_for_url("**/admin/login")


def test_sign_in_and_triage_to_resolved_with_a_reply(page, live: LiveAdmin) -> None:  # type: ignore[no-untyped-def]
    report = _report(live, category="theft", area=COMMUNE_IV, language="fr")
    _user(live, "agent4@example.org", "agent", "bko-police-c4")

    _login(page, "agent4@example.org")
    assert page.url.endswith("/admin/")
    shot(page, "01-queue")
    page.click(f"text={report.reference}")
    page.wait_for_url(f"**/admin/reports/{report.id}")
    shot(page, "02-report-new")

    page.click("form[action$='/acknowledge'] button")
    page.wait_for_url(f"**/admin/reports/{report.id}")
    page.select_option("form[action$='/status'] select[name=status]", "in_progress")
    page.select_option("form[action$='/status'] select[name=template]", "in_progress.patrol")
    page.click("form[action$='/status'] button")
    page.wait_for_url(f"**/admin/reports/{report.id}")
    page.fill("form[action$='/reply'] textarea[name=message]", "Une patrouille passe ce soir.")
    page.click("form[action$='/reply'] button")
    page.wait_for_url(f"**/admin/reports/{report.id}")
    page.select_option("form[action$='/status'] select[name=status]", "resolved")
    page.click("form[action$='/status'] button")
    page.wait_for_url(f"**/admin/reports/{report.id}")
    shot(page, "03-report-resolved")

    assert "Une patrouille passe ce soir." in page.inner_text(".timeline")
    with Session(live.runtime.engine) as session:
        assert session.get(Report, report.id).status == "resolved"
        bodies = [
            o.body
            for o in session.exec(
                select(Outbox).where(Outbox.contact_id == report.contact_id)
            ).all()
        ]
    assert len(bodies) == 4  # acknowledged, in progress (template), the reply, resolved
    assert any("Une patrouille passe ce soir." in b for b in bodies)


def test_reveal_with_reason_shows_in_the_audit_log(page, live: LiveAdmin) -> None:  # type: ignore[no-untyped-def]
    number = "+22376123456"
    report = _report(live, category="theft", area=COMMUNE_IV, address=number)
    with Session(live.runtime.engine) as session:
        row = session.get(Report, report.id)
        row.anonymous, row.callback_ok = False, True
        session.add(row)
        session.commit()
    _user(live, "coord@example.org", "coordinator", area="ML-BKO")
    _user(live, "admin@example.org", "admin")

    _login(page, "coord@example.org")
    page.goto(f"/admin/reports/{report.id}")
    assert number not in page.content()
    page.fill("form[action$='/reveal'] input[name=reason]", "Rappeler le témoin pour l'enquête")
    page.click("form[action$='/reveal'] button")
    page.wait_for_selector("#revealed-number")
    assert page.inner_text("#revealed-number") == number
    shot(page, "04-revealed")
    _logout(page)

    _login(page, "admin@example.org")
    page.goto("/admin/audit")
    shot(page, "05-audit-log")
    text = page.inner_text("main")
    assert "reveal_identity" in text or "Rappeler le témoin pour l'enquête" in text
    assert "coord@example.org" in text
    assert number not in page.content()
    with Session(live.runtime.engine) as session:
        audit = session.exec(select(AuditEvent).where(AuditEvent.action == "reveal_identity")).all()
    assert [a.reason for a in audit] == ["Rappeler le témoin pour l'enquête"]


def test_agent_is_refused_another_queue(page, live: LiveAdmin) -> None:  # type: ignore[no-untyped-def]
    other = _report(live, category="theft", area="ML-BKO.commune-i")
    _user(live, "agent4@example.org", "agent", "bko-police-c4")
    _login(page, "agent4@example.org")
    assert other.reference not in page.content()
    response = page.goto(f"/admin/reports/{other.id}")
    assert response is not None and response.status == 404
    page.goto(f"/admin/find?reference={other.reference}")
    assert page.url.endswith("/admin/")
    shot(page, "06-agent-refused")


def test_pages_are_light(page, live: LiveAdmin) -> None:  # type: ignore[no-untyped-def]
    """The first page and the queue page stay far under 200 KB with everything they load, and
    load nothing from outside."""
    for _ in range(30):
        _report(live, category="theft", area=COMMUNE_IV)
    _user(live, "agent4@example.org", "agent", "bko-police-c4")
    loaded: list[tuple[str, int]] = []
    page.on("requestfinished", lambda r: loaded.append((r.url, r.sizes()["responseBodySize"])))

    page.goto("/admin/login")
    page.wait_for_load_state("networkidle")
    first = sum(size for _url, size in loaded)
    assert 0 < first < 200 * 1024, loaded
    loaded.clear()
    _login(page, "agent4@example.org")
    page.wait_for_load_state("networkidle")
    queue = sum(size for _url, size in loaded)
    assert 0 < queue < 200 * 1024, loaded
    assert all(url.startswith(live.base_url) for url, _size in loaded)


def test_dashboard_charts_draw_and_stay_light(page, live: LiveAdmin) -> None:  # type: ignore[no-untyped-def]
    """An analyst lands on the dashboard: its charts draw under the CSP (no error in the
    console), and everything it loads, chart library included, stays under 200 KB on the wire."""
    for category in ("theft", "theft", "violence"):
        _report(live, category=category, area=COMMUNE_IV)
    _user(live, "analyst@example.org", "analyst")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    loaded: list[tuple[str, int]] = []
    page.on("requestfinished", lambda r: loaded.append((r.url, r.sizes()["responseBodySize"])))
    _login(page, "analyst@example.org")
    page.wait_for_load_state("networkidle")
    assert "/admin/dashboard" in page.url
    assert page.locator("canvas").count() >= 3
    shot(page, "07-dashboard")
    assert not errors, errors
    total = sum(size for url, size in loaded if "/admin/login" not in url)
    assert 0 < total < 200 * 1024, loaded


def test_two_factor_enrolment_then_sign_in_with_the_app_and_a_recovery_code(  # type: ignore[no-untyped-def]
    page, live: LiveAdmin
) -> None:
    """An administrator must enrol at first sign-in: the QR code and the key are shown, the
    app's code turns it on, the recovery codes are shown once; then sign-in asks for a code,
    and a recovery code works once."""
    _user(live, "admin@example.org", "admin")
    page.goto("/admin/login?next=%2Fadmin%2Fusers")
    page.fill("input[name=email]", "admin@example.org")
    page.fill("input[name=password]", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_url("**/admin/two-factor/enrol")
    assert page.locator(".qr svg path").count() >= 1
    shot(page, "09-two-factor-enrol")
    secret = page.inner_text("#totp-secret").replace(" ", "")
    page.fill("input[name=code]", "000000")
    page.click("form.login button[type=submit]")
    page.wait_for_url("**/admin/two-factor/enrol")
    assert page.locator("p.flash").count() == 1
    step = int(time.time()) // 30
    page.fill("input[name=code]", pyotp.TOTP(secret).at(step * 30))
    page.click("form.login button[type=submit]")
    page.wait_for_load_state()
    codes = page.locator("ul.recovery-codes li code").all_inner_texts()
    assert len(codes) == 10
    shot(page, "10-two-factor-recovery-codes")
    page.click("#continue")
    page.wait_for_url("**/admin/users")
    _logout(page)

    page.fill("input[name=email]", "admin@example.org")
    page.fill("input[name=password]", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_url("**/admin/login/code")
    page.fill("input[name=code]", pyotp.TOTP(secret).at((step + 1) * 30))
    page.click("form.login button[type=submit]")
    page.wait_for_url("**/admin/")
    _logout(page)

    for expected in ("**/admin/", "**/admin/login/code"):
        page.fill("input[name=email]", "admin@example.org")
        page.fill("input[name=password]", PASSWORD)
        page.click("form.login button[type=submit]")
        page.wait_for_url("**/admin/login/code")
        page.fill("input[name=code]", codes[0])
        page.click("form.login button[type=submit]")
        page.wait_for_url(expected)
        if expected == "**/admin/":
            _logout(page)
    with Session(live.runtime.engine) as session:
        actions = session.exec(select(AuditEvent.action, AuditEvent.data)).all()
    assert ("two_factor_enrolled", {}) in actions
    used = [data["method"] for action, data in actions if action == "two_factor_used"]
    assert used == ["totp", "recovery"]
