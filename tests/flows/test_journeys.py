"""Transcripts of what citizens do once their report is made (docs/flows.md, "After a report").

Following it up at any moment, thanking the service, adding information, answering a moderator's
question: on SMS, Telegram and calls, in French and Bambara, each on SQLite and PostgreSQL. Every
reply is compared whole, as the channel renders it, with texts from the locale catalogue. The
clock is fixed (and moved by the tests), so the windows of settings.yaml (`after_report`) are
crossed on purpose, never by the date of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.engine.types import Input
from citoyen.models import QueueEntry, Report, ReportEvent
from citoyen.services import casefile
from citoyen.services.access import Staff
from citoyen.services.casework import add_note, reply_to_citizen
from citoyen.services.users import create_user
from tests.dialog import (
    DEFAULT,
    Dialog,
    Said,
    call,
    choose,
    code_question,
    language_menu,
    menu,
    places,
    question,
    ready_runtime,
    record,
    retry,
    say,
    verify_dialog,
)
from tests.flows.test_report_transcripts import (
    CATEGORIES,
    INTENTS,
    OFFER_ADDITION,
    REGIONS,
    ROUTES,
    category,
    full_report,
    language_number,
    new_report_input,
    welcome,
)

MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FOLLOW = {"fr": "SUIVI", "bm": "KƆLƆSI", "en": "FOLLOW"}
ADD = {"fr": "AJOUT", "bm": "FARA", "en": "ADD"}
QUESTION = "Pouvez-vous préciser l'heure ?"
ANSWER = {"fr": "Vers 22 heures, devant la mosquée.", "bm": "Su fɛ lɛrɛ 10 waati la."}
MORE = {
    "fr": "Ils étaient trois, sur une moto rouge.",
    "bm": "U tun ye mɔgɔ saba ye, moto bilen kan.",
}
CALL_RECORDING = "https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE99887766"


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(MONDAY, tick=False) as traveller:
        yield traveller


@pytest.fixture
def runtime(settings, clock):
    return ready_runtime(settings)


@pytest.fixture
def talk(runtime):
    def make(channel: str, lang: str, address: str | None = None) -> Dialog:
        return Dialog(runtime, channel, lang=lang, address=address)

    return make


def reported(talk, channel: str, lang: str) -> tuple[Dialog, str]:
    """A citizen who has just made a report (Bamako, someone in danger); its reference."""
    d = talk(channel, lang)
    transcript = verify_dialog(d, full_report(d, ROUTES["bamako-danger"]))
    return d, transcript.captures["reference"]


def status(d: Dialog, reference: str) -> object:
    return say("report.follow_status", reference=reference, report_status=d.t("report.status.new"))


def added(d: Dialog, reference: str, outcome: str) -> object:
    return say("report.addition_done", reference=reference, addition_outcome=d.t(outcome))


def voice_note(file_id: str) -> Said:
    """A Telegram voice note (the bot reads it as a recording)."""
    return Said(Input("recording", file_id), f"(voice note) {file_id}")


def photo(file_id: str) -> Said:
    """A Telegram photo sent without a caption."""
    return Said(Input("photo", file_id), f"(photo) {file_id}")


def staff_asks(runtime, reference: str, message: str = QUESTION) -> None:
    """A moderator writes to the reporter from the admin."""
    with write_session(runtime.engine) as session:
        user = create_user(session, "moderatrice@example.ml", "admin", "a-long-password-1")
        staff = Staff.of(user)
        report = session.exec(select(Report).where(Report.reference == reference)).one()
        reply_to_citizen(session, staff, report, message)


def events(runtime, reference: str, kind: str) -> list[ReportEvent]:
    with Session(runtime.engine) as session:
        report = session.exec(select(Report).where(Report.reference == reference)).one()
        return list(
            session.exec(
                select(ReportEvent)
                .where(ReportEvent.report_id == report.id, ReportEvent.kind == kind)
                .order_by(ReportEvent.id)
            ).all()
        )


def queue_marks(runtime, reference: str) -> set[str | None]:
    with Session(runtime.engine) as session:
        report = session.exec(select(Report).where(Report.reference == reference)).one()
        entries = session.exec(select(QueueEntry).where(QueueEntry.report_id == report.id))
        return {e.citizen_update for e in entries.all()}


def admin_view(runtime, reference: str) -> casefile.CaseFile:
    """The report page as an administrator sees it."""
    with write_session(runtime.engine) as session:
        user = create_user(session, "lectrice@example.ml", "admin", "a-long-password-2")
        report = session.exec(select(Report).where(Report.reference == reference)).one()
        return casefile.build(session, Staff.of(user), report, now=MONDAY)


# --- 1. Following a report up at any moment ---------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "lang"), [("sms", "fr"), ("sms", "bm"), ("telegram", "fr"), ("telegram", "bm")]
)
def test_follow_up_at_any_step_with_or_without_the_reference(talk, channel, lang):
    d, reference = reported(talk, channel, lang)
    follow = FOLLOW[lang]
    verify_dialog(
        d,
        [
            *welcome(d, new_report_input(d)),  # a second report, begun...
            category(2),  # ...and left at the place question
            (f"{follow} {reference}", status(d, reference)),
            *welcome(d, new_report_input(d)),
            (follow.lower(), status(d, reference)),  # their own last report
        ],
    )
    assert len(d.reports()) == 1
    assert [c.status for c in d.conversations()][-4:] == [
        "interrupted",
        "completed",
        "interrupted",
        "completed",
    ]


@pytest.mark.parametrize(("channel", "lang"), [("sms", "bm"), ("telegram", "fr")])
def test_someone_else_is_asked_for_the_reference_mid_report(talk, channel, lang):
    _, reference = reported(talk, "sms", "fr")
    neighbour = talk(channel, lang)
    first = {"sms": "I ni ce", "telegram": "/start"}[channel]
    verify_dialog(
        neighbour,
        [
            (first, language_menu(lang=DEFAULT)),
            *welcome(neighbour, choose(language_number(neighbour), lang)),
            (FOLLOW[lang], code_question("report.ask_reference")),
            ("123-4567", [say("system.invalid_reference"), code_question("report.ask_reference")]),
            (reference, status(neighbour, reference)),
        ],
    )


def test_telegram_commands_work_mid_report(talk):
    d, _ = reported(talk, "telegram", "bm")
    region = places("system.place_region", REGIONS, more=True)
    verify_dialog(
        d,
        [
            *welcome(d, "/start"),
            category(1),
            ("/help", [say("system.help"), region]),
            ("/menu", [say("report.welcome"), menu("report.category", *CATEGORIES)]),
        ],
    )


# --- 2. After a report: thanks are acknowledged, never a new report ---------------------------


@pytest.mark.parametrize(
    ("channel", "lang", "thanks"),
    [
        ("sms", "fr", "Merci"),
        ("sms", "fr", "ok"),
        ("sms", "bm", "I ni ce"),
        ("telegram", "fr", "D'accord"),
        ("telegram", "bm", "👍"),
    ],
)
def test_thanks_after_a_report_get_a_short_acknowledgement(talk, channel, lang, thanks):
    d, reference = reported(talk, channel, lang)
    acknowledgement = say("report.after_report", reference=reference)
    verify_dialog(d, [(thanks, acknowledgement), ("🙏", acknowledgement)])
    assert len(d.reports()) == 1
    # A new report starts on an explicit choice.
    verify_dialog(d, welcome(d, new_report_input(d)))


def test_the_confirmation_and_the_help_say_how_to_follow_up(talk):
    d, reference = reported(talk, "sms", "fr")
    assert f"SUIVI {reference}" in d.turns[-1].text
    assert "SUIVI" in d.t("system.help")
    b, reference = reported(talk, "sms", "bm")
    assert f"KƆLƆSI {reference}" in b.turns[-1].text


def test_a_month_later_a_message_starts_a_report_again(talk, clock):
    d, _ = reported(talk, "sms", "fr")
    clock.shift(timedelta(days=31))
    verify_dialog(d, welcome(d, "Bonjour"))


# --- 3. Adding information to a report ------------------------------------------------------


@pytest.mark.parametrize("lang", ["fr", "bm"])
def test_adding_text_by_sms(talk, runtime, lang):
    d, reference = reported(talk, "sms", lang)
    verify_dialog(
        d,
        [
            (ADD[lang], question("report.ask_addition")),
            (MORE[lang], added(d, reference, "report.addition.saved")),
        ],
    )
    [event] = events(runtime, reference, "citizen_addition")
    assert (event.note, event.data["channel"]) == (MORE[lang], "sms")
    assert queue_marks(runtime, reference) == {"addition"}
    view = admin_view(runtime, reference)
    assert [line.text for line in view.transcript if line.who == "citizen"][-2:] == [
        ADD[lang],
        MORE[lang],
    ]


def test_adding_a_voice_note_on_telegram(talk, runtime):
    d, reference = reported(talk, "telegram", "bm")
    verify_dialog(
        d,
        [
            (f"{ADD['bm']} {reference}", question("report.ask_addition")),
            (voice_note("AwACAgQAAxkBAAIB"), added(d, reference, "report.addition.saved")),
        ],
    )
    [event] = events(runtime, reference, "citizen_addition")
    assert event.data["recording"] == "AwACAgQAAxkBAAIB"


def test_a_photo_alone_is_the_addition_or_joins_a_recent_report(talk, runtime):
    d, reference = reported(talk, "telegram", "fr")
    verify_dialog(
        d,
        [
            ("AJOUT", question("report.ask_addition")),
            (photo("AgACAgQAAxkBAAIBPhoto1"), added(d, reference, "report.addition.saved")),
            # Soon after the report, a photo sent on its own needs no keyword.
            (photo("AgACAgQAAxkBAAIBPhoto2"), added(d, reference, "report.addition.saved")),
            ("Merci", say("report.after_report", reference=reference)),
        ],
    )
    kept = [e.data["photo"] for e in events(runtime, reference, "citizen_addition")]
    assert kept == ["AgACAgQAAxkBAAIBPhoto1", "AgACAgQAAxkBAAIBPhoto2"]


def test_only_the_reporter_may_add_to_a_report(talk, runtime):
    _, reference = reported(talk, "sms", "fr")
    stranger, _ = reported(talk, "sms", "fr")
    verify_dialog(
        stranger,
        [
            (f"AJOUT {reference}", question("report.ask_addition")),
            ("Ce n'est pas vrai.", added(stranger, reference, "report.addition.unknown")),
        ],
    )
    assert events(runtime, reference, "citizen_addition") == []


@pytest.mark.parametrize("lang", ["fr", "bm"])
def test_adding_a_recording_on_a_call_after_the_reference(talk, runtime, lang):
    sms, reference = reported(talk, "sms", lang)
    caller = talk("voice", lang, address=sms.address)  # the same phone calls
    verify_dialog(
        caller,
        [
            (call(), [say("report.welcome"), menu("report.intent", *INTENTS)]),
            (choose(2, "follow"), code_question("report.ask_reference")),
            (
                reference.replace("-", ""),
                [
                    say(
                        "report.follow_status_call",
                        reference=reference,
                        report_status=caller.t("report.status.new"),
                        staff_message="",
                    ),
                    menu("report.offer_addition", *OFFER_ADDITION),
                ],
            ),
            (choose(1, "add"), question("report.ask_addition")),
            (record(CALL_RECORDING), added(caller, reference, "report.addition.saved")),
        ],
    )
    assert caller.last.text.endswith("(the call ends)")
    [event] = events(runtime, reference, "citizen_addition")
    assert (event.data["recording"], event.data["channel"]) == (CALL_RECORDING, "voice")


# --- 4. Answering a staff question ----------------------------------------------------------


@pytest.mark.parametrize(("channel", "lang"), [("sms", "fr"), ("sms", "bm"), ("telegram", "fr")])
def test_the_answer_to_a_report_addition_joins_the_report(talk, runtime, clock, channel, lang):
    d, reference = reported(talk, channel, lang)
    clock.shift(timedelta(hours=5))
    staff_asks(runtime, reference)
    clock.shift(timedelta(hours=20))
    verify_dialog(d, [(ANSWER[lang], added(d, reference, "report.addition.answer"))])
    [event] = events(runtime, reference, "citizen_answer")
    assert (event.note, event.data["question"]) == (ANSWER[lang], QUESTION)
    assert queue_marks(runtime, reference) == {"answer"}
    view = admin_view(runtime, reference)
    assert view.reporter.startswith("Citoyen")  # an anonymous reporter keeps their alias
    assert ANSWER[lang] in [line.text for line in view.transcript]
    # Staff act on it: the mark goes.
    with write_session(runtime.engine) as session:
        report = session.exec(select(Report).where(Report.reference == reference)).one()
        user = create_user(session, "agent@example.ml", "admin", "a-long-password-3")
        add_note(session, Staff.of(user), report, "Heure notée.")
    assert queue_marks(runtime, reference) == {None}
    # After the answer window, a message is thanks again, not an answer.
    clock.shift(timedelta(hours=73))
    verify_dialog(d, [("Merci", say("report.after_report", reference=reference))])
    assert len(events(runtime, reference, "citizen_answer")) == 1


@pytest.mark.parametrize("lang", ["fr", "bm"])
def test_a_caller_hears_the_report_addition_and_records_an_answer(talk, runtime, clock, lang):
    sms, reference = reported(talk, "sms", lang)
    staff_asks(runtime, reference)
    clock.shift(timedelta(hours=1))
    caller = talk("voice", lang, address=sms.address)
    heard = f"{caller.t('report.staff_said')} {QUESTION}"
    verify_dialog(
        caller,
        [
            (call(), [say("report.welcome"), menu("report.intent", *INTENTS)]),
            (choose(2, "follow"), code_question("report.ask_reference")),
            (
                reference.replace("-", ""),
                [
                    say(
                        "report.follow_status_call",
                        reference=reference,
                        report_status=caller.t("report.status.new"),
                        staff_message=heard,
                    ),
                    menu("report.offer_addition", *OFFER_ADDITION),
                ],
            ),
            (choose(1, "add"), question("report.ask_addition")),
            (record(CALL_RECORDING), added(caller, reference, "report.addition.answer")),
        ],
    )
    [event] = events(runtime, reference, "citizen_answer")
    assert (event.data["recording"], event.data["question"]) == (CALL_RECORDING, QUESTION)


def test_a_retried_answer_is_kept_once(talk, runtime):
    d, reference = reported(talk, "sms", "fr")
    staff_asks(runtime, reference)
    d.send(ANSWER["fr"])
    verify_dialog(d, [(retry(), added(d, reference, "report.addition.answer"))])
    assert len(events(runtime, reference, "citizen_answer")) == 1
