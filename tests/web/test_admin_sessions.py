"""Staff sessions: their lifetime, their end on every device, and the headers of admin pages.

Faults found by trying the admin as an attacker would (issue 22): sessions lasted 31 days, a
cookie copied before "Sign out" still opened the admin after it, an agent's old cookie still
worked after their password was reset, and a CR/LF in ``next`` made sign-in a 500.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select

from citoyen.models import User
from citoyen.web import create_app
from tests.web.conftest import PASSWORD, Desk, csrf_token
from tests.web.signin import password_step, sign_in_as

ADMIN = "admin@example.org"
AGENT = "agent@example.org"


def _agent(desk: Desk, email: str = AGENT) -> FlaskClient:
    desk.user(email, "agent", stakeholder="bko-police-c4")
    client = desk.app.test_client()
    assert sign_in_as(desk.app, client, email, PASSWORD).status_code == 302
    assert client.get("/admin/").status_code == 200
    return client


def _user_id(desk: Desk, email: str) -> int:
    with Session(desk.runtime.engine) as s:
        return s.exec(select(User.id).where(User.email == email)).one()


def _signed_out(client: FlaskClient) -> bool:
    response = client.get("/admin/")
    return response.status_code == 302 and "/admin/login" in response.headers["Location"]


def test_a_session_lives_eight_hours_not_flasks_31_days(desk: Desk) -> None:
    assert desk.app.config["PERMANENT_SESSION_LIFETIME"] == timedelta(hours=8)
    desk.user(AGENT, "agent", stakeholder="bko-police-c4")
    response = sign_in_as(desk.app, desk.client, AGENT, PASSWORD)
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    expires = parsedate_to_datetime(cookie.split("Expires=")[1].split(";")[0])
    left = expires - datetime.now(UTC)
    assert timedelta(hours=7, minutes=59) <= left <= timedelta(hours=8, minutes=1)


def test_a_session_ends_after_eight_hours_however_active(desk: Desk) -> None:
    client = _agent(desk)
    with client.session_transaction() as sess:
        sess["_opened"] -= 7 * 3600 + 59 * 60  # opened 7 h 59 ago: still on
    assert client.get("/admin/").status_code == 200
    with client.session_transaction() as sess:
        sess["_opened"] -= 2 * 60  # 8 h 01
    assert _signed_out(client)


def test_a_session_unused_for_an_hour_ends(desk: Desk) -> None:
    client = _agent(desk)
    with client.session_transaction() as sess:
        sess["_seen"] -= 59 * 60
    assert client.get("/admin/").status_code == 200  # used: the hour starts again
    with client.session_transaction() as sess:
        sess["_seen"] -= 61 * 60
    assert _signed_out(client)


def test_a_cookie_copied_before_sign_out_does_not_work_after_it(desk: Desk) -> None:
    client = _agent(desk)
    copy = desk.app.test_client()
    copy.set_cookie("session", client.get_cookie("session").value)
    other_device = _agent_again(desk)
    assert copy.get("/admin/").status_code == 200
    client.post("/admin/logout", data={"csrf_token": csrf_token(client, "/admin/")})
    assert _signed_out(client)
    assert _signed_out(copy)
    assert _signed_out(other_device)  # sign-out ends every session of the user


def _agent_again(desk: Desk) -> FlaskClient:
    client = desk.app.test_client()
    assert sign_in_as(desk.app, client, AGENT, PASSWORD).status_code == 302
    return client


def test_a_password_reset_ends_the_users_sessions(desk: Desk) -> None:
    agent = _agent(desk)
    desk.user(ADMIN, "admin")
    desk.login(ADMIN)
    token = desk.token()
    reset = desk.client.post(
        f"/admin/users/{_user_id(desk, AGENT)}/password", data={"csrf_token": token}
    )
    assert reset.status_code == 200
    assert _signed_out(agent)
    assert desk.client.get("/admin/").status_code == 200  # the administrator's goes on


@pytest.mark.parametrize(
    "change",
    [
        {"role": "agent", "stakeholder": "bko-police-c1", "active": "1"},  # scope
        {"role": "analyst", "active": "1"},  # role
        {"role": "agent", "stakeholder": "bko-police-c4"},  # deactivated
    ],
)
def test_a_role_scope_or_active_change_ends_the_users_sessions(desk: Desk, change) -> None:
    agent = _agent(desk)
    desk.user(ADMIN, "admin")
    desk.login(ADMIN)
    response = desk.post(f"/admin/users/{_user_id(desk, AGENT)}", **change)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert _signed_out(agent)


def test_saving_a_user_unchanged_keeps_their_sessions(desk: Desk) -> None:
    agent = _agent(desk)
    desk.user(ADMIN, "admin")
    desk.login(ADMIN)
    same = {"role": "agent", "stakeholder": "bko-police-c4", "active": "1"}
    assert desk.post(f"/admin/users/{_user_id(desk, AGENT)}", **same).status_code == 302
    assert agent.get("/admin/").status_code == 200


def test_a_header_break_in_next_falls_back_to_the_admin(desk: Desk) -> None:
    """``next=/admin/\\r\\nX-Injected: 1`` with the right password was a 500."""
    desk.user(AGENT, "agent", stakeholder="bko-police-c4")
    response = password_step(
        desk.client, AGENT, PASSWORD, "/admin/login?next=%2Fadmin%2F%0D%0AX-Injected%3A%201"
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"
    assert "X-Injected" not in response.headers


@pytest.mark.parametrize(
    "target", ["/admin/\na", "/admin/\ta", "/admin/ x", "/admin/\x7f", "http:/admin/"]
)
def test_next_with_control_characters_falls_back(desk: Desk, target: str) -> None:
    from urllib.parse import quote

    desk.user(AGENT, "agent", stakeholder="bko-police-c4")
    response = password_step(desk.client, AGENT, PASSWORD, f"/admin/login?next={quote(target)}")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"


def test_every_admin_page_and_download_is_no_store(desk: Desk) -> None:
    report = desk.report(category="theft", language="fr")
    desk.user(ADMIN, "admin")
    desk.login(ADMIN)
    for url in [
        "/admin/",
        f"/admin/reports/{report.id}",
        "/admin/dashboard",
        "/admin/export",
        "/admin/export.csv",
        "/admin/export.json",
        "/admin/outbox",
        "/admin/audit",
        "/admin/users",
        "/admin/account",
        "/admin/prompts",
    ]:
        response = desk.client.get(url)
        response.get_data()  # downloads stream: read them to the end
        assert response.status_code == 200, url
        assert response.headers["Cache-Control"] == "no-store", url
    assert desk.app.test_client().get("/admin/login").headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("public_url", "sent"), [("https://c.example.ml", True), ("http://x", False)]
)
def test_strict_transport_security_when_the_public_url_is_https(
    settings, public_url: str, sent: bool
) -> None:
    app: Flask = create_app(
        {"TESTING": True, "SETTINGS": settings.model_copy(update={"public_url": public_url})}
    )
    for path in ("/admin/login", "/healthz"):
        header = app.test_client().get(path).headers.get("Strict-Transport-Security")
        assert (header == "max-age=31536000") if sent else header is None, path
