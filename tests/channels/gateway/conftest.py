"""Fixtures for SMS through local SIMs: a fake of SMS Gateway for Android's HTTP API
(tests/channels/gateway/fake_gateway.py), phones configured for three operators, and webhooks
signed as the app signs them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from citoyen.config import GatewayPhone
from citoyen.runtime import Runtime
from citoyen.services.setup import ensure_ready
from citoyen.web import create_app
from tests.channels.gateway.fake_gateway import SIGNING_KEY, FakeGateway, sign
from tests.channels.sms.test_webhook import t  # noqa: F401 (the texts fixture, shared)

ORANGE_NUMBER = "+22376000031"  # Orange Mali
MOOV_NUMBER = "+22366000032"  # Moov Africa Malitel (Sotelma)
TELECEL_NUMBER = "+22350000033"  # Telecel (Atel)


@pytest.fixture
def gateway(httpserver) -> FakeGateway:
    return FakeGateway(httpserver)


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


def post(client: FlaskClient, data: dict[str, Any] | bytes, headers: dict[str, str] | None = None):
    """POST a webhook body to the gateway route, signed unless ``headers`` are given."""
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return client.post(
        "/sms-gateway/webhook",
        data=body,
        headers=sign(body) if headers is None else headers,
        content_type="application/json",
    )
