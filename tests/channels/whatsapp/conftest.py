"""Fixtures for WhatsApp through Twilio: the SMS channel's app (Twilio configured, on SQLite and
PostgreSQL) and a citizen writing from WhatsApp, with payloads as Twilio documents them for
WhatsApp (``whatsapp:`` addresses, ``ProfileName``, ``WaId``, media and location fields)."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.channels.sms.conftest import (  # noqa: F401 (fixtures)
    FROM_NUMBER,
    app,
    client,
    runtime,
    sms_settings,
    twiml_messages,
)
from tests.channels.sms.test_webhook import t  # noqa: F401 (the texts fixture)
from tests.channels.twilio_helpers import ACCOUNT_SID, signed_post

WHATSAPP_NUMBER = "+22376000041"


class WhatsApp:
    """A citizen's WhatsApp, writing to the deployment's WhatsApp sender through Twilio."""

    def __init__(self, web: FlaskClient, number: str = WHATSAPP_NUMBER) -> None:
        self.client = web
        self.number = number
        self.n = 0

    def form(self, body: str = "", **extra: str) -> dict[str, str]:
        self.n += 1
        sid = f"SM{self.number[-6:]}{self.n:026d}"
        return {
            "From": f"whatsapp:{self.number}",
            "To": f"whatsapp:{FROM_NUMBER}",
            "Body": body,
            "MessageSid": sid,
            "SmsMessageSid": sid,
            "AccountSid": ACCOUNT_SID,
            "NumMedia": "0",
            "NumSegments": "1",
            "ProfileName": "Awa",
            "WaId": self.number.removeprefix("+"),
            "ApiVersion": "2010-04-01",
            **extra,
        }

    def send(self, body: str = "", **extra: str):
        return signed_post(self.client, "/twilio/sms", self.form(body, **extra))

    def say(self, body: str = "", **extra: str) -> list[str]:
        response = self.send(body, **extra)
        assert response.status_code == 200, response.get_data(as_text=True)
        return twiml_messages(response)
