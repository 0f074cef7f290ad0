"""Call-back rules, on a fixed clock, on SQLite and PostgreSQL: one request one call (also when
the SMS is delivered three times at once), call-back hours, the per-number daily limit, the
daily budget, retries of busy and unanswered calls. Calls go through the real twilio Client to a
local fake of Twilio's Calls API; status callbacks are applied as the webhook applies them.

Times: Africa/Bamako is UTC+0 all year, so 10:00 UTC is 10:00 in Bamako.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from pytest_httpserver import HTTPServer
from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.engine.types import Input
from citoyen.messages.render import render_sms
from citoyen.messages.types import Inbound, Reply
from citoyen.models import CallbackDay, CallbackRequest, Contact
from citoyen.runtime import Runtime
from citoyen.services import callback_calls
from citoyen.services.callbacks import place_due_calls, summary
from citoyen.services.contacts import get_or_create_contact
from citoyen.services.setup import ensure_ready
from tests.channels.twilio_calls import FakeCalls, fake_calls, placer
from tests.channels.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL

TWILIO_NUMBER = "+12025550142"
MORNING = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
NIGHT = datetime(2026, 11, 28, 22, 30, tzinfo=UTC)
NEXT_MORNING = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
ALICE = "+22376100001"
BOB = "+22376100002"
CAROL = "+22376100003"


@pytest.fixture
def runtime(settings) -> Runtime:  # type: ignore[no-untyped-def]
    configured = settings.model_copy(
        update={
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_from_number": TWILIO_NUMBER,
            "public_url": PUBLIC_URL,
            "callback_daily_limit": 2,
            "callback_daily_budget": 3,
            "callback_max_attempts": 3,
            "callback_retry_minutes": 15,
        }
    )
    runtime = Runtime(configured)
    ensure_ready(runtime)
    return runtime


@pytest.fixture
def twilio(httpserver: HTTPServer) -> FakeCalls:
    return fake_calls(httpserver)


@pytest.fixture
def calls_api(httpserver: HTTPServer):  # type: ignore[no-untyped-def]
    return placer(httpserver, TWILIO_NUMBER)


def known(runtime: Runtime, number: str, language: str = "fr") -> int:
    """A contact whose language is known (no language menu before the request)."""
    with write_session(runtime.engine) as session:
        contact, _ = get_or_create_contact(session, runtime.vault, f"tel:{number}", MORNING)
        contact.language = language
        return contact.id  # type: ignore[return-value]


_sids = iter(range(1, 10_000))


def sms(runtime: Runtime, number: str, body: str, now: datetime, sid: str | None = None) -> Reply:
    sid = sid or f"SM{next(_sids):032x}"
    inbound = Inbound("sms", number, Input("text", body), provider_id=sid)
    return runtime.conversations.handle(inbound, now=now)


def written(runtime: Runtime, reply: Reply) -> str:
    return render_sms(runtime.bundle.catalog, reply.prompts, reply.language, reply.params)


def told(runtime: Runtime, outcome: str, lang: str = "fr", **params: str) -> str:
    values = {"callback_from": TWILIO_NUMBER, **params}
    return runtime.bundle.catalog.render(f"callback.{outcome}", lang, values)


def requests(runtime: Runtime) -> list[CallbackRequest]:
    with Session(runtime.engine) as session:
        return list(session.exec(select(CallbackRequest).order_by(CallbackRequest.id)).all())


def status(runtime: Runtime, row: CallbackRequest, value: str, now: datetime) -> str | None:
    form = {"CallSid": row.call_sid or "", "CallStatus": value, "Direction": "outbound-api"}
    return callback_calls.call_status(runtime, row.id, form, now)  # type: ignore[arg-type]


def test_appel_is_confirmed_and_called_once(runtime, twilio, calls_api) -> None:
    known(runtime, ALICE)
    reply = sms(runtime, ALICE, "appel", MORNING)
    assert written(runtime, reply) == told(runtime, "requested")
    [row] = requests(runtime)
    assert (row.status, row.source, row.due_at) == ("requested", "sms", MORNING)

    assert place_due_calls(runtime, MORNING, calls_api) == {"placed": 1}
    assert place_due_calls(runtime, MORNING, calls_api) == {}  # one request, one call
    [form] = twilio.placed
    assert form["To"] == [ALICE] and form["From"] == [TWILIO_NUMBER]
    assert form["Url"] == [f"{PUBLIC_URL}/twilio/voice/callback?request={row.id}"]
    assert form["StatusCallback"] == [f"{PUBLIC_URL}/twilio/voice/callback-status?request={row.id}"]
    [row] = requests(runtime)
    assert (row.status, row.attempts, row.call_sid) == ("placed", 1, "CA" + f"{1:032x}")

    # Asking again while the call is on its way: told so, no second request.
    assert written(runtime, sms(runtime, ALICE, "APPEL", MORNING)) == told(runtime, "pending")
    assert len(requests(runtime)) == 1


def test_the_same_sms_delivered_three_times_at_once_makes_one_call(
    runtime, twilio, calls_api
) -> None:
    known(runtime, ALICE)
    sid = "SM" + "7" * 32
    barrier = threading.Barrier(3)
    replies: list[str] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            barrier.wait()
            replies.append(written(runtime, sms(runtime, ALICE, "APPEL", MORNING, sid=sid)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # Every copy gets the same answer; one request is kept.
    assert replies == [told(runtime, "requested")] * 3
    assert len(requests(runtime)) == 1
    assert place_due_calls(runtime, MORNING, calls_api) == {"placed": 1}
    assert place_due_calls(runtime, MORNING + timedelta(minutes=5), calls_api) == {}
    assert twilio.to == [ALICE]


def test_a_request_at_night_is_called_at_the_opening(runtime, twilio, calls_api) -> None:
    known(runtime, ALICE)
    reply = sms(runtime, ALICE, "APPEL", NIGHT)
    assert written(runtime, reply) == told(runtime, "later", callback_time="08:00")
    assert place_due_calls(runtime, NIGHT, calls_api) == {}
    assert place_due_calls(runtime, NEXT_MORNING - timedelta(minutes=1), calls_api) == {}
    assert twilio.placed == []
    assert place_due_calls(runtime, NEXT_MORNING, calls_api) == {"placed": 1}
    assert twilio.to == [ALICE]


def test_busy_and_unanswered_calls_are_retried_then_fail(runtime, twilio, calls_api) -> None:
    known(runtime, ALICE)
    sms(runtime, ALICE, "APPEL", MORNING)
    place_due_calls(runtime, MORNING, calls_api)
    first = requests(runtime)[0]
    assert status(runtime, first, "ringing", MORNING) == "ringing"
    assert status(runtime, first, "busy", MORNING + timedelta(seconds=20)) == "retry"
    row = requests(runtime)[0]
    assert (row.status, row.reason) == ("requested", "busy")
    assert row.due_at == MORNING + timedelta(minutes=15, seconds=20)
    assert place_due_calls(runtime, MORNING + timedelta(minutes=10), calls_api) == {}

    second_time = MORNING + timedelta(minutes=16)
    assert place_due_calls(runtime, second_time, calls_api) == {"placed": 1}
    second = requests(runtime)[0]
    assert second.attempts == 2 and second.call_sid != first.call_sid
    # A late callback of the first call changes nothing.
    assert status(runtime, first, "completed", second_time) is None
    assert status(runtime, second, "no-answer", second_time) == "retry"

    third_time = second_time + timedelta(minutes=15)
    assert place_due_calls(runtime, third_time, calls_api) == {"placed": 1}
    third = requests(runtime)[0]
    assert status(runtime, third, "no-answer", third_time) == "failed"
    row = requests(runtime)[0]
    assert (row.status, row.reason, row.attempts) == ("failed", "no-answer", 3)
    assert twilio.to == [ALICE] * 3
    assert place_due_calls(runtime, third_time + timedelta(hours=1), calls_api) == {}


def test_a_machine_is_hung_up_on_counts_as_no_answer_then_fails(runtime, twilio, calls_api) -> None:
    """Answering machine detection: a voicemail or a fax is not a person; the call is hung up
    and tried again within the rules, and staff see why."""
    known(runtime, ALICE)
    sms(runtime, ALICE, "APPEL", MORNING)
    now = MORNING
    for attempt, answered_by in enumerate(("machine_start", "fax", "machine_start"), start=1):
        assert place_due_calls(runtime, now, calls_api) == {"placed": 1}
        assert twilio.placed[-1]["MachineDetection"] == ["Enable"]
        row = requests(runtime)[0]
        sid = row.call_sid or ""
        assert status(runtime, row, "ringing", now) == "ringing"
        reply = callback_calls.answered(runtime, row.id, sid, now, answered_by=answered_by)  # type: ignore[arg-type]
        assert reply is not None and reply.prompts == []  # nothing said: <Hangup/>
        again = callback_calls.answered(runtime, row.id, sid, now, answered_by=answered_by)  # type: ignore[arg-type]
        assert again is not None and again.prompts == []  # Twilio retrying: the same
        form = {"CallSid": sid, "CallStatus": "completed", "AnsweredBy": answered_by}
        assert callback_calls.call_status(runtime, row.id, form, now) is None  # type: ignore[arg-type]
        row = requests(runtime)[0]
        assert (row.reason, row.attempts, row.conversation_id) == ("machine", attempt, None)
        if attempt < 3:
            assert row.status == "requested"
            assert row.due_at == now + timedelta(minutes=15)
            now = row.due_at
    assert (row.status, row.call_status) == ("failed", "machine")
    with Session(runtime.engine) as session:
        [seen] = summary(session, runtime.settings, now).latest
    assert (seen.status, seen.reason, seen.attempts) == ("failed", "machine", 3)


def test_a_machine_heard_of_only_by_the_status_callback_is_no_answer(
    runtime, twilio, calls_api
) -> None:
    known(runtime, ALICE)
    sms(runtime, ALICE, "APPEL", MORNING)
    place_due_calls(runtime, MORNING, calls_api)
    row = requests(runtime)[0]
    form = {"CallSid": row.call_sid or "", "AnsweredBy": "machine_start"}
    answered = {**form, "CallStatus": "in-progress"}
    assert callback_calls.call_status(runtime, row.id, answered, MORNING) is None  # type: ignore[arg-type]
    assert requests(runtime)[0].status == "placed"  # not answered by a person
    done = {**form, "CallStatus": "completed"}
    assert callback_calls.call_status(runtime, row.id, done, MORNING) == "retry"  # type: ignore[arg-type]
    assert (requests(runtime)[0].status, requests(runtime)[0].reason) == ("requested", "machine")


def test_a_person_or_an_unknown_answer_runs_the_ivr(runtime, twilio, calls_api) -> None:
    for number in (ALICE, BOB):
        known(runtime, number)
        sms(runtime, number, "APPEL", MORNING)
    place_due_calls(runtime, MORNING, calls_api)
    for row, answered_by in zip(requests(runtime), ("human", "unknown"), strict=True):
        reply = callback_calls.answered(runtime, row.id, row.call_sid or "", MORNING, answered_by)  # type: ignore[arg-type]
        assert reply is not None and reply.prompts[0].text == "callback.call_intro"
    assert [r.status for r in requests(runtime)] == ["answered", "answered"]


def test_machine_detection_can_be_switched_off(runtime, twilio, calls_api) -> None:
    """CITOYEN_CALLBACK_MACHINE_DETECTION=false: no AMD asked (no delay, no charge), and a
    voicemail that picks up counts as answered, as before."""
    runtime.settings = runtime.settings.model_copy(update={"callback_machine_detection": False})
    known(runtime, ALICE)
    sms(runtime, ALICE, "APPEL", MORNING)
    assert place_due_calls(runtime, MORNING, calls_api) == {"placed": 1}
    assert "MachineDetection" not in twilio.placed[0]


def test_a_retry_that_falls_at_night_waits_for_the_morning(runtime, twilio, calls_api) -> None:
    evening = datetime(2026, 11, 28, 19, 50, tzinfo=UTC)
    known(runtime, ALICE)
    sms(runtime, ALICE, "APPEL", evening)
    place_due_calls(runtime, evening, calls_api)
    assert status(runtime, requests(runtime)[0], "busy", evening) == "retry"
    assert requests(runtime)[0].due_at == NEXT_MORNING


def test_a_number_asking_too_often_is_refused_until_the_next_day(
    runtime, twilio, calls_api
) -> None:
    known(runtime, ALICE)
    for attempt in range(2):  # the daily limit is 2
        now = MORNING + timedelta(hours=attempt)
        assert written(runtime, sms(runtime, ALICE, "APPEL", now)) == told(runtime, "requested")
        place_due_calls(runtime, now, calls_api)
        row = requests(runtime)[-1]
        status(runtime, row, "in-progress", now)
        status(runtime, row, "completed", now + timedelta(minutes=3))
    third = MORNING + timedelta(hours=3)
    assert written(runtime, sms(runtime, ALICE, "APPEL", third)) == told(runtime, "limit")
    assert len(requests(runtime)) == 2
    tomorrow = NEXT_MORNING + timedelta(hours=2)
    assert written(runtime, sms(runtime, ALICE, "APPEL", tomorrow)) == told(runtime, "requested")


def test_the_daily_budget_holds_requests_for_the_next_day(runtime, twilio, calls_api) -> None:
    """Budget 3 calls a day: two requests, one busy retry, and the day is spent."""
    for number in (ALICE, BOB, CAROL):
        known(runtime, number)
    assert written(runtime, sms(runtime, ALICE, "APPEL", MORNING)) == told(runtime, "requested")
    assert written(runtime, sms(runtime, BOB, "APPEL", MORNING)) == told(runtime, "requested")
    assert place_due_calls(runtime, MORNING, calls_api) == {"placed": 2}
    alice = requests(runtime)[0]
    status(runtime, alice, "busy", MORNING)
    # Carol asks now: one call is left today, and Alice's retry is already waiting for it.
    carol_reply = sms(runtime, CAROL, "APPEL", MORNING)
    assert written(runtime, carol_reply) == told(runtime, "later", callback_time="08:00")
    retry_time = MORNING + timedelta(minutes=20)
    assert place_due_calls(runtime, retry_time, calls_api) == {"placed": 1}
    for row in requests(runtime)[:2]:  # Alice and Bob answer
        status(runtime, row, "in-progress", retry_time)
        status(runtime, row, "completed", retry_time + timedelta(minutes=4))
    assert place_due_calls(runtime, retry_time + timedelta(hours=5), calls_api) == {}
    assert twilio.to == [ALICE, BOB, ALICE]
    with Session(runtime.engine) as session:
        assert session.get(CallbackDay, "2026-11-28").calls == 3
    assert place_due_calls(runtime, NEXT_MORNING, calls_api) == {"placed": 1}
    assert twilio.to[-1] == CAROL
    with Session(runtime.engine) as session:
        seen = summary(session, runtime.settings, NEXT_MORNING)
    assert seen.calls_today == 1 and seen.budget == 3
    assert seen.counts == {"answered": 2, "placed": 1}
    assert seen.today == {}  # all three asked yesterday
    # Staff see aliases, never numbers.
    assert all(row.alias.startswith("Citoyen ") for row in seen.latest)
    assert not any(n in repr(seen) for n in (ALICE, BOB, CAROL, ALICE[-8:]))


def test_a_twilio_outage_gives_the_call_back_to_the_budget(runtime, twilio, calls_api) -> None:
    known(runtime, ALICE)
    sms(runtime, ALICE, "APPEL", MORNING)
    twilio.fail(503, 20500)
    assert place_due_calls(runtime, MORNING, calls_api) == {"deferred": 1}
    row = requests(runtime)[0]
    assert (row.status, row.attempts) == ("requested", 0)
    with Session(runtime.engine) as session:
        assert session.get(CallbackDay, "2026-11-28").calls == 0
    assert place_due_calls(runtime, MORNING + timedelta(minutes=2), calls_api) == {"placed": 1}


def test_a_number_twilio_refuses_fails_the_request(runtime, twilio, calls_api) -> None:
    known(runtime, ALICE)
    sms(runtime, ALICE, "APPEL", MORNING)
    twilio.fail(400, 21215)  # geographic permission: Twilio may not call this country
    assert place_due_calls(runtime, MORNING, calls_api) == {"failed": 1}
    assert (requests(runtime)[0].status, requests(runtime)[0].reason) == ("failed", "error")


def test_stop_after_asking_cancels_the_call_and_asking_after_stop_is_honoured(
    runtime, twilio, calls_api
) -> None:
    known(runtime, ALICE)
    sms(runtime, ALICE, "APPEL", NIGHT)  # called in the morning
    sms(runtime, ALICE, "STOP", NIGHT)
    assert place_due_calls(runtime, NEXT_MORNING, calls_api) == {"cancelled": 1}
    assert (requests(runtime)[0].status, requests(runtime)[0].reason) == ("cancelled", "stopped")
    assert twilio.placed == []
    # STOP is about messages nobody asked for: a call asked for afterwards is made.
    later = NEXT_MORNING + timedelta(hours=1)
    assert written(runtime, sms(runtime, ALICE, "APPEL", later)) == told(runtime, "requested")
    assert place_due_calls(runtime, later, calls_api) == {"placed": 1}


def test_a_blocked_sender_is_not_called(runtime, twilio, calls_api) -> None:
    contact_id = known(runtime, ALICE)
    sms(runtime, ALICE, "APPEL", MORNING)
    with write_session(runtime.engine) as session:
        session.get(Contact, contact_id).blocked = True  # staff blocked the sender meanwhile
    assert place_due_calls(runtime, MORNING, calls_api) == {"cancelled": 1}
    assert twilio.placed == []
    assert (requests(runtime)[0].status, requests(runtime)[0].reason) == ("cancelled", "blocked")


def test_a_request_not_called_within_a_day_is_cancelled(runtime, twilio, calls_api) -> None:
    known(runtime, ALICE)
    sms(runtime, ALICE, "APPEL", MORNING)
    later = MORNING + timedelta(hours=24)
    assert place_due_calls(runtime, later, calls_api) == {"expired": 1}
    assert requests(runtime)[0].status == "cancelled" and twilio.placed == []


def test_telegram_has_no_number_to_call(runtime) -> None:
    inbound = Inbound("telegram", "telegram:4242", Input("text", "APPEL"), provider_id="u1")
    reply = runtime.conversations.handle(inbound, now=MORNING)
    if reply.status == "waiting":  # a new contact picks a language first
        inbound = Inbound("telegram", "telegram:4242", Input("choice", "en"), provider_id="u2")
        reply = runtime.conversations.handle(inbound, now=MORNING)
    catalog = runtime.bundle.catalog
    assert catalog.render("callback.answer", "en", reply.params) == told(runtime, "no_phone", "en")
    assert requests(runtime) == []


def test_without_twilio_the_citizen_is_told_it_is_not_available(settings) -> None:  # type: ignore[no-untyped-def]
    runtime = Runtime(settings)
    ensure_ready(runtime)
    known(runtime, ALICE)
    reply = sms(runtime, ALICE, "APPEL", MORNING)
    assert written(runtime, reply) == told(runtime, "unavailable")
    assert requests(runtime) == []


def test_bambara_keyword_and_reply(runtime, twilio, calls_api) -> None:
    known(runtime, ALICE, language="bm")
    reply = sms(runtime, ALICE, "wele", MORNING)
    assert written(runtime, reply) == told(runtime, "requested", "bm")
    assert place_due_calls(runtime, MORNING, calls_api) == {"placed": 1}


def test_the_worker_places_call_backs_every_15_seconds(runtime) -> None:
    """The job runs place_due_calls with the worker's runtime (its call placer, the clock)."""
    from citoyen.worker import Worker

    worker = Worker(runtime)
    worker.scheduler.start(paused=True)
    try:
        worker._register()
        job = worker.scheduler.get_job("callbacks")
        assert job is not None
        assert job.trigger.interval == timedelta(seconds=15)
    finally:
        worker.scheduler.shutdown(wait=False)


def test_calls_being_placed_count_once_against_the_budget(runtime, twilio, calls_api) -> None:
    for number in (ALICE, BOB, CAROL):
        known(runtime, number)
    sms(runtime, ALICE, "APPEL", MORNING)
    sms(runtime, BOB, "APPEL", MORNING)
    assert place_due_calls(runtime, MORNING, calls_api) == {"placed": 2}
    # Two of three calls spent, none waiting: Carol is called today.
    assert written(runtime, sms(runtime, CAROL, "APPEL", MORNING)) == told(runtime, "requested")
    assert place_due_calls(runtime, MORNING, calls_api) == {"placed": 1}
