"""Driving a call as Twilio does, and checking the TwiML it gets back.

A :class:`Call` follows the URLs each TwiML answer gives (Gather action, Redirect, Record
action), signing every request with the twilio library's validator, exactly as Twilio would.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from flask.testing import FlaskClient

from tests.channels.twilio_helpers import ACCOUNT_SID, PUBLIC_URL, signed_post

CALLER = "+22376123456"
TO = "+22320200000"

# Verbs and attributes citoyen may emit; anything else is a bug (or a TwiML Twilio rejects).
ALLOWED = {
    "Response": set(),
    "Gather": {"input", "numDigits", "timeout", "action", "method", "finishOnKey"},
    "Say": {"language", "voice"},
    "Play": set(),
    "Record": {
        "action",
        "method",
        "maxLength",
        "timeout",
        "finishOnKey",
        "playBeep",
        "recordingStatusCallback",
        "recordingStatusCallbackMethod",
        "recordingStatusCallbackEvent",
    },
    "Redirect": {"method"},
    "Hangup": set(),
    "Pause": {"length"},
}
NESTED_IN_GATHER = {"Say", "Play", "Pause"}
# Voices of Twilio's text-to-speech table (twilio.com/docs/voice/twiml/say/text-speech) for the
# languages the tests speak: every <Say> must name one listed for its language, since Twilio's
# docs warn that an unlisted pair "may result in error and <Say> instruction failure".
TWILIO_VOICES = {
    "fr-FR": {"Polly.Lea", "Polly.Celine", "Polly.Mathieu", "Polly.Lea-Neural"},
    "en-US": {"Polly.Joanna", "Polly.Matthew", "Polly.Joanna-Neural"},
}
SAY_LANGUAGES = set(TWILIO_VOICES)


def parse_twiml(body: str) -> ET.Element:
    """Parse a TwiML document and check it uses only allowed verbs, attributes and URLs."""
    root = ET.fromstring(body)
    assert root.tag == "Response", root.tag
    for verb in root:
        assert verb.tag in ALLOWED and verb.tag != "Response", f"verb <{verb.tag}> not allowed"
        if verb.tag == "Gather":
            for child in verb:
                assert child.tag in NESTED_IN_GATHER, f"<{child.tag}> inside <Gather>"
                assert len(child) == 0
        else:
            assert len(verb) == 0, f"<{verb.tag}> has children"
    for element in root.iter():
        extra = set(element.attrib) - ALLOWED[element.tag]
        assert not extra, f"<{element.tag}> has attributes {extra}"
        if element.tag == "Say":
            assert element.get("language") in SAY_LANGUAGES, element.get("language")
            assert element.get("voice") in TWILIO_VOICES[element.get("language")], element.attrib
            assert (element.text or "").strip(), "empty <Say>"
        if element.tag in ("Play", "Redirect"):
            assert (element.text or "").startswith(PUBLIC_URL + "/"), element.text
        for name in ("action", "recordingStatusCallback"):
            if name in element.attrib:
                assert element.get(name, "").startswith(PUBLIC_URL + "/"), element.get(name)
        if element.get("method") is not None:
            assert element.get("method") == "POST"
    return root


@dataclass
class Spoken:
    """What one TwiML answer says and waits for, in a form easy to compare."""

    lines: list[tuple[str, str]]  # ("say:fr-FR", text) | ("play", url) | ("pause", "1")
    waits: str  # "key" | "digits" | "record" | "end"
    root: ET.Element = field(repr=False)

    @property
    def said(self) -> list[str]:
        return [text for kind, text in self.lines if kind.startswith("say")]

    @property
    def played(self) -> list[str]:
        return [url for kind, url in self.lines if kind == "play"]


def spoken(root: ET.Element) -> Spoken:
    lines: list[tuple[str, str]] = []
    waits = "end"
    for verb in root:
        elements = list(verb) if verb.tag == "Gather" else [verb]
        for el in elements:
            if el.tag == "Say":
                lines.append((f"say:{el.get('language')}", el.text or ""))
            elif el.tag == "Play":
                lines.append(("play", el.text or ""))
            elif el.tag == "Pause":
                lines.append(("pause", el.get("length", "")))
        if verb.tag == "Gather":
            waits = "digits" if verb.get("finishOnKey") else "key"
        elif verb.tag == "Record":
            waits = "record"
    return Spoken(lines, waits, root)


def relative(url: str) -> str:
    assert url.startswith(PUBLIC_URL), url
    return url[len(PUBLIC_URL) :]


class Call:
    """One phone call, driven through the real webhooks."""

    def __init__(self, client: FlaskClient, caller: str = CALLER, sid: str | None = None) -> None:
        self.client = client
        self.caller = caller
        self.sid = sid or "CA" + uuid.uuid4().hex
        self.root: ET.Element | None = None
        self.responses: list[str] = []
        self.last_request: tuple[str, dict[str, str]] | None = None

    def params(self, **extra: str) -> dict[str, str]:
        return {
            "CallSid": self.sid,
            "AccountSid": ACCOUNT_SID,
            "From": self.caller,
            "To": TO,
            "CallStatus": "in-progress",
            "Direction": "inbound",
            **extra,
        }

    def post(self, path: str, params: dict[str, str]) -> Spoken:
        self.last_request = (path, params)
        response = signed_post(self.client, path, params)
        assert response.status_code == 200, (path, response.status_code)
        assert response.mimetype in ("text/xml", "application/xml")
        body = response.get_data(as_text=True)
        self.responses.append(body)
        self.root = parse_twiml(body)
        return spoken(self.root)

    def start(self) -> Spoken:
        return self.post("/twilio/voice", self.params(CallStatus="ringing"))

    def _verb(self, tag: str):  # type: ignore[no-untyped-def]
        assert self.root is not None
        found = self.root.find(tag)
        assert found is not None, f"no <{tag}> in the last answer"
        return found

    def press(self, digits: str) -> Spoken:
        gather = self._verb("Gather")
        return self.post(relative(gather.get("action")), self.params(Digits=digits))

    def no_answer(self) -> Spoken:
        redirect = self._verb("Redirect")
        return self.post(relative(redirect.text), self.params())

    def record(self, sid: str | None = None, duration: str = "14") -> Spoken:
        record = self._verb("Record")
        sid = sid or "RE" + uuid.uuid4().hex
        url = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{sid}"
        self.recording_sid = sid
        return self.post(
            relative(record.get("action")),
            self.params(RecordingSid=sid, RecordingUrl=url, RecordingDuration=duration),
        )

    def repeat(self) -> str:
        """Send the last request again, as Twilio does when it retries; the raw body."""
        assert self.last_request is not None
        path, params = self.last_request
        response = signed_post(self.client, path, params)
        assert response.status_code == 200
        return response.get_data(as_text=True)
