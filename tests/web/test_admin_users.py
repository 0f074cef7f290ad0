"""User management: administrators only; every change audited; passwords shown once and working."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select

from citoyen.models import AuditEvent, Stakeholder, User
from citoyen.runtime import Runtime
from citoyen.web import create_app
from tests.web.conftest import PASSWORD, csrf_token, sign_in
from tests.web.signin import sign_in_as


@pytest.fixture
def app(rt: Runtime) -> Flask:
    return create_app({"TESTING": True}, runtime=rt)


def login(app: Flask, email: str, password: str = PASSWORD) -> tuple[FlaskClient, int]:
    client = app.test_client()
    response = sign_in_as(app, client, email, password)
    return client, response.status_code


def audits(rt: Runtime, action: str) -> list[AuditEvent]:
    with Session(rt.engine) as s:
        return list(
            s.exec(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))
        )


def user(rt: Runtime, email: str) -> User:
    with Session(rt.engine) as s:
        return s.exec(select(User).where(User.email == email)).one()


def shown_password(html: str) -> str:
    match = re.search(r'id="new-password">([^<]+)<', html)
    assert match, "no password on the page"
    return match.group(1)


@pytest.mark.parametrize("role", ["coordinator", "agent", "analyst"])
def test_only_admins(app: Flask, role: str) -> None:
    scope = {"agent": {"stakeholder": "bko-police-c4"}, "coordinator": {"area": "ML-BKO"}}
    client = sign_in(app, f"{role}@example.org", role, **scope.get(role, {}))
    assert client.get("/admin/users").status_code == 403
    assert client.get("/admin/users/new").status_code == 403
    token = csrf_token(client, "/admin/dashboard")
    response = client.post(
        "/admin/users/new",
        data={"email": "x@example.org", "role": "admin", "csrf_token": token},
    )
    assert response.status_code == 403
    assert audits(app.extensions["citoyen"], "user_created") == []


def test_list_shows_accounts(app: Flask, rt: Runtime) -> None:
    client = sign_in(app, "admin@example.org", "admin")
    sign_in(app, "agent@example.org", "agent", stakeholder="bko-police-c4")
    html = client.get("/admin/users").get_data(as_text=True)
    assert "agent@example.org" in html
    assert "Commissariat de police, Commune IV" in html


def test_create_shows_a_working_password_once_and_audits(app: Flask, rt: Runtime) -> None:
    client = sign_in(app, "admin@example.org", "admin")
    token = csrf_token(client, "/admin/users/new")
    response = client.post(
        "/admin/users/new",
        data={
            "email": "Coord@Example.org",
            "role": "coordinator",
            "area": "ML-4.segou",
            "csrf_token": token,
        },
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    password = shown_password(response.get_data(as_text=True))
    created = user(rt, "coord@example.org")
    assert created.role == "coordinator" and created.area_id is not None
    [event] = audits(rt, "user_created")
    assert event.target_id == created.id
    assert event.data["role"] == "coordinator" and event.data["area"] == "ML-4.segou"
    assert password not in str(event.data)
    _client, status = login(app, "coord@example.org", password)
    assert status == 302
    # The list page does not show it again.
    assert password not in client.get("/admin/users").get_data(as_text=True)


def test_create_refused_changes_nothing(app: Flask, rt: Runtime) -> None:
    client = sign_in(app, "admin@example.org", "admin")
    token = csrf_token(client, "/admin/users/new")
    response = client.post(
        "/admin/users/new",
        data={"email": "agent2@example.org", "role": "agent", "csrf_token": token},
    )
    assert response.status_code == 400  # an agent needs a stakeholder
    assert "stakeholder" in response.get_data(as_text=True)
    assert audits(rt, "user_created") == []
    with Session(rt.engine) as s:
        assert s.exec(select(User).where(User.email == "agent2@example.org")).first() is None


def test_edit_role_scope_and_active_audited(app: Flask, rt: Runtime) -> None:
    client = sign_in(app, "admin@example.org", "admin")
    sign_in(app, "agent@example.org", "agent", stakeholder="bko-police-c4")
    target = user(rt, "agent@example.org")
    page = client.get(f"/admin/users/{target.id}")
    assert page.status_code == 200
    token = csrf_token(client, f"/admin/users/{target.id}")
    response = client.post(
        f"/admin/users/{target.id}",
        data={"role": "agent", "stakeholder": "bko-police-c1", "csrf_token": token},
    )
    assert response.status_code == 302
    changed = user(rt, "agent@example.org")
    with Session(rt.engine) as s:
        c1 = s.exec(select(Stakeholder.id).where(Stakeholder.code == "bko-police-c1")).one()
    assert changed.stakeholder_id == c1
    assert changed.active is False  # the box was not ticked
    [event] = audits(rt, "user_updated")
    assert event.target_id == target.id
    assert event.data["before"]["stakeholder"] == "bko-police-c4"
    assert event.data["after"] == {
        "role": "agent",
        "stakeholder": "bko-police-c1",
        "area": None,
        "active": False,
    }
    # Deactivated: the agent cannot sign in any more.
    assert login(app, "agent@example.org")[1] != 302


def test_admin_cannot_demote_themselves(app: Flask, rt: Runtime) -> None:
    client = sign_in(app, "admin@example.org", "admin")
    me = user(rt, "admin@example.org")
    token = csrf_token(client, f"/admin/users/{me.id}")
    response = client.post(
        f"/admin/users/{me.id}",
        data={"role": "analyst", "active": "1", "csrf_token": token},
    )
    assert response.status_code == 400
    assert user(rt, "admin@example.org").role == "admin"
    assert audits(rt, "user_updated") == []


def test_password_reset(app: Flask, rt: Runtime) -> None:
    client = sign_in(app, "admin@example.org", "admin")
    sign_in(app, "analyst@example.org", "analyst")
    target = user(rt, "analyst@example.org")
    token = csrf_token(client, f"/admin/users/{target.id}")
    response = client.post(f"/admin/users/{target.id}/password", data={"csrf_token": token})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    password = shown_password(response.get_data(as_text=True))
    assert login(app, "analyst@example.org")[1] != 302  # the old password no longer works
    assert login(app, "analyst@example.org", password)[1] == 302
    [event] = audits(rt, "password_reset")
    assert event.target_id == target.id and event.user_id == user(rt, "admin@example.org").id


def test_post_without_csrf_token_is_refused(app: Flask, rt: Runtime) -> None:
    client = sign_in(app, "admin@example.org", "admin")
    sign_in(app, "analyst@example.org", "analyst")
    target = user(rt, "analyst@example.org")
    assert client.post(f"/admin/users/{target.id}/password").status_code == 400
    response = client.post("/admin/users/new", data={"email": "n@example.org", "role": "admin"})
    assert response.status_code == 400
    assert audits(rt, "password_reset") == [] and audits(rt, "user_created") == []


def test_unknown_user_is_404(app: Flask) -> None:
    client = sign_in(app, "admin@example.org", "admin")
    assert client.get("/admin/users/999999").status_code == 404
