"""Sign-in throttling that a stranger cannot turn against staff (issue 22).

Before: 5 wrong passwords for a known e-mail refused its owner even with the right password for
15 minutes, and behind the TLS proxy every client had the proxy's address, so 30 failures from
anyone locked every staff member out.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from citoyen.models import LoginFailure
from citoyen.web import create_app
from tests.web.conftest import PASSWORD, Desk
from tests.web.signin import csrf_token, sign_in_as

AGENT = "agent@example.org"
OTHER = "other@example.org"


def _attempt(
    client: FlaskClient, email: str, password: str, address: str, forwarded: str | None = None
):
    environ = {"REMOTE_ADDR": address}
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    token = csrf_token(client)
    return client.post(
        "/admin/login",
        data={"email": email, "password": password, "csrf_token": token},
        environ_base=environ,
        headers=headers,
    )


def _age_failures(app: Flask, by: timedelta) -> None:
    """Move every recorded failure ``by`` into the past (time passing, without a sleep)."""
    with app.extensions["citoyen"].engine.begin() as conn:
        rows = conn.execute(sa.select(LoginFailure.id, LoginFailure.created_at)).all()
        for row_id, created in rows:
            conn.execute(
                sa.update(LoginFailure)
                .where(LoginFailure.id == row_id)
                .values(created_at=created - by)
            )


def _agent(desk: Desk, email: str = AGENT) -> None:
    desk.user(email, "agent", stakeholder="bko-police-c4")


def test_a_stranger_cannot_lock_the_user_out_of_their_usual_browser(desk: Desk) -> None:
    _agent(desk)
    mine = desk.app.test_client()
    assert _attempt(mine, AGENT, PASSWORD, "192.0.2.10").status_code == 302  # signed in once
    mine.post("/admin/logout", data={"csrf_token": csrf_token(mine, "/admin/")})
    stranger = desk.app.test_client()
    for n in range(12):
        response = _attempt(stranger, AGENT, "wrong password", f"198.51.100.{n}")
        assert response.status_code in (401, 429)
    # The stranger is held back...
    assert _attempt(stranger, AGENT, PASSWORD, "198.51.100.99").status_code == 429
    # ...the user, in the browser they signed in from, is not.
    assert _attempt(mine, AGENT, PASSWORD, "192.0.2.10").status_code == 302
    assert mine.get("/admin/").status_code == 200


def test_a_new_browser_waits_a_growing_delay_never_a_lockout(desk: Desk) -> None:
    _agent(desk)
    stranger = desk.app.test_client()
    for n in range(5):
        assert _attempt(stranger, AGENT, "wrong", f"198.51.100.{n}").status_code == 401
    fresh = desk.app.test_client()
    refused = _attempt(fresh, AGENT, PASSWORD, "192.0.2.20")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 30
    # Refused attempts are not counted: hammering does not make the wait longer.
    for _ in range(5):
        assert _attempt(stranger, AGENT, "wrong", "198.51.100.50").status_code == 429
    _age_failures(desk.app, timedelta(seconds=31))
    assert _attempt(fresh, AGENT, PASSWORD, "192.0.2.20").status_code == 302


def test_the_delay_doubles_up_to_five_minutes(desk: Desk) -> None:
    _agent(desk)
    stranger = desk.app.test_client()
    waits = []
    for n in range(12):
        response = _attempt(stranger, AGENT, "wrong", f"198.51.100.{n}")
        if response.status_code == 429:
            waits.append(int(response.headers["Retry-After"]))
            _age_failures(desk.app, timedelta(seconds=waits[-1]))
            assert _attempt(stranger, AGENT, "wrong", f"198.51.100.{n}").status_code == 401
    assert waits[:4] == [30, 60, 120, 240]
    assert max(waits) == 300


def test_an_address_over_its_hard_limit_is_refused_for_every_account(desk: Desk) -> None:
    _agent(desk)
    _agent(desk, OTHER)
    client = desk.app.test_client()
    for n in range(30):
        assert _attempt(client, f"nobody{n}@example.org", "wrong", "203.0.113.7").status_code == 401
    assert _attempt(client, AGENT, PASSWORD, "203.0.113.7").status_code == 429
    assert _attempt(desk.app.test_client(), OTHER, PASSWORD, "203.0.113.8").status_code == 302


def _behind_proxy(settings, proxies: int) -> Flask:
    return create_app(
        {"TESTING": True, "SETTINGS": settings.model_copy(update={"trusted_proxies": proxies})}
    )


def test_behind_a_trusted_proxy_each_client_is_counted_apart(settings) -> None:
    from tests.dialog import ready_runtime

    app = _behind_proxy(settings, 1)
    ready_runtime(app.extensions["citoyen"].settings)
    _make_agent(app)
    stranger = app.test_client()
    for n in range(30):
        response = _attempt(stranger, f"x{n}@example.org", "wrong", "10.0.0.1", "203.0.113.66")
        assert response.status_code == 401
    assert _attempt(stranger, AGENT, PASSWORD, "10.0.0.1", "203.0.113.66").status_code == 429
    staff = app.test_client()
    assert _attempt(staff, AGENT, PASSWORD, "10.0.0.1", "192.0.2.44").status_code == 302


def test_without_the_setting_forwarded_addresses_are_not_believed(settings) -> None:
    """A client must not choose its own address by sending X-Forwarded-For."""
    from tests.dialog import ready_runtime

    app = _behind_proxy(settings, 0)
    ready_runtime(app.extensions["citoyen"].settings)
    _make_agent(app)
    client = app.test_client()
    for n in range(30):
        forged = f"203.0.113.{n}"
        assert _attempt(client, f"x{n}@example.org", "wrong", "10.0.0.1", forged).status_code == 401
    assert _attempt(client, AGENT, PASSWORD, "10.0.0.1", "192.0.2.44").status_code == 429


def _make_agent(app: Flask) -> None:
    from citoyen.db import write_session
    from citoyen.services.users import create_user

    with write_session(app.extensions["citoyen"].engine) as s:
        create_user(s, AGENT, "agent", PASSWORD, "bko-police-c4")


def test_wrong_codes_close_the_second_step_not_the_password(desk: Desk) -> None:
    desk.user("admin@example.org", "admin")
    client = desk.app.test_client()
    for _ in range(5):
        assert _attempt(client, "admin@example.org", PASSWORD, "192.0.2.1").status_code == 302
        token = csrf_token(client, "/admin/login/code")
        wrong = client.post("/admin/login/code", data={"code": "000000", "csrf_token": token})
        assert wrong.status_code == 401
    assert _attempt(client, "admin@example.org", PASSWORD, "192.0.2.1").status_code == 302
    token = csrf_token(client, "/admin/login/code")
    good = client.post("/admin/login/code", data={"code": "123456", "csrf_token": token})
    assert good.status_code == 429
    # Another factor of another account is unaffected.
    desk.user("admin2@example.org", "admin")
    other = sign_in_as(desk.app, desk.app.test_client(), "admin2@example.org", PASSWORD)
    assert other.status_code == 302
