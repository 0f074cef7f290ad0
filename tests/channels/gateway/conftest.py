"""Fixtures for SMS through local SIMs: a fake of SMS Gateway for Android's HTTP API, phones
configured for three operators, and webhooks signed as the app signs them.

The fake (pytest-httpserver) serves each phone under its own path, answers ``POST .../messages``
as the app's local server does (202 with the message state; 409 for an id it has already) and
records every message it accepted. Webhook bodies are shaped as the app's documentation shows
(docs/features/webhooks.md of android-sms-gateway/docs-web) and signed with its algorithm.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug import Request, Response

from citoyen.config import GatewayPhone
from citoyen.runtime import Runtime
from citoyen.services.setup import ensure_ready
from citoyen.web import create_app
from tests.channels.sms.test_webhook import t  # noqa: F401 (the texts fixture, shared)

SIGNING_KEY = "k3y-0f-the-ph0nes"
DEVICE_ID = "ffffffffceb0b1db0000018e937c815b"
ORANGE_NUMBER = "+22376000031"  # Orange Mali
MOOV_NUMBER = "+22366000032"  # Moov Africa Malitel (Sotelma)
TELECEL_NUMBER = "+22350000033"  # Telecel (Atel)


@dataclass
class FakeGateway:
    """The phones' local servers: what each accepted, and which of them are switched off."""

    httpserver: Any
    sent: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    off: set[str] = field(default_factory=set)
    auth: dict[str, str] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return self.httpserver.url_for(f"/{name}")

    def phone(self, name: str, operator: str, **extra: Any) -> GatewayPhone:
        self.sent.setdefault(name, [])
        self.auth[name] = "Basic " + base64.b64encode(f"sms:pw-{name}".encode()).decode()
        return GatewayPhone(
            name=name,
            operator=operator,
            url=self.url(name),
            login="sms",
            password=f"pw-{name}",
            **extra,
        )

    def handler(self, request: Request) -> Response:
        name = request.path.strip("/").split("/")[0]
        if name in self.off:
            return Response("gateway offline", status=503)
        if request.headers.get("Authorization") != self.auth.get(name):
            return Response(json.dumps({"message": "Unauthorized"}), status=401)
        message = request.get_json()
        if any(m["id"] == message["id"] for m in self.sent[name]):
            return Response(
                json.dumps({"message": "Message with the same ID already exists"}), status=409
            )
        self.sent[name].append(message)
        state = {
            "id": message["id"],
            "deviceId": DEVICE_ID,
            "state": "Pending",
            "isHashed": False,
            "isEncrypted": False,
            "recipients": [{"phoneNumber": n, "state": "Pending"} for n in message["phoneNumbers"]],
        }
        return Response(json.dumps(state), status=202, content_type="application/json")

    def texts(self, name: str) -> list[str]:
        return [m["textMessage"]["text"] for m in self.sent[name]]

    def all(self) -> list[tuple[str, dict[str, Any]]]:
        return [(name, m) for name, ms in self.sent.items() for m in ms]


@pytest.fixture
def gateway(httpserver) -> FakeGateway:
    fake = FakeGateway(httpserver)
    httpserver.expect_request(
        re.compile(r"^/[a-z0-9_-]+/messages$"), method="POST"
    ).respond_with_handler(fake.handler)
    return fake


@pytest.fixture
def phones(gateway: FakeGateway) -> list[GatewayPhone]:
    return [
        gateway.phone("orange1", "orange"),
        gateway.phone("moov1", "moov"),
        gateway.phone("telecel1", "telecel"),
    ]


@pytest.fixture
def gateway_settings(settings, phones):
    return settings.model_copy(
        update={
            "sms_provider": "android-gateway",
            "sms_gateway_phones": phones,
            "sms_gateway_signing_key": SIGNING_KEY,
        }
    )


@pytest.fixture
def app(gateway_settings) -> Flask:
    app = create_app({"TESTING": True, "SETTINGS": gateway_settings})
    ensure_ready(app.extensions["citoyen"])
    return app


@pytest.fixture
def runtime(app: Flask) -> Runtime:
    return app.extensions["citoyen"]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


_ids = itertools.count(1)


def envelope(event: str, payload: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """A webhook body as the app sends it."""
    return {
        "deviceId": DEVICE_ID,
        "event": event,
        "id": event_id or f"Ey6ECgOkVVFjz3CL{next(_ids):05d}",
        "payload": payload,
        "webhookId": "LreFUt-Z3sSq0JufY9uWB",
    }


def received(number: str, text: str, event_id: str | None = None) -> dict[str, Any]:
    # messageId is content-based in the app: the same text gives the same id.
    return envelope(
        "sms:received",
        {
            "messageId": hashlib.md5(text.encode()).hexdigest()[:10],
            "message": text,
            "sender": number,
            "recipient": "+22376999999",
            "simNumber": 1,
            "receivedAt": "2026-12-07T09:46:11.000+00:00",
        },
        event_id,
    )


def sign(body: bytes, timestamp: int | None = None, key: str = SIGNING_KEY) -> dict[str, str]:
    """The headers the app adds: X-Timestamp and the hex HMAC-SHA256 of body + timestamp."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    mac = hmac.new(key.encode(), body + stamp.encode(), hashlib.sha256).hexdigest()
    return {"X-Signature": mac, "X-Timestamp": stamp}


def post(client: FlaskClient, data: dict[str, Any] | bytes, headers: dict[str, str] | None = None):
    """POST a webhook body to the gateway route, signed unless ``headers`` are given."""
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return client.post(
        "/sms-gateway/webhook",
        data=body,
        headers=sign(body) if headers is None else headers,
        content_type="application/json",
    )
