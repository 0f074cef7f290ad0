from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from citoyen.db import write_session
from citoyen.services.users import create_user
from citoyen.web import create_app

PASSWORD = "correct horse battery"


@pytest.fixture
def app(settings) -> Flask:
    return create_app({"TESTING": True, "SETTINGS": settings})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf_token(client: FlaskClient, path: str = "/admin/login") -> str:
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


class Auth:
    def __init__(self, app: Flask, client: FlaskClient) -> None:
        self.app = app
        self.client = client

    def create(self, email: str = "moderateur@example.org", role: str = "admin") -> str:
        with write_session(self.app.extensions["citoyen"].engine) as session:
            create_user(session, email, role, PASSWORD)
        return email

    def login(self, email: str = "moderateur@example.org", password: str = PASSWORD):
        token = csrf_token(self.client)
        return self.client.post(
            "/admin/login", data={"email": email, "password": password, "csrf_token": token}
        )


@pytest.fixture
def auth(app: Flask, client: FlaskClient) -> Auth:
    return Auth(app, client)
