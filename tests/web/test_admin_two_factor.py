"""Two-factor sign-in through the real pages (issue 22): enrolment with the QR code, codes and
recovery codes at sign-in, required roles, audit events, resets.

Accounts here are created without the helpers' automatic enrolment, so every step is the one a
person takes: the secret is read from the enrolment page and codes are computed by pyotp, as an
authenticator app would.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET

import pyotp
import pytest
from flask.testing import FlaskClient
from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.models import AuditEvent, User
from citoyen.services.users import create_user
from tests.web.conftest import PASSWORD, Desk
from tests.web.signin import csrf_token, password_step

ADMIN = "admin@example.org"
AGENT = "agent@example.org"


def _create(desk: Desk, email: str, role: str, **scope: str) -> None:
    with write_session(desk.runtime.engine) as s:
        create_user(s, email, role, PASSWORD, scope.get("stakeholder"), scope.get("area"))


def _audits(desk: Desk, action: str) -> list[AuditEvent]:
    with Session(desk.runtime.engine) as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def _user(desk: Desk, email: str) -> User:
    with Session(desk.runtime.engine) as s:
        return s.exec(select(User).where(User.email == email)).one()


def _code(secret: str, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(int(time.time()) + 30 * steps_ahead)


def _enrol_page(client: FlaskClient) -> tuple[str, str]:
    """The enrolment page: its secret (as typed by hand) and its QR code's SVG."""
    response = client.get("/admin/two-factor/enrol")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    secret = re.search(r'<code id="totp-secret">([A-Z2-7 ]+)</code>', html).group(1)
    svg = re.search(r"<svg .*?</svg>", html, re.S).group(0)
    ET.fromstring(svg)  # well-formed inline SVG, nothing loaded from elsewhere
    return secret.replace(" ", ""), svg


def _post_code(client: FlaskClient, path: str, code: str):
    return client.post(path, data={"code": code, "csrf_token": csrf_token(client, path)})


def test_an_administrator_must_enrol_before_any_page_opens(desk: Desk) -> None:
    _create(desk, ADMIN, "admin")
    client = desk.client
    response = password_step(client, ADMIN, PASSWORD, "/admin/login?next=%2Fadmin%2Fusers")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/two-factor/enrol"
    assert client.get("/admin/").status_code == 302  # not signed in yet
    secret, _svg = _enrol_page(client)
    assert _enrol_page(client)[0] == secret  # a reload shows the same secret
    assert _post_code(client, "/admin/two-factor/enrol", "000000").status_code == 400
    done = _post_code(client, "/admin/two-factor/enrol", _code(secret))
    assert done.status_code == 200
    assert done.headers["Cache-Control"] == "no-store"
    html = done.get_data(as_text=True)
    codes = re.findall(r"<code>([0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4})</code>", html)
    assert len(set(codes)) == 10
    assert 'href="/admin/users"' in html  # where they were going
    assert client.get("/admin/users").status_code == 200
    [event] = _audits(desk, "two_factor_enrolled")
    assert event.user_id == _user(desk, ADMIN).id
    # Stored: the secret encrypted, the recovery codes hashed; neither in clear.
    user = _user(desk, ADMIN)
    assert user.totp_enabled_at is not None
    assert secret not in (user.totp_secret_enc or "")
    assert desk.runtime.vault.decrypt(user.totp_secret_enc) == secret
    assert not any(c in str(user.recovery_codes) for c in codes)
    assert not any(c.replace("-", "") in str(user.recovery_codes) for c in codes)


def _enrolled_admin(desk: Desk) -> tuple[str, list[str]]:
    _create(desk, ADMIN, "admin")
    client = desk.app.test_client()
    password_step(client, ADMIN, PASSWORD)
    secret, _ = _enrol_page(client)
    html = _post_code(client, "/admin/two-factor/enrol", _code(secret)).get_data(as_text=True)
    return secret, re.findall(r"<code>([0-9a-f-]{14})</code>", html)


def test_sign_in_asks_the_code_and_accepts_each_once(desk: Desk) -> None:
    secret, _codes = _enrolled_admin(desk)
    client = desk.app.test_client()
    assert password_step(client, ADMIN, PASSWORD).headers["Location"] == "/admin/login/code"
    assert client.get("/admin/").status_code == 302
    assert _post_code(client, "/admin/login/code", "123456").status_code == 401
    assert len(_audits(desk, "two_factor_failed")) == 1
    code = _code(secret, 1)  # the next step's code: within the drift allowed, unused yet
    good = _post_code(client, "/admin/login/code", code)
    assert good.status_code == 302 and good.headers["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    [used] = _audits(desk, "two_factor_used")
    assert used.data == {"method": "totp"}
    # The same code again, from another browser that has the password: refused.
    other = desk.app.test_client()
    password_step(other, ADMIN, PASSWORD)
    assert _post_code(other, "/admin/login/code", code).status_code == 401


def test_a_recovery_code_works_once(desk: Desk) -> None:
    _secret, codes = _enrolled_admin(desk)
    for expected in (302, 401):
        client = desk.app.test_client()
        password_step(client, ADMIN, PASSWORD)
        assert _post_code(client, "/admin/login/code", codes[3].upper()).status_code == expected
    assert [e.data for e in _audits(desk, "two_factor_used")] == [{"method": "recovery"}]
    assert len(_user(desk, ADMIN).recovery_codes) == 9


def test_the_code_step_expires_and_needs_the_password_first(desk: Desk) -> None:
    secret, _ = _enrolled_admin(desk)
    client = desk.app.test_client()
    assert client.get("/admin/login/code").headers["Location"].endswith("/admin/login")
    password_step(client, ADMIN, PASSWORD)
    with client.session_transaction() as sess:
        pending = sess["_signing_in"]
        pending["at"] -= 6 * 60
        sess["_signing_in"] = pending
    token = csrf_token(client)  # the code page itself now sends back to the password
    response = client.post(
        "/admin/login/code", data={"code": _code(secret, 1), "csrf_token": token}
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/login")
    assert client.get("/admin/").status_code == 302


def test_an_agent_signs_in_with_a_password_and_may_turn_it_on(desk: Desk) -> None:
    _create(desk, AGENT, "agent", stakeholder="bko-police-c4")
    client = desk.client
    response = password_step(client, AGENT, PASSWORD)
    assert response.headers["Location"] == "/admin/"
    assert "Désactivée" in client.get("/admin/account").get_data(as_text=True)
    secret, _ = _enrol_page(client)
    assert _post_code(client, "/admin/two-factor/enrol", _code(secret)).status_code == 200
    assert client.get("/admin/").status_code == 200  # this session goes on
    again = desk.app.test_client()
    assert password_step(again, AGENT, PASSWORD).headers["Location"] == "/admin/login/code"
    # Optional for an agent: turned off with a current code.
    client.post(
        "/admin/account/two-factor/off",
        data={"code": _code(secret, 1), "csrf_token": csrf_token(client, "/admin/account")},
    )
    assert _user(desk, AGENT).totp_enabled_at is None
    assert len(_audits(desk, "two_factor_off")) == 1
    assert password_step(desk.app.test_client(), AGENT, PASSWORD).headers["Location"] == "/admin/"


@pytest.mark.parametrize("role", ["coordinator", "admin"])
def test_required_roles_cannot_turn_it_off(desk: Desk, role: str) -> None:
    _create(desk, "c@example.org", role, area="ML-BKO")
    client = desk.app.test_client()
    password_step(client, "c@example.org", PASSWORD)
    secret, _ = _enrol_page(client)
    _post_code(client, "/admin/two-factor/enrol", _code(secret))
    response = client.post(
        "/admin/account/two-factor/off",
        data={"code": _code(secret, 1), "csrf_token": csrf_token(client, "/admin/account")},
    )
    assert response.status_code == 303
    assert _user(desk, "c@example.org").totp_enabled_at is not None


def test_an_administrator_resets_a_lost_phone(desk: Desk) -> None:
    _create(desk, "c@example.org", "coordinator", area="ML-BKO")
    coordinator = desk.app.test_client()
    password_step(coordinator, "c@example.org", PASSWORD)
    secret, _ = _enrol_page(coordinator)
    _post_code(coordinator, "/admin/two-factor/enrol", _code(secret))
    assert coordinator.get("/admin/").status_code == 200
    desk.user(ADMIN, "admin")  # enrolled by the helpers
    desk.login(ADMIN)
    target = _user(desk, "c@example.org").id
    response = desk.post(f"/admin/users/{target}/two-factor/reset")
    assert response.status_code == 302
    assert coordinator.get("/admin/").status_code == 302  # their sessions ended
    [event] = _audits(desk, "two_factor_reset")
    assert event.target_id == target
    again = desk.app.test_client()
    response = password_step(again, "c@example.org", PASSWORD)
    assert response.headers["Location"] == "/admin/two-factor/enrol"  # enrols again
    assert _enrol_page(again)[0] != secret


def test_reveal_roles_setting_decides_who_must_enrol(settings) -> None:
    from citoyen.web import create_app
    from tests.dialog import ready_runtime

    app = create_app(
        {"TESTING": True, "SETTINGS": settings.model_copy(update={"reveal_roles": "admin,agent"})}
    )
    ready_runtime(app.extensions["citoyen"].settings)
    with write_session(app.extensions["citoyen"].engine) as s:
        create_user(s, AGENT, "agent", PASSWORD, "bko-police-c4")
        create_user(s, "c@example.org", "coordinator", PASSWORD, area_code="ML-BKO")
    agent = password_step(app.test_client(), AGENT, PASSWORD)
    assert agent.headers["Location"] == "/admin/two-factor/enrol"
    coordinator = password_step(app.test_client(), "c@example.org", PASSWORD)
    assert coordinator.headers["Location"] == "/admin/"
