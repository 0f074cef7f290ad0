"""A local fake of Twilio's Calls API for the real twilio Client (pytest-httpserver).

Every ``calls.create`` the placer makes is recorded as the form Twilio would receive; the answer
is the JSON Twilio gives (a new CallSid, status queued). ``fail`` makes the next requests answer
with an error instead, as Twilio does when it is down or refuses a number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from citoyen.channels.twilio_rest import TwilioCallPlacer
from tests.channels.sms.test_sender import LocalTwilio
from tests.channels.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN

CALLS = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"


@dataclass
class FakeCalls:
    """The calls Twilio was asked to place, in order (each a parsed form)."""

    placed: list[dict[str, list[str]]] = field(default_factory=list)
    failures: list[tuple[int, int]] = field(default_factory=list)  # (HTTP status, Twilio code)

    def fail(self, status: int, code: int) -> None:
        self.failures.append((status, code))

    @property
    def to(self) -> list[str]:
        return [form["To"][0] for form in self.placed]

    def handler(self, request: Request) -> Response:
        if self.failures:
            status, code = self.failures.pop(0)
            body = {"code": code, "message": "fake failure", "status": status}
            return Response(json.dumps(body), status=status, content_type="application/json")
        form = parse_qs(request.get_data(as_text=True))
        self.placed.append(form)
        sid = f"CA{len(self.placed):032x}"
        body = {"sid": sid, "account_sid": ACCOUNT_SID, "status": "queued", "to": form["To"][0]}
        return Response(json.dumps(body), status=201, content_type="application/json")


def fake_calls(httpserver: HTTPServer) -> FakeCalls:
    calls = FakeCalls()
    httpserver.expect_request(CALLS, method="POST").respond_with_handler(calls.handler)
    return calls


def placer(httpserver: HTTPServer, from_number: str) -> TwilioCallPlacer:
    """The real Twilio call placer, sent to the local server."""
    return TwilioCallPlacer(
        ACCOUNT_SID, AUTH_TOKEN, from_number, http_client=LocalTwilio(httpserver.url_for("/"))
    )
