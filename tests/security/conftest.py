"""An app with every channel configured (Twilio signed webhooks, Telegram webhook secret)."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from sqlmodel import SQLModel

from citoyen.runtime import Runtime
from citoyen.services.setup import ensure_ready
from citoyen.web import create_app
from tests.channels.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL

TELEGRAM_SECRET = "s3cret-Webhook_token-for-tests"
TELEGRAM_TOKEN = "7000000001:AAFakeTokenForTests_0123456789abcdef"


# Cases per fuzzed endpoint: 40 in CI; bench/fuzz_webhooks.py sets 10,000 (docs/security.md §4).
FUZZ_EXAMPLES = int(os.environ.get("CITOYEN_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def report_statuses(endpoint: str, db_url: str, tally: Counter[int]) -> None:
    """With ``CITOYEN_FUZZ_REPORT=FILE``, append a fuzzed endpoint's spread of statuses (a JSON
    line): the bench prints them, to show the cases reached the parsing and the service, not
    only the signature check."""
    target = os.environ.get("CITOYEN_FUZZ_REPORT")
    if target:
        line = {
            "endpoint": endpoint,
            "database": db_url.split(":", 1)[0].split("+")[0],
            "cases": sum(tally.values()),
            "statuses": {str(k): v for k, v in sorted(tally.items())},
        }
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")


@pytest.fixture
def web_settings(settings: Any) -> Any:
    return settings.model_copy(
        update={
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_from_number": "+22320200000",
            "public_url": PUBLIC_URL,
            "telegram_bot_token": TELEGRAM_TOKEN,
            "telegram_webhook_secret": TELEGRAM_SECRET,
        }
    )


@pytest.fixture
def app(web_settings: Any) -> Flask:
    # TESTING propagates exceptions: an unhandled error fails the test instead of becoming a 500.
    app = create_app({"TESTING": True, "SETTINGS": web_settings})
    ensure_ready(app.extensions["citoyen"])
    return app


@pytest.fixture
def runtime(app: Flask) -> Runtime:
    return app.extensions["citoyen"]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def snapshot(engine: sa.engine.Engine) -> Mapping[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order: two equal snapshots mean nothing changed."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            result = conn.execute(sa.select(table).order_by(*table.primary_key.columns))
            rows[table.name] = [tuple(map(repr, row)) for row in result]
    return rows
