"""Outbound survey calls: placed through the real twilio Client (against a local fake API), at
most N at once, retried when busy, and answered through the same signed voice webhooks."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from pytest_httpserver import HTTPServer
from sqlmodel import Session, select
from werkzeug import Request, Response

from citoyen.channels.twilio_rest import TwilioCallPlacer
from citoyen.models import SurveyAnswer
from citoyen.runtime import Runtime
from citoyen.services.setup import ensure_ready
from citoyen.services.surveys import surveys_for
from citoyen.services.surveys.quiet import is_allowed
from citoyen.services.surveys.runs import start_run, update_invitations
from citoyen.services.surveys.voice import place_due_calls
from tests.channels.sms.test_sender import LocalTwilio
from tests.channels.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, signed_post
from tests.channels.voice.helpers import Call
from tests.services.surveys.conftest import (
    FROM_NUMBER,
    MORNING,
    add_contact,
    definition,
    invitations,
)

ROOT = Path(__file__).resolve().parents[3]
CALLS = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"


@pytest.fixture
def twilio_calls(httpserver: HTTPServer) -> list[dict[str, list[str]]]:
    placed: list[dict[str, list[str]]] = []

    def handler(request: Request) -> Response:
        form = parse_qs(request.get_data(as_text=True))
        placed.append(form)
        sid = f"CA{len(placed):032x}"
        body = {"sid": sid, "account_sid": ACCOUNT_SID, "status": "queued", "to": form["To"][0]}
        return Response(json.dumps(body), status=201, content_type="application/json")

    httpserver.expect_request(CALLS, method="POST").respond_with_handler(handler)
    return placed


@pytest.fixture
def placer(httpserver: HTTPServer) -> TwilioCallPlacer:
    return TwilioCallPlacer(
        ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, http_client=LocalTwilio(httpserver.url_for("/"))
    )


VOICE_SURVEY = """\
id: test_survey
flow: perceived_safety
channels: [sms, voice]
expiry: 3d
quiet_hours:        # the status webhooks run on the real clock: keep them inside the window
  start: "00:00"
  end: "23:59"
voice:
  max_attempts: 2
  retry_delay: 1h
  max_concurrent: 2
"""


@pytest.fixture
def runtime(survey_settings, tmp_path):  # type: ignore[no-untyped-def]
    """The survey runtime with ``flows/surveys/test_survey.yaml`` (the webhooks read it)."""
    flows = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", flows)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    (flows / "surveys" / "test_survey.yaml").write_text(VOICE_SURVEY, encoding="utf-8")
    runtime = Runtime(survey_settings.model_copy(update={"flows_dir": flows}))
    ensure_ready(runtime)
    return runtime


def voice_survey(runtime):  # type: ignore[no-untyped-def]
    return surveys_for(runtime)["test_survey"]


class SurveyCall(Call):
    """A call we placed: Twilio sends the callee in To and our number in From."""

    def params(self, **extra: str) -> dict[str, str]:
        return {
            "CallSid": self.sid,
            "AccountSid": ACCOUNT_SID,
            "From": FROM_NUMBER,
            "To": self.caller,
            "CallStatus": "in-progress",
            "Direction": "outbound-api",
            **extra,
        }

    def answer(self, invitation_id: int, **extra: str):  # type: ignore[no-untyped-def]
        path = f"/twilio/voice/survey?invitation={invitation_id}"
        return self.post(path, self.params(**extra))


def status(client, invitation_id: int, sid: str, value: str, **extra: str):  # type: ignore[no-untyped-def]
    form = {
        "CallSid": sid,
        "AccountSid": ACCOUNT_SID,
        "CallStatus": value,
        "Direction": "outbound-api",
        **extra,
    }
    return signed_post(client, f"/twilio/voice/survey-status?invitation={invitation_id}", form)


def test_calls_respect_concurrency_and_retry_when_busy(
    runtime, client, placer, twilio_calls, tmp_path
) -> None:
    numbers = ["+22376500001", "+22376500002", "+22376500003"]
    for number in numbers:
        add_contact(runtime, number, last_channel="voice")
    survey = voice_survey(runtime)
    surveys = {survey.id: survey}
    # The status callbacks are applied at the real time: the test runs on it too.
    now = datetime.now(UTC).replace(microsecond=0)
    result = start_run(runtime, survey, now)
    assert result.per_channel == {"voice": 3}
    assert {i.status for i in invitations(runtime)} == {"calling"}

    assert place_due_calls(runtime, surveys, now, placer) == {"placed": 2}
    assert place_due_calls(runtime, surveys, now, placer) == {}  # two in flight: the limit
    form = twilio_calls[0]
    first = invitations(runtime)[0]
    assert form["To"] == [numbers[0]] and form["From"] == [FROM_NUMBER]
    assert form["Url"] == [f"{PUBLIC_URL}/twilio/voice/survey?invitation={first.id}"]
    assert form["StatusCallback"] == [
        f"{PUBLIC_URL}/twilio/voice/survey-status?invitation={first.id}"
    ]
    assert sorted(form["StatusCallbackEvent"]) == ["answered", "completed", "initiated", "ringing"]
    assert form["MachineDetection"] == ["Enable"]  # Twilio says who picks up

    # The first line is busy: tried again an hour later at the earliest, within quiet hours.
    assert status(client, first.id, first.call_sid, "busy").status_code == 204
    retried = invitations(runtime)[0]
    assert retried.status == "calling" and retried.call_status == "busy"
    assert retried.send_at >= now + timedelta(hours=1)
    assert is_allowed(retried.send_at, survey.quiet_hours.window(), survey.timezone)
    # Its slot is free: the third contact is called now, the first one is not yet due.
    assert place_due_calls(runtime, surveys, now, placer) == {"placed": 1}
    assert [f["To"][0] for f in twilio_calls] == [numbers[0], numbers[1], numbers[2]]

    # Calls 2 and 3 are not answered (retried an hour later too); at its time the first contact
    # is called again, and is busy again: two attempts, the invitation has failed.
    for inv in invitations(runtime)[1:]:
        status(client, inv.id, inv.call_sid, "no-answer")
    assert {i.call_status for i in invitations(runtime)[1:]} == {"no-answer"}
    later = retried.send_at
    assert place_due_calls(runtime, surveys, later, placer) == {"placed": 1}
    assert twilio_calls[-1]["To"] == [numbers[0]]
    again = invitations(runtime)[0]
    assert again.call_attempts == 2
    assert status(client, again.id, again.call_sid, "busy").status_code == 204
    assert invitations(runtime)[0].status == "failed"
    # A late callback of the first attempt changes nothing.
    assert status(client, first.id, first.call_sid, "completed").status_code == 204
    assert invitations(runtime)[0].status == "failed"


def test_answered_call_runs_the_survey_on_the_keypad(runtime, client, placer, twilio_calls) -> None:
    number = "+22376500011"
    add_contact(runtime, number, last_channel="voice", language="fr")
    survey = voice_survey(runtime)
    start_run(runtime, survey, MORNING)
    place_due_calls(runtime, {survey.id: survey}, MORNING, placer)
    [invitation] = invitations(runtime)
    catalog = runtime.bundle.catalog

    call = SurveyCall(client, number, sid=invitation.call_sid)
    first = call.answer(invitation.id)
    assert first.said[0] == catalog.render("survey.stop_notice_voice", "fr", {})
    assert catalog.render("perceived_safety.intro", "fr", {}) in first.said
    assert catalog.render("perceived_safety.safe_after_dark", "fr", {}) in first.said
    assert first.waits == "key"
    assert call.press("2").waits == "key"  # fairly safe; next question
    assert call.press("1").waits == "key"
    last = call.press("1")
    assert catalog.render("perceived_safety.thanks", "fr", {}) in last.said
    assert last.waits == "end"

    with Session(runtime.engine) as session:
        answers = {a.question: a.answer for a in session.exec(select(SurveyAnswer)).all()}
    assert answers == {
        "safe_after_dark": "fairly_safe",
        "unsafe_walking": "never",
        "feared_home": "never",
    }
    assert update_invitations(runtime, MORNING) == {"completed": 1}
    # Twilio retrying the first request gets the same survey, nothing stored twice.
    assert call.answer(invitation.id).said == first.said


def test_a_voicemail_is_hung_up_on_and_the_contact_called_again(
    runtime, client, placer, twilio_calls
) -> None:
    number = "+22376500061"
    add_contact(runtime, number, last_channel="voice", language="fr")
    survey = voice_survey(runtime)
    surveys = {survey.id: survey}
    # The webhooks apply the retry delay to the real time: the test runs on it too.
    now = datetime.now(UTC).replace(microsecond=0)
    start_run(runtime, survey, now)
    assert place_due_calls(runtime, surveys, now, placer) == {"placed": 1}
    [invitation] = invitations(runtime)

    voicemail = SurveyCall(client, number, sid=invitation.call_sid)
    heard = voicemail.answer(invitation.id, AnsweredBy="machine_start")
    assert [verb.tag for verb in voicemail.root] == ["Hangup"] and heard.said == []
    row = invitations(runtime)[0]
    assert (row.status, row.call_status, row.conversation_id) == ("calling", "machine", None)
    assert row.send_at >= now + timedelta(hours=1)  # voice.retry_delay
    # Twilio's retry of the answer request and the call's end change nothing more.
    assert voicemail.answer(invitation.id, AnsweredBy="machine_start").said == []
    done = status(client, row.id, row.call_sid, "completed", AnsweredBy="machine_start")
    assert done.status_code == 204
    assert invitations(runtime)[0].status == "calling"
    assert place_due_calls(runtime, surveys, now, placer) == {}  # not due yet

    # An hour later the second call: a person answers and hears the survey.
    assert place_due_calls(runtime, surveys, row.send_at, placer) == {"placed": 1}
    second = invitations(runtime)[0]
    assert second.call_attempts == 2
    person = SurveyCall(client, number, sid=second.call_sid).answer(second.id, AnsweredBy="human")
    catalog = runtime.bundle.catalog
    assert person.said[0] == catalog.render("survey.stop_notice_voice", "fr", {})
    assert catalog.render("perceived_safety.safe_after_dark", "fr", {}) in person.said
    assert invitations(runtime)[0].conversation_id is not None


def test_a_machine_on_the_last_call_fails_the_invitation(
    runtime, client, placer, twilio_calls
) -> None:
    number = "+22376500071"
    add_contact(runtime, number, last_channel="voice")
    survey = voice_survey(runtime)  # voice.max_attempts: 2
    surveys = {survey.id: survey}
    now = datetime.now(UTC).replace(microsecond=0)
    start_run(runtime, survey, now)
    place_due_calls(runtime, surveys, now, placer)
    first = invitations(runtime)[0]
    # The call ends before its answer request was heard of: the status says a machine answered.
    ended = status(client, first.id, first.call_sid, "completed", AnsweredBy="fax")
    assert ended.status_code == 204
    retried = invitations(runtime)[0]
    assert (retried.status, retried.call_status) == ("calling", "machine")
    place_due_calls(runtime, surveys, retried.send_at, placer)
    last = invitations(runtime)[0]
    SurveyCall(client, number, sid=last.call_sid).answer(last.id, AnsweredBy="machine_start")
    assert (invitations(runtime)[0].status, invitations(runtime)[0].call_status) == (
        "failed",
        "machine",
    )


def test_a_machine_while_the_survey_files_are_broken_leaves_the_call_due(
    runtime, client, placer, twilio_calls
) -> None:
    """The operator broke flows/surveys/ after the worker started: the voicemail is hung up on
    and the invitation waits, due, for the worker to call again once the files are mended."""
    number = "+22376500091"
    add_contact(runtime, number, last_channel="voice")
    survey = voice_survey(runtime)
    start_run(runtime, survey, MORNING)
    place_due_calls(runtime, {survey.id: survey}, MORNING, placer)
    [invitation] = invitations(runtime)
    broken = runtime.settings.flows_dir / "surveys" / "test_survey.yaml"
    broken.write_text(VOICE_SURVEY.replace("max_attempts: 2", "max_attempts: many"))
    runtime._surveys = None  # a web worker reading the files for the first time
    voicemail = SurveyCall(client, number, sid=invitation.call_sid)
    voicemail.answer(invitation.id, AnsweredBy="machine_start")
    assert [verb.tag for verb in voicemail.root] == ["Hangup"]
    row = invitations(runtime)[0]
    assert (row.status, row.call_status, row.send_at) == ("calling", "machine", invitation.send_at)


def test_machine_detection_can_be_switched_off(runtime, placer, twilio_calls) -> None:
    add_contact(runtime, "+22376500081", last_channel="voice")
    survey = definition(channels=["sms", "voice"], voice={"machine_detection": False})
    start_run(runtime, survey, MORNING)
    assert place_due_calls(runtime, {survey.id: survey}, MORNING, placer) == {"placed": 1}
    assert "MachineDetection" not in twilio_calls[0]


def test_survey_call_webhooks_refuse_what_is_not_ours(
    runtime, client, placer, twilio_calls
) -> None:
    add_contact(runtime, "+22376500021", last_channel="voice")
    survey = voice_survey(runtime)
    start_run(runtime, survey, MORNING)
    place_due_calls(runtime, {survey.id: survey}, MORNING, placer)
    [invitation] = invitations(runtime)
    stranger = SurveyCall(client, "+22376500021", sid="CA" + "f" * 32)
    params = stranger.params()
    path = f"/twilio/voice/survey?invitation={invitation.id}"
    assert signed_post(client, path, params).status_code == 404  # not the call we placed
    assert signed_post(client, "/twilio/voice/survey?invitation=abc", params).status_code == 400
    assert signed_post(client, "/twilio/voice/survey", params).status_code == 400
    assert client.post(path, data=params).status_code == 403  # unsigned
    assert invitations(runtime)[0].conversation_id is None


def test_opted_out_contacts_are_never_called(runtime, placer, twilio_calls) -> None:
    cid = add_contact(runtime, "+22376500031", last_channel="voice")
    survey = voice_survey(runtime)
    start_run(runtime, survey, MORNING)
    from citoyen.db import write_session
    from citoyen.models import Contact

    with write_session(runtime.engine) as session:
        session.get(Contact, cid).opted_out = True  # STOP by SMS before the call went out
    assert place_due_calls(runtime, {survey.id: survey}, MORNING, placer) == {}
    assert twilio_calls == []
    assert update_invitations(runtime, MORNING) == {"stopped": 1}


def test_no_calls_outside_quiet_hours(runtime, placer, twilio_calls) -> None:
    add_contact(runtime, "+22376500041", last_channel="voice")
    survey = definition(channels=["sms", "voice"], quiet_hours={"start": "08:00", "end": "20:00"})
    night = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
    start_run(runtime, survey, night)
    assert place_due_calls(runtime, {survey.id: survey}, night, placer) == {}
    assert twilio_calls == []
    next_morning = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    assert invitations(runtime)[0].send_at == next_morning
    assert place_due_calls(runtime, {survey.id: survey}, next_morning, placer) == {"placed": 1}


def test_a_contact_who_stopped_while_it_rang_hears_nothing_more(
    runtime, client, placer, twilio_calls
) -> None:
    from citoyen.db import write_session
    from citoyen.models import Contact

    cid = add_contact(runtime, "+22376500051", last_channel="voice")
    survey = voice_survey(runtime)
    start_run(runtime, survey, MORNING)
    place_due_calls(runtime, {survey.id: survey}, MORNING, placer)
    [invitation] = invitations(runtime)
    with write_session(runtime.engine) as session:
        session.get(Contact, cid).opted_out = True
    answered = SurveyCall(client, "+22376500051", sid=invitation.call_sid).answer(invitation.id)
    assert answered.said == [] and answered.waits == "end"
    assert invitations(runtime)[0].conversation_id is None


def test_the_call_placer_uses_the_configured_twilio_url(
    settings, httpserver: HTTPServer, twilio_calls
) -> None:
    """CITOYEN_TWILIO_API_URL applies to outbound survey calls, as to SMS and recordings."""
    configured = settings.model_copy(
        update={
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_from_number": FROM_NUMBER,
            "twilio_api_url": httpserver.url_for("/"),
        }
    )
    placer = Runtime(configured).call_placer
    assert placer is not None
    sid = placer.create("+22376000001", f"{PUBLIC_URL}/voice", f"{PUBLIC_URL}/status")
    assert sid.startswith("CA")
    assert [call["To"] for call in twilio_calls] == [["+22376000001"]]
