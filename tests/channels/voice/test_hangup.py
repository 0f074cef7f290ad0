"""Calls that end early keep what was said; call and recording callbacks are idempotent.

Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading

import pytest
from sqlmodel import Session, func, select

from citoyen.models import Area, Attachment, Conversation, Message, Report
from citoyen.runtime import Runtime
from citoyen.services.calls import (
    Recording,
    _upsert_recording,
    handle_call_status,
    record_recording_status,
)
from tests.channels.twilio_helpers import ACCOUNT_SID, signed_post
from tests.channels.voice.helpers import CALLER, Call


def status(call: Call, value: str = "completed") -> dict[str, str]:
    return {
        "CallSid": call.sid,
        "AccountSid": ACCOUNT_SID,
        "From": CALLER,
        "To": "+22320200000",
        "CallStatus": value,
        "CallDuration": "42",
    }


def reports(runtime: Runtime) -> list[Report]:
    with Session(runtime.engine) as session:
        return list(session.exec(select(Report)).all())


def conversation_status(runtime: Runtime) -> str:
    with Session(runtime.engine) as session:
        return session.exec(select(Conversation.status)).one()


def message_count(runtime: Runtime) -> int:
    with Session(runtime.engine) as session:
        return session.exec(select(func.count()).select_from(Message)).one()


def area_code(runtime: Runtime, area_id: int | None) -> str | None:
    with Session(runtime.engine) as session:
        area = session.get(Area, area_id) if area_id else None
        return area.code if area else None


def call_to(client, keys: str) -> Call:  # type: ignore[no-untyped-def]
    """A call that keyed ``keys``: the language first, then (after "1": report a concern) the
    report's menus."""
    call = Call(client)
    call.start()
    for key in keys[:1] + "1" + keys[1:]:
        call.press(key)
    return call


@pytest.mark.parametrize("end", ["completed", "busy", "no-answer", "failed", "canceled"])
def test_hang_up_after_category_and_place_keeps_an_incomplete_report(
    client, runtime: Runtime, end: str
) -> None:
    call = call_to(client, "12212")  # French, theft, Ségou > Niono > Pogo; now asked "danger?"
    result = handle_call_status(runtime, status(call, end))
    assert result is not None and result.interrupted and result.report_id is not None
    [report] = reports(runtime)
    assert report.incomplete is True
    assert (report.channel, report.language, report.category) == ("voice", "fr", "theft")
    assert area_code(runtime, report.area_id) == "niono-pogo"
    assert report.anonymous is True  # never asked: anonymous by default
    assert conversation_status(runtime) == "interrupted"

    messages = message_count(runtime)
    assert handle_call_status(runtime, status(call, end)) is None
    assert handle_call_status(runtime, status(call, "completed")) is None
    assert len(reports(runtime)) == 1
    assert message_count(runtime) == messages


def test_hang_up_reported_to_the_status_webhook(client, runtime: Runtime) -> None:
    """POST /twilio/status (another module) hands call statuses to handle_call_status."""
    call = call_to(client, "12212")
    for _ in range(2):  # Twilio may deliver a callback twice
        assert signed_post(client, "/twilio/status", status(call)).status_code == 200
    [report] = reports(runtime)
    assert report.incomplete and report.category == "theft"
    assert conversation_status(runtime) == "interrupted"


def test_hang_up_before_the_place_keeps_the_messages_but_no_report(
    client, runtime: Runtime
) -> None:
    call = call_to(client, "12")  # French, theft; now in the place menus
    messages = message_count(runtime)
    result = handle_call_status(runtime, status(call))
    assert result is not None and result.report_id is None
    assert reports(runtime) == []
    assert conversation_status(runtime) == "interrupted"
    with Session(runtime.engine) as session:
        answers = session.exec(select(Conversation)).one().state["answers"]
    assert answers["category"] == "theft"  # what was said stays with the conversation
    assert message_count(runtime) == messages + 1  # the end of the call, for the transcript


def test_hang_up_inside_the_place_menus_keeps_the_area_chosen_so_far(
    client, runtime: Runtime
) -> None:
    call = call_to(client, "1221")  # ... Ségou > Niono, hangs up at the commune menu
    handle_call_status(runtime, status(call))
    [report] = reports(runtime)
    assert report.incomplete and area_code(runtime, report.area_id) == "segou-niono"


def test_hang_up_after_the_recording_keeps_it_with_the_report(client, runtime: Runtime) -> None:
    call = call_to(client, "122122")
    call.record()
    handle_call_status(runtime, status(call))
    [report] = reports(runtime)
    assert report.incomplete
    assert report.recording_url.endswith(call.recording_sid)
    with Session(runtime.engine) as session:
        [attachment] = session.exec(select(Attachment)).all()
    assert attachment.report_id == report.id and attachment.provider_ref == call.recording_sid


def test_recording_that_arrives_after_the_hang_up_is_kept(client, runtime: Runtime) -> None:
    call = call_to(client, "122122")  # asked to record
    handle_call_status(runtime, status(call))  # Twilio told us about the hang-up first
    heard = call.record()
    assert heard.lines == [] and [v.tag for v in call.root] == ["Hangup"]
    [report] = reports(runtime)
    with Session(runtime.engine) as session:
        [attachment] = session.exec(select(Attachment)).all()
        assert session.exec(select(func.count()).select_from(Conversation)).one() == 1
    assert attachment.report_id == report.id


def test_a_late_recording_goes_to_its_own_call_when_the_caller_called_again(
    client, runtime: Runtime
) -> None:
    """The late step is told from the call's own messages (its CallSid prefix), not from the
    caller's latest ones: a second call of the same caller, already going, is not disturbed."""
    first = call_to(client, "122122")  # asked to record
    handle_call_status(runtime, status(first))
    second = Call(client)  # the same caller calls again
    second.start()
    heard = first.record()  # the first call's recording, delivered late
    assert heard.lines == [] and [v.tag for v in first.root] == ["Hangup"]
    [report] = reports(runtime)
    with Session(runtime.engine) as session:
        [attachment] = session.exec(select(Attachment)).all()
        statuses = session.exec(select(Conversation.status).order_by(Conversation.id)).all()
    assert attachment.report_id == report.id
    assert report.conversation_id == attachment.conversation_id
    assert statuses == ["interrupted", "waiting"]  # the second call at its first menu
    assert second.press("1").lines  # the second call goes on, answered as before


def test_a_finished_call_creates_nothing_more(client, runtime: Runtime) -> None:
    call = call_to(client, "122122")
    call.record()
    call.press("1")
    call.press("2")
    assert conversation_status(runtime) == "completed"
    result = handle_call_status(runtime, status(call))
    assert result is not None and not result.interrupted
    [report] = reports(runtime)
    assert report.incomplete is False
    assert conversation_status(runtime) == "completed"


def test_retry_of_the_last_step_of_a_finished_call_gets_the_same_answer(
    client, runtime: Runtime
) -> None:
    """A step answered already is a retry, not a late step, even once the conversation ended."""
    call = call_to(client, "122122")
    call.record()
    call.press("1")
    last = call.press("2")
    assert conversation_status(runtime) == "completed" and [v.tag for v in call.root] != []
    answered = call.responses[-1]
    stored = message_count(runtime)
    assert call.repeat() == answered
    assert message_count(runtime) == stored
    assert last.said  # the closing words, heard again on the retry
    assert len(reports(runtime)) == 1


def test_silence_after_category_and_place_keeps_an_incomplete_report(
    client, runtime: Runtime
) -> None:
    call = call_to(client, "12212")
    call.no_answer()
    call.no_answer()  # the engine gives up politely
    assert conversation_status(runtime) == "interrupted"
    [report] = reports(runtime)
    assert report.incomplete and report.category == "theft"
    assert handle_call_status(runtime, status(call)) is not None  # recorded, nothing more
    assert len(reports(runtime)) == 1


@pytest.mark.parametrize("value", ["ringing", "in-progress", "queued", "", "nonsense"])
def test_status_of_a_call_still_going_changes_nothing(client, runtime: Runtime, value: str) -> None:
    call = call_to(client, "12212")
    messages = message_count(runtime)
    assert handle_call_status(runtime, status(call, value)) is None
    assert conversation_status(runtime) == "waiting"
    assert message_count(runtime) == messages


def test_status_of_an_unknown_call_stores_nothing(runtime: Runtime) -> None:
    form = {"CallSid": "CA" + "f" * 32, "CallStatus": "completed", "From": CALLER}
    assert handle_call_status(runtime, form) is None
    assert handle_call_status(runtime, {"CallStatus": "completed"}) is None
    assert message_count(runtime) == 0


def test_two_copies_of_the_callback_at_once_make_one_report(client, runtime: Runtime) -> None:
    call = call_to(client, "12212")
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            barrier.wait()
            handle_call_status(runtime, status(call))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(reports(runtime)) == 1


def test_recording_status_before_the_record_action_makes_one_attachment(
    client, runtime: Runtime
) -> None:
    call = call_to(client, "122122")
    sid = "RE" + "c" * 32
    response = signed_post(
        client,
        "/twilio/voice/recording-status",
        {
            "CallSid": call.sid,
            "AccountSid": ACCOUNT_SID,
            "RecordingSid": sid,
            "RecordingStatus": "completed",
            "RecordingDuration": "31",
        },
    )
    assert response.status_code == 204
    call.record(sid=sid, duration="30")
    call.press("1")
    call.press("2")
    [report] = reports(runtime)
    with Session(runtime.engine) as session:
        [attachment] = session.exec(select(Attachment)).all()
    assert attachment.report_id == report.id
    assert attachment.status == "pending"
    assert attachment.duration_seconds == 30


def test_a_recording_is_one_row_completed_by_whoever_comes_second(client, runtime: Runtime) -> None:
    """The Record action and the status callback each know part of a recording: the row is made
    once (by the RecordingSid) and completed, never has what it knows overwritten."""
    call_to(client, "122122")
    with Session(runtime.engine) as session:
        conversation = session.exec(select(Conversation)).one()
    sid = "RE" + "e" * 32
    with Session(runtime.engine) as session:
        first = _upsert_recording(session, Recording(sid=sid, duration=31), None, None)
        session.commit()
    with Session(runtime.engine) as session:
        held = session.get_one(Attachment, first)  # an object of the row, in this session
        assert held.conversation_id is None and held.duration_seconds == 31
        second = _upsert_recording(
            session, Recording(sid=sid), conversation.id, conversation.contact_id
        )
        # The statement changed the row behind the ORM: the object shows the row as it is now.
        assert second == first and held.conversation_id == conversation.id
        assert held.duration_seconds == 31 and held.contact_id == conversation.contact_id
        session.commit()
    with Session(runtime.engine) as session:
        other = conversation.id + 1  # what a confused caller might claim: not taken
        third = _upsert_recording(session, Recording(sid=sid, duration=30), other, None)
        session.commit()
        [attachment] = session.exec(select(Attachment)).all()
    assert third == first
    assert attachment.conversation_id == conversation.id  # kept, not overwritten
    assert attachment.duration_seconds == 30 and attachment.status == "pending"
    assert attachment.kind == "recording" and attachment.created_at is not None
    # The status callback gives the row back as it is, readable once its session is closed.
    callback = {"CallSid": "CA" + "f" * 32, "RecordingSid": sid, "RecordingStatus": "absent"}
    returned = record_recording_status(runtime, callback)
    assert returned is not None and returned.status == "failed"
    assert returned.conversation_id == conversation.id and returned.duration_seconds == 30


def test_recording_status_absent_marks_the_attachment_failed(client, runtime: Runtime) -> None:
    call = call_to(client, "122122")
    call.record()
    params = {
        "CallSid": call.sid,
        "AccountSid": ACCOUNT_SID,
        "RecordingSid": call.recording_sid,
        "RecordingStatus": "absent",
        "RecordingDuration": "0",
        "ErrorCode": "16102",
    }
    assert signed_post(client, "/twilio/voice/recording-status", params).status_code == 204
    assert signed_post(client, "/twilio/voice/recording-status", params).status_code == 204
    with Session(runtime.engine) as session:
        [attachment] = session.exec(select(Attachment)).all()
    assert attachment.status == "failed" and "16102" in attachment.error
    assert attachment.duration_seconds == 0


def test_recording_status_of_an_unknown_call_is_ignored(client, runtime: Runtime) -> None:
    params = {
        "CallSid": "CA" + "d" * 32,
        "AccountSid": ACCOUNT_SID,
        "RecordingSid": "RE" + "d" * 32,
        "RecordingStatus": "completed",
    }
    assert signed_post(client, "/twilio/voice/recording-status", params).status_code == 204
    with Session(runtime.engine) as session:
        assert session.exec(select(func.count()).select_from(Attachment)).one() == 0
