"""A local fake of SMS Gateway for Android's HTTP API, and webhooks signed as the app signs them.

The fake (on a pytest-httpserver server) serves each phone under its own path, answers
``POST /<phone>/messages`` as the app's local server does (202 with the message state; 409 for an
id that phone has already) and records every message it accepted, by phone. It is safe on a
threaded server (the exactly-once run, tests/scale/multiprocess.py, sends to it from several
processes at once): the check of the id and the record are one step. Webhook bodies are shaped
as the app's documentation shows (docs/features/webhooks.md of android-sms-gateway/docs-web) and
signed with its algorithm.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from werkzeug import Request, Response

from citoyen.config import GatewayPhone

SIGNING_KEY = "k3y-0f-the-ph0nes"
DEVICE_ID = "ffffffffceb0b1db0000018e937c815b"
MESSAGES_PATH = re.compile(r"^/[a-z0-9_-]+/messages$")


@dataclass
class FakeGateway:
    """The phones' local servers: what each accepted, which of them are switched off, and how
    often each refused an id it had already (``resent``: 409s, by message id)."""

    httpserver: Any
    sent: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    off: set[str] = field(default_factory=set)
    auth: dict[str, str] = field(default_factory=dict)
    resent: Counter[str] = field(default_factory=Counter)
    _ids: dict[str, set[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.httpserver.expect_request(MESSAGES_PATH, method="POST").respond_with_handler(
            self.handler
        )

    def url(self, name: str) -> str:
        return self.httpserver.url_for(f"/{name}")

    def phone(self, name: str, operator: str, **extra: Any) -> GatewayPhone:
        self.sent.setdefault(name, [])
        self._ids.setdefault(name, set())
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
        with self._lock:
            if message["id"] in self._ids[name]:
                self.resent[message["id"]] += 1
                return Response(
                    json.dumps({"message": "Message with the same ID already exists"}), status=409
                )
            self._ids[name].add(message["id"])
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


_ids = itertools.count(1)


def envelope(
    event: str,
    payload: dict[str, Any],
    event_id: str | None = None,
    device_id: str = DEVICE_ID,
) -> dict[str, Any]:
    """A webhook body as the app sends it."""
    return {
        "deviceId": device_id,
        "event": event,
        "id": event_id or f"Ey6ECgOkVVFjz3CL{next(_ids):05d}",
        "payload": payload,
        "webhookId": "LreFUt-Z3sSq0JufY9uWB",
    }


def received(
    number: str, text: str, event_id: str | None = None, device_id: str = DEVICE_ID
) -> dict[str, Any]:
    """An ``sms:received`` event: ``number`` texted ``text`` to the phone ``device_id``."""
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
        device_id,
    )


def sign(body: bytes, timestamp: int | None = None, key: str = SIGNING_KEY) -> dict[str, str]:
    """The headers the app adds: X-Timestamp and the hex HMAC-SHA256 of body + timestamp."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    mac = hmac.new(key.encode(), body + stamp.encode(), hashlib.sha256).hexdigest()
    return {"X-Signature": mac, "X-Timestamp": stamp}
