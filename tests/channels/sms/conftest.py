"""Fixtures for the Twilio SMS channel: an app with Twilio configured, on SQLite and PostgreSQL."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, func, select

from citoyen.channels.sms import MAX_SEGMENTS
from citoyen.engine.sms import segments
from citoyen.runtime import Runtime
from citoyen.services.setup import ensure_ready
from citoyen.web import create_app
from tests.channels.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, signed_post

FROM_NUMBER = "+22320200000"


@pytest.fixture
def sms_settings(settings):
    return settings.model_copy(
        update={
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_from_number": FROM_NUMBER,
            "public_url": PUBLIC_URL,
        }
    )


@pytest.fixture
def app(sms_settings) -> Flask:
    app = create_app({"TESTING": True, "SETTINGS": sms_settings})
    ensure_ready(app.extensions["citoyen"])  # the shipped areas, for place menus
    return app


@pytest.fixture
def runtime(app: Flask) -> Runtime:
    return app.extensions["citoyen"]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class Phone:
    """A citizen's phone texting the service through Twilio's webhook."""

    def __init__(self, client: FlaskClient, number: str) -> None:
        self.client = client
        self.number = number
        self.n = 0

    def text(self, body: str, sid: str | None = None, **extra: str):
        self.n += 1
        sid = sid or f"SM{self.number[-6:]}{self.n:026d}"
        form = {"From": self.number, "To": FROM_NUMBER, "Body": body, "MessageSid": sid}
        form |= {"AccountSid": ACCOUNT_SID, "NumMedia": "0", **extra}
        return signed_post(self.client, "/twilio/sms", form)

    def say(self, body: str) -> list[str]:
        """Text ``body``; the messages of the TwiML reply (checked for allowed verbs and size)."""
        response = self.text(body)
        assert response.status_code == 200, response.get_data(as_text=True)
        messages = twiml_messages(response)
        for message in messages:
            assert segments(message) <= MAX_SEGMENTS, message
        return messages


def twiml_messages(response) -> list[str]:
    """The texts of a TwiML reply; fails on anything but <Response> of plain <Message>s."""
    assert response.mimetype == "text/xml"
    root = ET.fromstring(response.get_data())
    assert root.tag == "Response"
    assert root.attrib == {}
    texts = []
    for child in root:
        assert child.tag == "Message", f"unexpected TwiML verb {child.tag}"
        assert child.attrib == {}, f"unexpected attributes {child.attrib}"
        assert list(child) == [], "a <Message> must hold plain text only"
        assert child.text and child.text.strip()
        texts.append(child.text)
    return texts


def count(runtime: Runtime, model, *where) -> int:
    with Session(runtime.engine) as session:
        return session.exec(select(func.count()).select_from(model).where(*where)).one()


def counts(runtime: Runtime) -> Mapping[str, int]:
    from citoyen.models import Contact, Conversation, Message, Outbox, Report

    return {
        m.__tablename__: count(runtime, m) for m in (Message, Contact, Conversation, Report, Outbox)
    }


def words(*texts: str) -> str:
    """Texts compared regardless of where a long one was cut into several messages."""
    return " ".join(" ".join(texts).split())
