"""Recording prompts by phone, end to end through the real webhooks with signed requests.

A staff member calls the recorder, identifies, picks Bambara and records; the worker's job
fetches the kept take from a local fake of Twilio's media API into the library; a citizen's call
in Bambara then plays it, served with cache headers. Each test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import pytest
from flask.testing import FlaskClient
from pytest_httpserver import HTTPServer
from sqlmodel import Session, func, select
from werkzeug import Request, Response

from citoyen.channels.twilio_rest import TwilioRecordingFetcher
from citoyen.db import write_session
from citoyen.models import PromptCall, PromptTake, User, VoicePrompt
from citoyen.runtime import Runtime
from citoyen.services.prompts import catalogue, coverage
from citoyen.services.prompts.phone import fetch_kept_takes
from citoyen.services.prompts.pins import set_pin
from tests.channels.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, signed_post
from tests.channels.voice.helpers import Call
from tests.services.prompts.sounds import wav

STAFF_PHONE = "+22366000111"
PIN = "4821"
TWILIO_RECORDINGS = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/"
BASE = f"{PUBLIC_URL}/twilio/voice/prompts"
GOODBYE = "Merci. Au revoir."


@dataclass
class Heard:
    said: list[str]
    played: list[str]
    root: ET.Element

    @property
    def verbs(self) -> list[str]:
        return [v.tag for v in self.root]

    def find(self, tag: str) -> ET.Element:
        found = self.root.find(tag)
        assert found is not None, f"no <{tag}> in {self.verbs}"
        return found


def parse(body: str) -> Heard:
    """The recorder's TwiML: only known verbs, Say in French, URLs ours or Twilio's recordings."""
    root = ET.fromstring(body)
    assert root.tag == "Response"
    said: list[str] = []
    played: list[str] = []
    for verb in root:
        assert verb.tag in {"Gather", "Say", "Play", "Record", "Redirect", "Hangup"}, verb.tag
        for el in [verb, *verb]:
            if el.tag == "Say":
                assert el.get("language") == "fr-FR"
                said.append(el.text or "")
            elif el.tag == "Play":
                url = el.text or ""
                assert url.startswith((PUBLIC_URL + "/audio/", TWILIO_RECORDINGS)), url
                played.append(url)
        for name in ("action",):
            if verb.get(name):
                assert verb.get(name, "").startswith(BASE + "/")
        if verb.tag == "Redirect":
            assert (verb.text or "").startswith(BASE + "/")
    return Heard(said, played, root)


class RecorderCall:
    """A staff member's call to the recorder, following the URLs each answer gives."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.sid = "CA" + uuid.uuid4().hex
        self.heard: Heard | None = None
        self.last: tuple[str, dict[str, str]] | None = None

    def params(self, **extra: str) -> dict[str, str]:
        return {"CallSid": self.sid, "AccountSid": ACCOUNT_SID, "From": STAFF_PHONE, **extra}

    def post(self, url: str, params: dict[str, str]) -> Heard:
        path = url.removeprefix(PUBLIC_URL)
        self.last = (path, params)
        response = signed_post(self.client, path, params)
        assert response.status_code == 200, (path, response.status_code)
        self.heard = parse(response.get_data(as_text=True))
        return self.heard

    def start(self) -> Heard:
        return self.post("/twilio/voice/prompts", self.params())

    def press(self, digits: str) -> Heard:
        assert self.heard is not None
        return self.post(self.heard.find("Gather").get("action", ""), self.params(Digits=digits))

    def record(self, duration: str = "4") -> str:
        assert self.heard is not None
        sid = "RE" + uuid.uuid4().hex
        action = self.heard.find("Record").get("action", "")
        self.post(
            action,
            self.params(
                RecordingSid=sid,
                RecordingUrl=TWILIO_RECORDINGS + sid,
                RecordingDuration=duration,
            ),
        )
        return sid

    def silence(self) -> Heard:
        assert self.heard is not None
        return self.post(self.heard.find("Redirect").text or "", self.params())

    def retry(self) -> int:
        assert self.last is not None
        path, params = self.last
        return signed_post(self.client, path, params).status_code


@pytest.fixture
def staff(runtime: Runtime) -> User:
    with write_session(runtime.engine) as session:
        user = User(email="awa@example.ml", password_hash="x", role="coordinator")
        session.add(user)
        session.flush()
        session.expunge(user)
    set_pin(runtime, user.id, PIN, by_user_id=None)
    return user


def identified(client: FlaskClient, staff: User) -> RecorderCall:
    call = RecorderCall(client)
    call.start()
    call.press(f"{staff.id}#")
    call.press(f"{PIN}#")
    return call


def takes(runtime: Runtime) -> list[tuple[str, str, str]]:
    with Session(runtime.engine) as session:
        rows = session.exec(select(PromptTake).order_by(PromptTake.id)).all()
        return [(t.recording_sid, t.key, t.status) for t in rows]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_record_by_phone_then_a_citizen_hears_it(
    client: FlaskClient, runtime: Runtime, staff: User, httpserver: HTTPServer
) -> None:
    call = RecorderCall(client)
    heard = call.start()
    # Asked inside a Gather; when no key comes, Twilio goes on to the goodbye.
    assert heard.said == [
        "Enregistrement des messages vocaux. Tapez votre numéro d'agent, puis dièse.",
        GOODBYE,
    ]
    assert heard.verbs == ["Gather", "Say", "Hangup"]
    assert heard.find("Gather").get("finishOnKey") == "#"

    assert call.press(f"{staff.id}#").said == ["Tapez votre code secret, puis dièse.", GOODBYE]
    # A wrong PIN: told, and asked again from the staff number.
    heard = call.press("9999#")
    assert heard.said[0] == "Numéro d'agent ou code secret incorrect."
    assert heard.said[1].startswith("Enregistrement des messages vocaux.")
    call.press(f"{staff.id}#")
    heard = call.press(f"{PIN}#")
    assert heard.said == [
        "Quelle langue voulez-vous enregistrer ?",
        "Pour Français, tapez 1.",
        "Pour Bamanankan, tapez 2.",
        "Pour English, tapez 3.",
        GOODBYE,
    ]
    heard = call.press("2")
    assert heard.said == [
        "Pour enregistrer les messages qui manquent, tapez 1. Pour choisir un message par son "
        "numéro, tapez 2.",
        GOODBYE,
    ]

    # Missing prompts, in catalogue order: the first one is the engine's "invalid choice".
    first = catalogue(runtime.bundle, "bm")[0]
    assert first.key == "system.invalid_choice"
    heard = call.press("1")
    assert heard.said == [
        "Message 1 : system invalid choice. Le texte dit :",
        "Réponse non valide. Merci de réessayer.",
        "Dites ce texte dans la langue choisie après le bip, puis tapez dièse.",
    ]
    record = heard.find("Record")
    assert record.get("playBeep") == "true" and record.get("finishOnKey") == "#"
    assert record.get("action") == f"{BASE}/recorded?i=1&mode=missing"

    # Record, listen back, record again, keep.
    first_take = call.record()
    assert call.heard.said[0] == "Voici votre enregistrement."
    assert call.heard.played == [TWILIO_RECORDINGS + first_take]
    assert call.heard.said[1].startswith("Pour le garder, tapez 1.")
    heard = call.press("2")
    assert heard.said[0] == "Message 1 : system invalid choice. Le texte dit :"
    kept_take = call.record()
    heard = call.press("1")
    assert heard.said[0] == "Enregistrement gardé. Merci."
    assert heard.said[1] == "Message 2 : system invalid number. Le texte dit :"
    assert call.retry() == 200  # Twilio retrying the "keep" changes nothing
    # Skip prompt 2: the next missing one comes.
    call.record()
    heard = call.press("3")
    assert heard.said[0].startswith("Message 3 : ")
    assert [(sid, key, status) for sid, key, status in takes(runtime)] == [
        (first_take, "system.invalid_choice", "discarded"),
        (kept_take, "system.invalid_choice", "pending"),
        (takes(runtime)[2][0], "system.invalid_number", "discarded"),
    ]

    # The worker fetches the kept take with the account's credentials, into the library.
    recording = wav(2.0)
    path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{kept_take}.wav"

    def twilio_media(request: Request) -> Response:
        if request.headers.get("Authorization") != basic(ACCOUNT_SID, AUTH_TOKEN):
            return Response("unauthorized", status=401)
        return Response(recording, status=200, content_type="audio/x-wav")

    httpserver.expect_request(path, method="GET").respond_with_handler(twilio_media)
    fetcher = TwilioRecordingFetcher(ACCOUNT_SID, AUTH_TOKEN, api_base=httpserver.url_for("/"))
    summary = fetch_kept_takes(runtime, fetcher)
    assert (summary.stored, summary.failed, summary.retrying) == (1, 0, 0)
    assert takes(runtime)[1][2] == "stored"
    status = {st.key: st for st in coverage(runtime, "bm")}["system.invalid_choice"]
    assert (status.status, status.source, status.user_email) == ("recorded", "phone", staff.email)
    assert status.duration_ms == 2000
    assert fetch_kept_takes(runtime, fetcher).stored == 0  # nothing left to fetch

    # A citizen calls in Bambara and presses a wrong key: the recording is played.
    citizen = Call(client)
    citizen.start()
    citizen.press("2")  # Bamanankan
    heard_by_citizen = citizen.press("9")
    with Session(runtime.engine) as session:
        name = session.exec(select(VoicePrompt.file_name)).one()
    url = f"{PUBLIC_URL}/audio/bm/{name}"
    assert heard_by_citizen.played[0] == url

    served = client.get(url.removeprefix(PUBLIC_URL))
    assert served.status_code == 200
    assert served.data == recording
    assert served.mimetype == "audio/wav"
    assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    etag = served.headers["ETag"]
    again = client.get(url.removeprefix(PUBLIC_URL), headers={"If-None-Match": etag})
    assert again.status_code == 304


def test_choose_a_prompt_by_number_and_silence(
    client: FlaskClient, runtime: Runtime, staff: User
) -> None:
    call = identified(client, staff)
    call.press("2")  # Bamanankan
    assert call.press("2").said == ["Tapez le numéro du message, puis dièse.", GOODBYE]
    heard = call.press("999#")
    assert heard.said[0] == "Ce numéro de message n'existe pas."
    call.press("2")
    spec = catalogue(runtime.bundle, "bm")[4]
    heard = call.press("5#")
    assert (
        heard.said[0]
        == f"Message 5 : {spec.key.replace('.', ' ').replace('_', ' ')}. Le texte dit :"
    )
    assert heard.find("Record").get("action") == f"{BASE}/recorded?i=5&mode=all"
    # Nothing recorded: told, asked once more, then the call ends.
    heard = call.silence()
    assert heard.said[0] == "Nous n'avons rien entendu."
    assert heard.verbs[-2:] == ["Say", "Hangup"]
    assert takes(runtime) == []


def test_three_wrong_pins_end_the_call(client: FlaskClient, runtime: Runtime, staff: User) -> None:
    call = RecorderCall(client)
    call.start()
    for _ in range(2):
        call.press(f"{staff.id}#")
        assert call.press("1111#").said[0] == "Numéro d'agent ou code secret incorrect."
    call.press(f"{staff.id}#")
    heard = call.press("1111#")
    assert heard.said[0].startswith("Trop d'essais.")
    assert heard.verbs[-1] == "Hangup"
    with Session(runtime.engine) as session:
        row = session.exec(select(PromptCall)).one()
        assert (row.user_id, row.pin_attempts) == (None, 3)


def test_nothing_past_the_pin_without_identifying(
    client: FlaskClient, runtime: Runtime, staff: User
) -> None:
    call = RecorderCall(client)
    call.start()
    for path in ("/language", "/mode", "/number", "/recorded?i=1&mode=all", "/silent?i=1&mode=all"):
        response = signed_post(
            client,
            f"/twilio/voice/prompts{path}",
            call.params(Digits="2", RecordingSid="RE" + "1" * 32),
        )
        assert response.status_code == 403, path
    # Unsigned: refused before anything is stored.
    response = client.post("/twilio/voice/prompts", data={"CallSid": "CA" + "2" * 32})
    assert response.status_code == 403
    with Session(runtime.engine) as session:
        assert session.exec(select(func.count()).select_from(PromptCall)).one() == 1


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/twilio/voice/prompts/pin?staff=x1", {"Digits": PIN}),
        ("/twilio/voice/prompts/pin", {"Digits": PIN}),
        ("/twilio/voice/prompts/staff", {"Digits": "12<script>"}),
        ("/twilio/voice/prompts/review?i=1&mode=all&take=999", {"Digits": "1"}),
        ("/twilio/voice/prompts/recorded?i=1&mode=all", {"RecordingSid": "nope"}),
        ("/twilio/voice/prompts/recorded?i=1&mode=sideways", {"RecordingSid": "RE" + "3" * 32}),
        ("/twilio/voice/prompts/recorded?i=9999&mode=all", {"RecordingSid": "RE" + "3" * 32}),
    ],
)
def test_malformed_requests_get_400(
    client: FlaskClient, runtime: Runtime, staff: User, path: str, extra: dict[str, str]
) -> None:
    call = identified(client, staff)
    call.press("2")
    before = takes(runtime)
    response = signed_post(client, path, call.params(**extra))
    assert response.status_code == 400
    assert takes(runtime) == before
    response = signed_post(client, "/twilio/voice/prompts", {"CallSid": "bad"})
    assert response.status_code == 400
