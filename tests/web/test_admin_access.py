"""Access rules of the admin: sign-in required everywhere, CSRF on every state change."""

from __future__ import annotations

import pytest
from flask import Flask

PUBLIC = {"admin.login", "static", "health.healthz"}


def _admin_rules(app: Flask):
    return [
        r
        for r in app.url_map.iter_rules()
        if r.endpoint not in PUBLIC and r.endpoint.startswith("admin.")
    ]


def _other_rules(app: Flask):
    return [
        r
        for r in app.url_map.iter_rules()
        if r.endpoint not in PUBLIC and not r.endpoint.startswith("admin.")
    ]


def test_every_other_state_changing_url_refuses_unsigned_requests(settings) -> None:
    """Outside the admin, every POST is a provider webhook: no signature, no entry.

    Credentials are configured, so a 403 means the signature (or secret) check refused it.
    """
    from citoyen.web import create_app

    configured = settings.model_copy(
        update={
            "twilio_account_sid": "AC" + "0" * 32,
            "twilio_auth_token": "secret-token",
            "telegram_bot_token": "123:abc",
            "telegram_webhook_secret": "hook-secret",
        }
    )
    app = create_app({"TESTING": True, "SETTINGS": configured})
    client = app.test_client()
    rules = [r for r in _other_rules(app) if "POST" in r.methods]
    assert rules, "the webhooks should be in the URL map"
    for rule in rules:
        url = rule.rule.replace("<", "").replace(">", "")
        response = client.post(url, data={"From": "+22376000000", "Body": "x"})
        assert response.status_code == 403, (rule.rule, response.status_code)


def test_healthz_reports_database(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ok",
        "database": "ok",
        "spool_depth": 0,
        "oldest_queued_seconds": None,
        "scheduler_lease_held": False,
    }


def _url(rule) -> str:  # type: ignore[no-untyped-def]
    """A concrete URL for a rule: 1 for every integer argument, "x" for the others."""
    import re

    url = re.sub(r"<int:[^>]+>", "1", rule.rule)
    return re.sub(r"<[^>]+>", "x", url)


def test_every_admin_url_needs_login(app: Flask, client) -> None:
    rules = _admin_rules(app)
    assert len(rules) >= 20, "the URL map should have the admin's routes"
    for rule in rules:
        url = _url(rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method)
            # GETs redirect to the login page; POSTs without a token are refused by CSRF first.
            assert response.status_code in (302, 400, 401), (rule.rule, method)
            if response.status_code == 302:
                assert "/admin/login" in response.headers["Location"]


def test_login_then_queue_page(auth, client) -> None:
    auth.create()
    response = auth.login()
    assert response.status_code == 302
    page = client.get("/admin/")
    assert page.status_code == 200
    assert "Files d’attente" in page.get_data(as_text=True)


def test_every_admin_post_refuses_a_request_without_csrf_token(app: Flask, auth, client) -> None:
    """Signed in as an administrator (who may do everything), no POST of the admin passes
    without its token, and nothing is written."""
    from sqlmodel import Session, func, select

    from citoyen.models import AuditEvent, ReportEvent, User

    auth.create()
    auth.login()
    engine = app.extensions["citoyen"].engine

    def counts() -> tuple[int, ...]:
        with Session(engine) as session:
            return tuple(
                session.exec(select(func.count()).select_from(m)).one()
                for m in (AuditEvent, ReportEvent, User)
            )

    before = counts()
    posts = [r for r in _admin_rules(app) if "POST" in r.methods and r.endpoint != "admin.login"]
    assert len(posts) >= 12, [r.rule for r in posts]
    for rule in posts:
        response = client.post(_url(rule), data={"note": "x", "reason": "a long enough reason"})
        assert response.status_code == 400, (rule.rule, response.status_code)
    assert counts() == before


def test_wrong_password_refused(auth, client) -> None:
    auth.create()
    response = auth.login(password="not the password")
    assert response.status_code == 401
    assert client.get("/admin/").status_code == 302


def test_post_without_csrf_refused(app: Flask, auth, client) -> None:
    auth.create()
    response = client.post(
        "/admin/login", data={"email": "moderateur@example.org", "password": "x" * 12}
    )
    assert response.status_code == 400


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/admin/"])
def test_login_does_not_redirect_off_site(auth, client, target: str) -> None:
    auth.create()
    from tests.web.conftest import PASSWORD, csrf_token
    from tests.web.signin import second_step

    token = csrf_token(client)
    response = client.post(
        f"/admin/login?next={target}",
        data={"email": "moderateur@example.org", "password": PASSWORD, "csrf_token": token},
    )
    # An administrator signs in in two steps: the target is checked before the code step and
    # followed after it.
    response = second_step(auth.app, client, response, "moderateur@example.org")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"


def test_security_headers(client) -> None:
    response = client.get("/admin/login")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
