"""Fixtures for surveys: a runtime with Twilio and Telegram configured, contacts, definitions.

Every database test runs on SQLite and PostgreSQL (``settings`` from tests/conftest.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.models import Area, Contact, Conversation, Outbox, SurveyInvitation
from citoyen.runtime import Runtime
from citoyen.services.contacts import get_or_create_contact
from citoyen.services.setup import ensure_ready
from citoyen.services.surveys.definitions import SurveyDef
from citoyen.web import create_app
from tests.channels.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL

FROM_NUMBER = "+22320200000"
TG_TOKEN = "7000000001:AAFakeTokenForTests_0123456789abcdef"
TG_SECRET = "s3cret-Webhook_token-for-tests"
# Saturday 28 November 2026, 10:00 in Bamako (UTC+0 all year): inside the default quiet hours.
MORNING = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)

BASE: dict[str, Any] = {
    "id": "test_survey",
    "flow": "perceived_safety",
    "channels": ["telegram", "sms", "voice"],
    "expiry": "3d",
}


def definition(**changes: Any) -> SurveyDef:
    """A survey definition: the base above with ``changes`` (nested dicts replace)."""
    return SurveyDef.model_validate({**BASE, **changes})


@pytest.fixture
def survey_settings(settings: Any) -> Any:
    return settings.model_copy(
        update={
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_from_number": FROM_NUMBER,
            "telegram_bot_token": TG_TOKEN,
            "telegram_webhook_secret": TG_SECRET,
            "public_url": PUBLIC_URL,
        }
    )


@pytest.fixture
def runtime(survey_settings: Any) -> Runtime:
    runtime = Runtime(survey_settings)
    ensure_ready(runtime)
    return runtime


@pytest.fixture
def app(runtime: Runtime) -> Flask:
    return create_app({"TESTING": True}, runtime=runtime)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def add_contact(
    runtime: Runtime,
    address: str,
    *,
    language: str | None = "fr",
    area: str | None = "ML-BKO.commune-i",
    consent: bool | None = True,
    opted_out: bool = False,
    blocked: bool = False,
    last_channel: str | None = None,
    now: datetime = MORNING,
) -> int:
    """A contact as earlier conversations would have left it; returns its id.

    ``last_channel`` adds a completed conversation on that channel (the channel a phone contact
    last used decides between an SMS and a call).
    """
    with write_session(runtime.engine) as session:
        contact, _ = get_or_create_contact(session, runtime.vault, address, now)
        contact.language = language
        contact.survey_consent = consent
        contact.opted_out = opted_out
        contact.blocked = blocked
        if area is not None:
            contact.area_id = session.exec(select(Area.id).where(Area.code == area)).one()
        if last_channel is not None:
            session.add(
                Conversation(
                    contact_id=contact.id,
                    channel=last_channel,
                    flow_id="report",
                    flow_version="x",
                    node="done",
                    status="completed",
                    started_at=now,
                    updated_at=now,
                )
            )
        session.flush()
        return contact.id  # type: ignore[return-value]


def invitations(runtime: Runtime) -> list[SurveyInvitation]:
    with Session(runtime.engine) as session:
        return list(session.exec(select(SurveyInvitation).order_by(SurveyInvitation.id)).all())


def survey_rows(runtime: Runtime) -> list[Outbox]:
    with Session(runtime.engine) as session:
        return list(
            session.exec(select(Outbox).where(Outbox.kind == "survey").order_by(Outbox.id)).all()
        )


def contact_row(runtime: Runtime, contact_id: int) -> Contact:
    with Session(runtime.engine) as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        return contact
