"""Fixtures for the Telegram channel: a configured runtime, the webhook client, update builders,
and the fake Bot API that the real ``telegram.Bot`` talks to (fake_bot_api.py).

Every database test runs on SQLite and PostgreSQL (the ``settings`` fixture of tests/conftest.py).
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pytest_httpserver import HTTPServer
from sqlmodel import Session, func, select

from citoyen.channels.telegram_sender import TelegramFileFetcher, TelegramSender
from citoyen.models import Contact, Message, Outbox
from citoyen.runtime import Runtime
from citoyen.services.contacts import find_contact
from citoyen.services.dispatch import Dispatcher, DispatchStats
from citoyen.services.setup import ensure_ready
from citoyen.web import create_app
from tests.channels.telegram.fake_bot_api import TOKEN, FakeBotApi

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "s3cret-Webhook_token-for-tests"
PUBLIC_URL = "https://citoyen.example.ml"
FR_USER = 1111111
BM_USER = 2222222


def fixture(name: str) -> dict[str, Any]:
    """An update as the Bot API documents it (fixtures/<name>.json)."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


class Updates:
    """Updates from one Telegram user, built from the fixtures with fresh update ids."""

    _ids = itertools.count(700000001)

    def __init__(self, user_id: int = FR_USER) -> None:
        self.user_id = user_id

    def _from(self, name: str) -> dict[str, Any]:
        data = copy.deepcopy(fixture(name))
        data["update_id"] = next(self._ids)
        body = next(v for k, v in data.items() if k != "update_id")
        for holder in (body, body.get("message") or {}):
            if "chat" in holder and holder["chat"]["type"] == "private":
                holder["chat"]["id"] = self.user_id
        body["from"]["id"] = self.user_id
        return data

    def text(self, text: str) -> dict[str, Any]:
        data = self._from("message_text")
        data["message"]["text"] = text
        return data

    def command(self, command: str) -> dict[str, Any]:
        data = self._from("command_start")
        data["message"]["text"] = command
        data["message"]["entities"][0]["length"] = len(command.split()[0])
        return data

    def button(self, key: str) -> dict[str, Any]:
        data = self._from("callback_query")
        data["callback_query"]["data"] = key
        data["callback_query"]["id"] = f"cbq-{data['update_id']}"
        return data

    def location(self, latitude: float, longitude: float) -> dict[str, Any]:
        data = self._from("location")
        data["message"]["location"] = {"latitude": latitude, "longitude": longitude}
        return data

    def contact(self, phone: str, user_id: int | None = None) -> dict[str, Any]:
        """A shared contact: by default the user's own (what the "call me" button sends: its
        ``user_id`` is the sender's), else the card of ``user_id``. Telegram writes the number
        without "+"."""
        data = self._from("contact")
        data["message"]["contact"]["phone_number"] = phone.removeprefix("+")
        data["message"]["contact"]["user_id"] = self.user_id if user_id is None else user_id
        return data

    def voice(self) -> dict[str, Any]:
        return self._from("voice")

    def photo(self, caption: str | None = None) -> dict[str, Any]:
        data = self._from("photo")
        if caption is None:
            data["message"].pop("caption")
        else:
            data["message"]["caption"] = caption
        return data

    def edited(self) -> dict[str, Any]:
        return self._from("edited_message")

    def kicked(self) -> dict[str, Any]:
        return self._from("my_chat_member")


@pytest.fixture
def tg_settings(settings: Any) -> Any:
    """The test's settings with Telegram configured (token, webhook secret, https URL)."""
    return settings.model_copy(
        update={
            "telegram_bot_token": TOKEN,
            "telegram_webhook_secret": SECRET,
            "public_url": PUBLIC_URL,
        }
    )


@pytest.fixture
def runtime(tg_settings: Any) -> Runtime:
    runtime = Runtime(tg_settings)
    ensure_ready(runtime)  # migrated, shipped areas seeded
    return runtime


@pytest.fixture
def app(runtime: Runtime) -> Flask:
    return create_app({"TESTING": True}, runtime=runtime)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def fake_api(httpserver: HTTPServer) -> FakeBotApi:
    return FakeBotApi(httpserver)


@pytest.fixture
def sender(fake_api: FakeBotApi) -> Iterator[TelegramSender]:
    sender = TelegramSender(fake_api.bot())
    yield sender
    sender.close()


@pytest.fixture
def fetcher(fake_api: FakeBotApi) -> Iterator[TelegramFileFetcher]:
    client = TelegramFileFetcher(fake_api.bot())
    yield client
    client.close()


def post(client: FlaskClient, data: Any, secret: str | None = SECRET, **kwargs: Any) -> Any:
    """POST an update to the webhook as Telegram does (JSON, secret header)."""
    headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
    if isinstance(data, dict | list):
        return client.post("/telegram/webhook", json=data, headers=headers, **kwargs)
    return client.post(
        "/telegram/webhook", data=data, headers=headers, content_type="application/json"
    )


def dispatch(runtime: Runtime, sender: TelegramSender) -> DispatchStats:
    """Send everything due through ``sender`` (no rate limits: tests do not wait)."""
    dispatcher = Dispatcher(runtime, {"telegram": sender}, channel_limits={}, recipient_limits={})
    return dispatcher.run_once()


def count(runtime: Runtime, model: Any) -> int:
    with Session(runtime.engine) as session:
        return session.exec(select(func.count()).select_from(model)).one()


def counts(runtime: Runtime) -> dict[str, int]:
    """Rows that any processed update would add."""
    return {m.__name__: count(runtime, m) for m in (Contact, Message, Outbox)}


def contact(runtime: Runtime, user_id: int = FR_USER) -> Contact | None:
    with Session(runtime.engine) as session:
        return find_contact(session, runtime.vault, f"telegram:{user_id}")


def outbox(runtime: Runtime) -> list[Outbox]:
    with Session(runtime.engine) as session:
        return list(session.exec(select(Outbox).order_by(Outbox.id)).all())
