"""Whole calls through the real webhooks: French and Bambara, silence, wrong keys, retries.

Each test runs on SQLite and on PostgreSQL. Expected words come from the locale catalogue.
"""

from __future__ import annotations

import re

import pytest
from sqlmodel import Session, func, select

from citoyen.models import Attachment, Contact, Conversation, Message, Report
from citoyen.runtime import Runtime
from tests.channels.twilio_helpers import PUBLIC_URL
from tests.channels.voice.helpers import Call

EMERGENCY = {"police": "17", "fire": "18"}


def text(runtime: Runtime, key: str, lang: str, **params: object) -> str:
    """A text as a caller hears it (its voice variant when it has one)."""
    return runtime.bundle.catalog.render(key, lang, {**EMERGENCY, **params}, "voice")


def counts(runtime: Runtime) -> dict[str, int]:
    with Session(runtime.engine) as session:
        return {
            model.__name__: session.exec(select(func.count()).select_from(model)).one()
            for model in (Contact, Conversation, Message, Report, Attachment)
        }


def only_report(runtime: Runtime) -> Report:
    with Session(runtime.engine) as session:
        reports = session.exec(select(Report)).all()
        assert len(reports) == 1
        return reports[0]


def attachments(runtime: Runtime) -> list[Attachment]:
    with Session(runtime.engine) as session:
        return list(session.exec(select(Attachment)).all())


def area_code(runtime: Runtime, area_id: int | None) -> str | None:
    from citoyen.models import Area

    with Session(runtime.engine) as session:
        area = session.get(Area, area_id) if area_id else None
        return area.code if area else None


def spaced(reference: str) -> str:
    return ", ".join(" ".join(group) for group in reference.split("-"))


def test_french_call_ends_with_one_report_and_its_recording(client, runtime: Runtime) -> None:
    call = Call(client)
    heard = call.start()
    # New caller: the language menu, each language announcing itself.
    assert heard.waits == "key"
    assert heard.lines[0] == ("say:fr-FR", text(runtime, "system.language_prompt", "fr"))
    assert ("say:fr-FR", text(runtime, "system.language_option", "fr", n=1)) in heard.lines
    assert ("say:en-US", text(runtime, "system.language_option", "en", n=3)) in heard.lines
    assert heard.played == [f"{PUBLIC_URL}/audio/bm/system.language_option.wav"]

    heard = call.press("1")
    assert heard.said[:2] == [
        text(runtime, "report.welcome", "fr"),
        text(runtime, "report.intent", "fr"),
    ]
    heard = call.press("1")  # report a concern (2 follows up a report)
    assert heard.said[0] == text(runtime, "report.category", "fr")
    theft = text(runtime, "report.category.theft", "fr")
    assert heard.said[2] == text(runtime, "system.voice_option", "fr", label=theft, n=2)
    assert call.root.find("Gather").get("numDigits") == "1"

    heard = call.press("2")  # theft
    assert heard.said[0] == text(runtime, "report.place", "fr")
    assert text(runtime, "system.voice_option", "fr", label="Ségou", n=2) in heard.said
    call.press("2")  # Ségou
    call.press("1")  # cercle Niono
    heard = call.press("2")  # commune Pogo
    assert heard.said[0] == text(runtime, "report.danger", "fr")
    heard = call.press("2")  # no danger now
    assert heard.waits == "record"
    assert heard.said == [text(runtime, "report.describe", "fr")]
    record = call.root.find("Record")
    assert record.get("maxLength") == "120"
    assert record.get("finishOnKey") == "#"
    assert record.get("playBeep") == "true"
    assert record.get("recordingStatusCallback") == f"{PUBLIC_URL}/twilio/voice/recording-status"

    heard = call.record()
    assert heard.said[0] == text(runtime, "report.anonymous", "fr")
    call.press("1")  # stay anonymous
    heard = call.press("2")  # no surveys
    assert heard.waits == "end"
    assert call.root[-1].tag == "Hangup"

    report = only_report(runtime)
    assert (report.channel, report.language, report.category) == ("voice", "fr", "theft")
    assert area_code(runtime, report.area_id) == "niono-pogo"
    assert report.incomplete is False and report.anonymous is True
    assert report.recording_url.endswith(f"/Recordings/{call.recording_sid}")
    # The reference is read digit by digit so the caller can write it down.
    assert text(runtime, "report.confirm", "fr", reference=spaced(report.reference)) in heard.said
    [attachment] = attachments(runtime)
    assert attachment.report_id == report.id
    assert attachment.conversation_id == report.conversation_id
    assert (attachment.kind, attachment.status, attachment.channel) == (
        "recording",
        "pending",
        "voice",
    )
    assert attachment.provider_ref == call.recording_sid
    assert attachment.duration_seconds == 14


def test_bambara_call_plays_recordings_and_never_says_bambara(
    client, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    call = Call(client)
    call.start()
    welcome = call.press("2")  # Bamanankan
    audio = f"{PUBLIC_URL}/audio/bm"
    assert welcome.played[0] == f"{audio}/report.welcome.wav"
    heard = call.press("1")  # report a concern
    # Recorded prompts are played; the theft option is its label's recording + "press 2".
    assert heard.played == [
        f"{audio}/report.category.wav",
        f"{audio}/report.category.theft.wav",
        f"{audio}/system.voice_option.2.wav",
    ]
    # Options without a recording fall back to French, never to <Say language="bm">.
    armed = text(runtime, "report.category.armed_attack", "fr")
    assert heard.lines[1] == (
        "say:fr-FR",
        text(runtime, "system.voice_option", "fr", label=armed, n=1),
    )
    assert any(
        "report.category.armed_attack" in r.getMessage() and "'bm'" in r.getMessage()
        for r in caplog.records
        if r.levelname == "WARNING"
    )
    # What Twilio will fetch is served, with the right type and caching.
    served = client.get(welcome.played[0].removeprefix(PUBLIC_URL))
    assert served.status_code == 200
    assert served.mimetype == "audio/wav"
    assert (
        served.data == (runtime.settings.locales_dir / "bm/audio/report.welcome.wav").read_bytes()
    )
    assert "public" in served.headers["Cache-Control"]
    assert "max-age=86400" in served.headers["Cache-Control"]

    call.press("2")  # theft
    call.press("1")  # Bamako
    call.press("2")  # Commune II
    heard = call.press("1")  # danger: yes
    emergency = text(runtime, "report.emergency", "fr")
    assert emergency in heard.said  # no Bambara recording yet: the French text, said in French
    assert heard.waits == "record"
    call.record()
    call.press("2")  # may be called back
    heard = call.press("1")  # accepts surveys
    assert heard.waits == "end"

    report = only_report(runtime)
    assert (report.channel, report.language, report.category) == ("voice", "bm", "theft")
    assert area_code(runtime, report.area_id) == "bko-c2"
    assert report.urgency == "emergency" and report.anonymous is False
    # The Bambara confirmation is recorded; the reference follows it, digit by digit, twice.
    assert heard.played == [f"{audio}/report.confirm.wav"]
    digits = spaced(report.reference)
    assert heard.lines[1:] == [
        ("say:fr-FR", digits),
        ("pause", "1"),
        ("say:fr-FR", digits),
    ]
    [attachment] = attachments(runtime)
    assert attachment.report_id == report.id
    with Session(runtime.engine) as session:
        contact = session.exec(select(Contact)).one()
        assert contact.language == "bm" and contact.survey_consent is True


def test_silence_twice_ends_the_call_gracefully(client, runtime: Runtime) -> None:
    call = Call(client)
    first = call.start()
    heard = call.no_answer()
    assert heard.said[0] == text(runtime, "system.no_answer", "fr")
    assert heard.lines[1:] == first.lines  # the same menu once more
    assert heard.waits == "key"
    heard = call.no_answer()
    assert heard.said == [text(runtime, "system.goodbye", "fr")]
    assert [verb.tag for verb in call.root] == ["Say", "Hangup"]
    with Session(runtime.engine) as session:
        assert session.exec(select(Conversation.status)).one() == "interrupted"
        assert session.exec(select(func.count()).select_from(Report)).one() == 0


def test_silence_at_a_recording_asks_again(client, runtime: Runtime) -> None:
    call = Call(client)
    call.start()
    for key in ("1", "1", "2", "1", "1", "2"):
        call.press(key)
    heard = call.no_answer()  # the <Redirect> after <Record>: nothing was recorded
    assert heard.said == [
        text(runtime, "system.no_answer", "fr"),
        text(runtime, "report.describe", "fr"),
    ]
    assert heard.waits == "record"


def test_invalid_key_says_so_and_asks_the_same_menu(client, runtime: Runtime) -> None:
    call = Call(client)
    call.start()
    call.press("1")  # French
    before = call.press("1")  # report a concern: the category menu
    gather_before = call.root.find("Gather")
    heard = call.press("9")  # the category menu has 8 options
    gather = call.root.find("Gather")
    assert heard.said[0] == text(runtime, "system.invalid_choice", "fr")
    assert heard.lines[1:] == before.lines  # the same question and options
    assert {k: v for k, v in gather.attrib.items() if k != "action"} == {
        k: v for k, v in gather_before.attrib.items() if k != "action"
    }
    n_before = int(re.search(r"n=(\d+)", gather_before.get("action")).group(1))
    assert gather.get("action").endswith(f"/twilio/voice/step?n={n_before + 1}")
    heard = call.press("2")
    assert heard.said[0] == text(runtime, "report.place", "fr")


def test_repeated_step_gets_the_same_twiml_and_stores_nothing(client, runtime: Runtime) -> None:
    call = Call(client)
    call.start()
    call.press("1")
    call.press("1")
    call.press("2")
    first = call.responses[-1]
    stored = counts(runtime)
    assert call.repeat() == first
    assert counts(runtime) == stored
    # The recording step too: one attachment however often Twilio retries it.
    for key in ("2", "1", "2", "2"):
        call.press(key)
    call.record()
    recorded = call.responses[-1]
    stored = counts(runtime)
    assert call.repeat() == recorded
    assert counts(runtime) == stored
    assert len(attachments(runtime)) == 1


def test_incoming_call_retry_is_answered_identically(client, runtime: Runtime) -> None:
    call = Call(client)
    call.start()
    stored = counts(runtime)
    assert call.repeat() == call.responses[0]
    assert counts(runtime) == stored


def test_number_questions_gather_until_hash(runtime: Runtime) -> None:
    from citoyen.channels.twilio_voice import CallUrls, VoiceRenderer
    from citoyen.engine.types import Prompt

    renderer = VoiceRenderer(
        runtime.bundle.catalog,
        default_language="fr",
        languages=("fr", "bm", "en"),
        audio_url=lambda lang, path: f"{PUBLIC_URL}/audio/{lang}/{path.name}",
    )
    prompt = Prompt("number", "system.invalid_number", "age", expects={"min": 15, "max": 120})
    urls = CallUrls(*(f"{PUBLIC_URL}/x{i}" for i in range(4)))
    from tests.channels.voice.helpers import parse_twiml, spoken

    root = parse_twiml(renderer.twiml([prompt], "fr", {}, urls, waiting=True))
    gather = root.find("Gather")
    assert gather.get("finishOnKey") == "#" and gather.get("numDigits") is None
    assert spoken(root).waits == "digits"


def test_two_copies_of_a_step_at_once_are_answered_alike_and_stored_once(
    app, client, runtime: Runtime
) -> None:
    import threading

    from tests.channels.twilio_helpers import signed_post

    call = Call(client)
    call.start()
    for key in ("1", "1", "2", "2", "1", "2", "2"):
        call.press(key)
    record = call.root.find("Record")
    path = record.get("action").removeprefix(PUBLIC_URL)
    params = call.params(
        RecordingSid="RE" + "e" * 32,
        RecordingUrl="https://api.twilio.com/2010-04-01/Accounts/x/Recordings/RE" + "e" * 32,
        RecordingDuration="9",
    )
    barrier = threading.Barrier(2)
    bodies: list[str] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            barrier.wait()
            response = signed_post(app.test_client(), path, params)
            assert response.status_code == 200
            bodies.append(response.get_data(as_text=True))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(bodies) == 2 and bodies[0] == bodies[1]
    assert len(attachments(runtime)) == 1
    with Session(runtime.engine) as session:
        step = f"{call.sid}:{path.rsplit('=', 1)[1]}"
        copies = session.exec(
            select(func.count()).select_from(Message).where(Message.provider_id == step)
        ).one()
    assert copies == 1


def test_an_empty_recording_counts_as_no_answer(client, runtime: Runtime) -> None:
    call = Call(client)
    call.start()
    for key in ("1", "1", "2", "2", "1", "2", "2"):
        call.press(key)
    heard = call.record(duration="0")
    assert heard.said == [
        text(runtime, "system.no_answer", "fr"),
        text(runtime, "report.describe", "fr"),
    ]
    assert heard.waits == "record"
    assert attachments(runtime) == []
