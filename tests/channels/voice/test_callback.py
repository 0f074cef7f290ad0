"""Voice by call-back, end to end through the signed webhooks, on SQLite and PostgreSQL.

A citizen texts APPEL, is told a call is coming, the worker places it with the real twilio
Client (against a local fake of Twilio's Calls API), and the answered call runs the report IVR
(TwiML parsed as XML, every request signed with twilio's RequestValidator): in French, and in
Bambara with its missing recordings heard in French (``voice_fallback``). The clock is fixed at
10:00 in Bamako, inside the call-back hours, whatever the day the tests run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from flask.testing import FlaskClient
from pytest_httpserver import HTTPServer
from sqlmodel import Session, select

from citoyen.models import CallbackRequest, Report
from citoyen.runtime import Runtime
from citoyen.services.callbacks import place_due_calls
from tests.channels.sms.conftest import Phone
from tests.channels.twilio_calls import FakeCalls, fake_calls, placer
from tests.channels.twilio_helpers import ACCOUNT_SID, PUBLIC_URL, signed_post
from tests.channels.voice.helpers import CALLER, Call

TWILIO_NUMBER = "+12025550142"
MORNING = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
EMERGENCY = {"police": "17", "fire": "18"}


@pytest.fixture
def voice_settings(voice_settings):  # type: ignore[no-untyped-def]
    """The voice tests' settings, with the number calls are placed from."""
    return voice_settings.model_copy(update={"twilio_from_number": TWILIO_NUMBER})


@pytest.fixture
def twilio(httpserver: HTTPServer) -> FakeCalls:
    return fake_calls(httpserver)


@pytest.fixture
def calls_api(httpserver: HTTPServer):  # type: ignore[no-untyped-def]
    return placer(httpserver, TWILIO_NUMBER)


@pytest.fixture
def clock():  # type: ignore[no-untyped-def]
    with time_machine.travel(MORNING, tick=True) as traveller:
        yield traveller


class CallBack(Call):
    """The call we placed: Twilio sends the citizen in To and our number in From."""

    def params(self, **extra: str) -> dict[str, str]:
        return {
            "CallSid": self.sid,
            "AccountSid": ACCOUNT_SID,
            "From": TWILIO_NUMBER,
            "To": self.caller,
            "CallStatus": "in-progress",
            "Direction": "outbound-api",
            **extra,
        }

    def answer(self, request_id: int, **extra: str):  # type: ignore[no-untyped-def]
        return self.post(f"/twilio/voice/callback?request={request_id}", self.params(**extra))

    def status(self, request_id: int, value: str):  # type: ignore[no-untyped-def]
        form = {
            "CallSid": self.sid,
            "AccountSid": ACCOUNT_SID,
            "CallStatus": value,
            "Direction": "outbound-api",
            "From": TWILIO_NUMBER,
            "To": self.caller,
        }
        return signed_post(self.client, f"/twilio/voice/callback-status?request={request_id}", form)


def say(runtime: Runtime, key: str, lang: str, channel: str = "voice", **params: object) -> str:
    return runtime.bundle.catalog.render(key, lang, {**EMERGENCY, **params}, channel)


def the_request(runtime: Runtime) -> CallbackRequest:
    with Session(runtime.engine) as session:
        [row] = session.exec(select(CallbackRequest)).all()
        return row


def reports(runtime: Runtime) -> list[Report]:
    with Session(runtime.engine) as session:
        return list(session.exec(select(Report)).all())


def test_appel_by_sms_then_a_french_call_ends_with_one_voice_report(
    client: FlaskClient, runtime: Runtime, twilio: FakeCalls, calls_api, clock
) -> None:
    phone = Phone(client, CALLER)
    # The citizen asks; a new contact picks a language first.
    menu = phone.say("APPEL")
    assert say(runtime, "system.language_prompt", "fr", "sms") in menu[0]
    assert phone.say("1") == [
        say(runtime, "callback.requested", "fr", "sms", callback_from=TWILIO_NUMBER)
    ]
    # The worker calls back, from the number the citizen was given.
    assert place_due_calls(runtime, placer=calls_api) == {"placed": 1}
    [form] = twilio.placed
    row = the_request(runtime)
    assert form["To"] == [CALLER] and form["From"] == [TWILIO_NUMBER]
    assert form["Url"] == [f"{PUBLIC_URL}/twilio/voice/callback?request={row.id}"]

    call = CallBack(client, CALLER, sid=row.call_sid)
    assert call.status(row.id, "ringing").status_code == 204
    heard = call.answer(row.id)
    # "You asked us to call you", then the report IVR as on an incoming call: the language is
    # known from the SMS, so the welcome and the first menu.
    assert heard.said[:3] == [
        say(runtime, "callback.call_intro", "fr"),
        say(runtime, "report.welcome", "fr"),
        say(runtime, "report.intent", "fr"),
    ]
    assert the_request(runtime).status == "answered"
    call.press("1")  # report a concern
    call.press("2")  # theft
    call.press("2")  # Ségou
    call.press("1")  # cercle Niono
    heard = call.press("2")  # commune Pogo
    assert heard.said[0] == say(runtime, "report.danger", "fr")
    assert call.press("2").waits == "record"  # no danger now: describe it
    call.record()
    call.press("1")  # stay anonymous
    heard = call.press("2")  # no surveys
    assert heard.waits == "end"
    assert call.status(row.id, "completed").status_code == 204

    [report] = reports(runtime)
    assert (report.channel, report.language, report.category) == ("voice", "fr", "theft")
    assert report.incomplete is False
    row = the_request(runtime)
    assert (row.status, row.call_status, row.attempts) == ("answered", "completed", 1)
    assert row.conversation_id == report.conversation_id
    # Twilio retrying the answer request gets the same TwiML and nothing is stored twice.
    assert call.answer(row.id).said[:2] == [
        say(runtime, "callback.call_intro", "fr"),
        say(runtime, "report.welcome", "fr"),
    ]
    assert len(reports(runtime)) == 1
    assert the_request(runtime).call_status == "completed"


def test_bambara_call_back_falls_back_to_french_where_nothing_is_recorded(
    client: FlaskClient, runtime: Runtime, twilio: FakeCalls, calls_api, clock
) -> None:
    phone = Phone(client, CALLER)
    phone.say("WELE")
    assert phone.say("2") == [  # Bamanankan
        say(runtime, "callback.requested", "bm", "sms", callback_from=TWILIO_NUMBER)
    ]
    place_due_calls(runtime, placer=calls_api)
    row = the_request(runtime)
    call = CallBack(client, CALLER, sid=row.call_sid)
    heard = call.answer(row.id)
    audio = f"{PUBLIC_URL}/audio/bm"
    # No Bambara recording of the call's introduction yet: said in French (bm falls back to fr);
    # the welcome is recorded and played.
    assert heard.lines[0] == ("say:fr-FR", say(runtime, "callback.call_intro", "fr"))
    assert f"{audio}/report.welcome.wav" in heard.played
    call.press("1")  # report a concern
    call.press("2")  # theft
    call.press("1")  # Bamako
    call.press("2")  # Commune II
    assert call.press("1").waits == "record"  # someone is in danger
    call.record()
    call.press("2")  # may be called back
    assert call.press("1").waits == "end"  # accepts surveys
    [report] = reports(runtime)
    assert (report.channel, report.language, report.urgency) == ("voice", "bm", "emergency")


def test_a_busy_line_is_called_again_and_webhooks_refuse_what_is_not_ours(
    client: FlaskClient, runtime: Runtime, twilio: FakeCalls, calls_api, clock
) -> None:
    phone = Phone(client, CALLER)
    phone.say("CALL")
    phone.say("3")  # English
    place_due_calls(runtime, placer=calls_api)
    row = the_request(runtime)
    call = CallBack(client, CALLER, sid=row.call_sid)
    stranger = CallBack(client, CALLER, sid="CA" + "f" * 32)
    path = f"/twilio/voice/callback?request={row.id}"
    assert signed_post(client, path, stranger.params()).status_code == 404  # not our call
    assert signed_post(client, "/twilio/voice/callback?request=x", call.params()).status_code == 400
    assert client.post(path, data=call.params()).status_code == 403  # unsigned
    status_path = f"/twilio/voice/callback-status?request={row.id}"
    assert (
        client.post(status_path, data={"CallSid": row.call_sid, "CallStatus": "busy"}).status_code
        == 403
    )
    assert the_request(runtime).status == "placed"

    assert call.status(row.id, "busy").status_code == 204
    row = the_request(runtime)
    assert (row.status, row.reason) == ("requested", "busy")
    retry = row.due_at
    assert retry >= MORNING + timedelta(minutes=15)
    assert place_due_calls(runtime, retry, calls_api) == {"placed": 1}
    assert twilio.to == [CALLER, CALLER]
    # The first call's late callback changes nothing.
    assert call.status(row.id, "completed").status_code == 204
    assert the_request(runtime).status == "placed"
    heard = CallBack(client, CALLER, sid=the_request(runtime).call_sid).answer(row.id)
    assert heard.said[0] == say(runtime, "callback.call_intro", "en")


def test_a_voicemail_is_hung_up_on_and_the_citizen_called_again(
    client: FlaskClient, runtime: Runtime, twilio: FakeCalls, calls_api, clock
) -> None:
    phone = Phone(client, CALLER)
    phone.say("APPEL")
    phone.say("1")
    assert place_due_calls(runtime, placer=calls_api) == {"placed": 1}
    assert twilio.placed[0]["MachineDetection"] == ["Enable"]  # Twilio tells who picks up
    row = the_request(runtime)
    voicemail = CallBack(client, CALLER, sid=row.call_sid)
    assert voicemail.status(row.id, "ringing").status_code == 204
    heard = voicemail.answer(row.id, AnsweredBy="machine_start")
    assert [verb.tag for verb in heard.root] == ["Hangup"]  # not a word to a machine
    row = the_request(runtime)
    assert (row.status, row.reason, row.conversation_id) == ("requested", "machine", None)
    assert row.due_at >= MORNING + timedelta(minutes=15)
    assert voicemail.status(row.id, "completed").status_code == 204
    assert the_request(runtime).status == "requested"
    assert reports(runtime) == []

    # The next call: a person answers, the report IVR runs.
    assert place_due_calls(runtime, row.due_at, calls_api) == {"placed": 1}
    person = CallBack(client, CALLER, sid=the_request(runtime).call_sid)
    heard = person.answer(row.id, AnsweredBy="human")
    assert heard.said[:2] == [
        say(runtime, "callback.call_intro", "fr"),
        say(runtime, "report.welcome", "fr"),
    ]
    assert (the_request(runtime).status, the_request(runtime).attempts) == ("answered", 2)
