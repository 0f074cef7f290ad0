"""Signing staff in as a browser would, second factor included.

Administrators and coordinators (the default ``CITOYEN_REVEAL_ROLES``) must use a second factor.
The helpers enrol them through the service when they are created (:func:`enrol`) and answer the
code step of sign-in with a code computed by pyotp from the stored secret, as an authenticator
app would. A code is accepted once per 30-second step: a second sign-in of the same user within
one step uses one of their recovery codes instead, as a person without their phone would.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

import pyotp
from flask import Flask
from flask.testing import FlaskClient

from citoyen.db import write_session
from citoyen.models import User
from citoyen.services import twofactor


@dataclass
class Factor:
    secret: str
    recovery: list[str]
    last_step: int
    used_recovery: list[str] = field(default_factory=list)

    def next_code(self) -> str:
        step = int(time.time()) // twofactor.STEP_SECONDS
        if step > self.last_step:
            self.last_step = step
            return pyotp.TOTP(self.secret).at(step * twofactor.STEP_SECONDS)
        code = self.recovery.pop()
        self.used_recovery.append(code)
        return code


_FACTORS: WeakKeyDictionary[Flask, dict[str, Factor]] = WeakKeyDictionary()


def factor(app: Flask, email: str) -> Factor:
    return _FACTORS[app][email]


def needs_factor(app: Flask, role: str) -> bool:
    return twofactor.required_for(role, app.extensions["citoyen"].settings.reveal_role_list)


def enrol(app: Flask, email: str) -> Factor:
    """Turn two-factor sign-in on for ``email``, as its enrolment page would."""
    runtime = app.extensions["citoyen"]
    with write_session(runtime.engine) as s:
        from sqlmodel import select

        user = s.exec(select(User).where(User.email == email)).one()
        secret = twofactor.pending_secret(s, user, runtime.vault)
        step = int(time.time()) // twofactor.STEP_SECONDS
        code = pyotp.TOTP(secret).at(step * twofactor.STEP_SECONDS)
        recovery = twofactor.confirm_enrolment(s, user, runtime.vault, code)
        step = user.totp_last_step or step
    found = _FACTORS.setdefault(app, {})[email] = Factor(secret, recovery, step)
    return found


def csrf_token(client: FlaskClient, path: str = "/admin/login") -> str:
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def second_step(app: Flask, client: FlaskClient, response: Any, email: str) -> Any:
    """After the password: the code step when sign-in asks for one, else ``response``."""
    if response.status_code != 302 or not response.headers["Location"].endswith(
        "/admin/login/code"
    ):
        return response
    token = csrf_token(client, "/admin/login/code")
    code = factor(app, email).next_code()
    return client.post("/admin/login/code", data={"code": code, "csrf_token": token})


def password_step(client: FlaskClient, email: str, password: str, path: str = "/admin/login"):
    token = csrf_token(client)
    return client.post(path, data={"email": email, "password": password, "csrf_token": token})


def sign_in_as(
    app: Flask, client: FlaskClient, email: str, password: str, path: str = "/admin/login"
):
    """Both steps of signing in; the last answer (a redirect when it worked)."""
    return second_step(app, client, password_step(client, email, password, path), email)
