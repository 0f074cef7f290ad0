from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from citoyen.db import write_session
from citoyen.services.users import create_user
from citoyen.web import create_app
from tests.web.signin import csrf_token, enrol, needs_factor, sign_in_as

PASSWORD = "correct horse battery"


@pytest.fixture
def app(settings) -> Flask:
    return create_app({"TESTING": True, "SETTINGS": settings})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _created(app: Flask, email: str, role: str) -> str:
    """A new account of a role that requires a second factor is enrolled (tests/web/signin)."""
    if needs_factor(app, role):
        enrol(app, email)
    return email


class Auth:
    def __init__(self, app: Flask, client: FlaskClient) -> None:
        self.app = app
        self.client = client

    def create(self, email: str = "moderateur@example.org", role: str = "admin") -> str:
        with write_session(self.app.extensions["citoyen"].engine) as session:
            create_user(session, email, role, PASSWORD)
        return _created(self.app, email, role)

    def login(self, email: str = "moderateur@example.org", password: str = PASSWORD):
        return sign_in_as(self.app, self.client, email, password)


@pytest.fixture
def auth(app: Flask, client: FlaskClient) -> Auth:
    return Auth(app, client)


# --- casework: a ready deployment, staff of each role, reports made the real way --------------


class Desk:
    """A ready deployment (areas, shipped stakeholders) behind ``app``, and helpers to create
    staff and reports and to sign in as someone."""

    def __init__(self, app: Flask, client: FlaskClient) -> None:
        from tests.dialog import ready_runtime

        self.app = app
        self.client = client
        self.runtime = app.extensions["citoyen"]
        ready_runtime(self.runtime.settings)

    def user(
        self,
        email: str,
        role: str,
        stakeholder: str | None = None,
        area: str | None = None,
    ) -> str:
        with write_session(self.runtime.engine) as session:
            create_user(session, email, role, PASSWORD, stakeholder, area_code=area)
        return _created(self.app, email, role)

    def login(self, email: str, client: FlaskClient | None = None):
        """Sign in as ``email`` (signing out whoever was signed in)."""
        client = client or self.client
        client.delete_cookie("session")
        return sign_in_as(self.app, client, email, PASSWORD)

    def report(self, **kwargs):
        from tests.routing.support import make_report

        kwargs.setdefault("now", __import__("datetime").datetime.now(__import__("datetime").UTC))
        return make_report(self.runtime, **kwargs)

    def token(self, path: str = "/admin/dashboard") -> str:
        return csrf_token(self.client, path)

    def post(self, path: str, **data: str):
        return self.client.post(path, data={"csrf_token": self.token(), **data})


@pytest.fixture
def desk(app: Flask, client: FlaskClient) -> Desk:
    return Desk(app, client)


# --- a ready deployment for page tests: areas and stakeholders, one signed-in client per user --


@pytest.fixture(autouse=True)
def _fresh_routers():  # type: ignore[no-untyped-def]
    """Each test loads the routing configuration of its own runtime."""
    from citoyen.services import queues

    queues.clear_routers()
    yield
    queues.clear_routers()


@pytest.fixture
def rt(settings):  # type: ignore[no-untyped-def]
    """A migrated runtime with the shipped areas and stakeholders."""
    from citoyen.services import queues
    from tests.dialog import ready_runtime

    runtime = ready_runtime(settings)
    queues.sync_from_settings(runtime)
    return runtime


def sign_in(app: Flask, email: str, role: str, **scope: str | None) -> FlaskClient:
    """A new client signed in as a new user of ``role`` (scope: stakeholder and area codes),
    the admin in English."""
    with write_session(app.extensions["citoyen"].engine) as s:
        create_user(
            s, email, role, PASSWORD, scope.get("stakeholder"), scope.get("area"), language="en"
        )
    _created(app, email, role)
    client = app.test_client()
    response = sign_in_as(app, client, email, PASSWORD)
    assert response.status_code == 302
    return client
