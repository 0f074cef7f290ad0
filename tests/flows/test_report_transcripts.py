"""Transcripts of the report flow (flows/report.yaml): per language, on SMS, calls and Telegram.

Every reply is compared whole, as the channel renders it, with texts taken from the locale
catalogue (see tests/dialog.py and README.md here). Area names and codes are written out: they are
the shipped sample's (data/mali-areas.csv), and what a citizen sees in the menus.
Each test runs on SQLite and on PostgreSQL (the ``settings`` fixture).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from sqlmodel import func, select

from citoyen.models import Message, Report
from tests.dialog import (
    DEFAULT,
    REFERENCE,
    Dialog,
    Part,
    button,
    call,
    choose,
    code_question,
    contains,
    language_menu,
    matches,
    menu,
    no_answer,
    places,
    press,
    question,
    ready_runtime,
    record,
    retry,
    say,
    verify_dialog,
)

CATEGORY_KEYS = (
    "armed_attack",
    "theft",
    "violence",
    "conflict",
    "suspicious",
    "banditry",
    "disaster",
    "other",
)
CATEGORIES = tuple(f"report.category.{key}" for key in CATEGORY_KEYS)
DANGER = ("report.danger.yes", "report.danger.no")
ANONYMOUS = ("report.anonymous.yes", "report.anonymous.no")
CONSENT = ("report.consent.yes", "report.consent.no")
INTENTS = ("report.intent.new", "report.intent.follow")
OFFER_ADDITION = ("report.offer_addition.add", "report.offer_addition.done")

# The shipped areas, in menu order (Bamako district first, then regions alphabetically; nine
# lines per menu, so the last line of a long level is "more").
REGIONS = ("Bamako", "Gao", "Kayes", "Kidal", "Koulikoro", "Ménaka", "Mopti", "Ségou")
MORE_REGIONS = ("Sikasso", "Taoudénit", "Tombouctou")
BAMAKO_COMMUNES = tuple(f"Commune {n}" for n in ("I", "II", "III", "IV", "V", "VI"))
SIKASSO_CERCLES = (
    "Bougouni",
    "Kadiolo",
    "Kolondiéba",
    "Koutiala",
    "Sikasso",
    "Yanfolila",
    "Yorosso",
)
KADIOLO_COMMUNES = ("Diou", "Dioumaténé", "Fourou", "Kadiolo", "Kaï", "Loulouni", "Misséni")
KADIOLO_MORE_COMMUNES = ("Nimbougou", "Zégoua")

# What citizens write or say (inputs, not texts of the service).
DESCRIPTIONS = {
    "fr": "Deux hommes armés ont pris une moto près du marché hier soir.",
    "bm": "Mɔgɔ fila ye moto dɔ ta sugu kɛrɛfɛ kunu su.",
    "en": "Two armed men took a motorbike near the market last night.",
}
RECORDING = "https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE0123456789"


@pytest.fixture
def runtime(settings):
    return ready_runtime(settings)


@pytest.fixture
def talk(runtime):
    def make(channel: str, lang: str | None = None) -> Dialog:
        return Dialog(runtime, channel, lang=lang)

    return make


# --- pieces of conversations ---------------------------------------------------------------------


def first_input(d: Dialog):
    return {"voice": call(), "telegram": "/start", "sms": "Bonjour"}[d.channel]


def language_number(d: Dialog, lang: str | None = None) -> int:
    return list(d.settings.languages.enabled).index(lang or d.lang) + 1


def welcome(d: Dialog, after: object) -> list:
    """The welcome, then the category question; a call first asks report or follow-up."""
    if d.channel != "voice":
        return [(after, [say("report.welcome"), menu("report.category", *CATEGORIES)])]
    return [
        (after, [say("report.welcome"), menu("report.intent", *INTENTS)]),
        (choose(1, "new"), menu("report.category", *CATEGORIES)),
    ]


def opening(d: Dialog) -> list:
    """First contact: the language menu (in the default language), then the welcome."""
    return [
        (first_input(d), language_menu(lang=DEFAULT)),
        *welcome(d, choose(language_number(d), d.lang)),
    ]


def asks_place() -> list[Part]:
    return [say("report.place"), places("system.place_region", REGIONS, more=True)]


def category(n: int) -> tuple:
    return (choose(n, CATEGORY_KEYS[n - 1]), asks_place())


BAMAKO_COMMUNE_IV = [
    (choose(1, "ML-BKO"), places("system.place_commune", BAMAKO_COMMUNES, unknown=True)),
    (choose(4, "ML-BKO.commune-iv"), menu("report.danger", *DANGER)),
]

# Sikasso is on the second page of regions, Zégoua on the second page of Kadiolo's communes.
KADIOLO_ZEGOUA = [
    (choose(9, "more"), places("system.place_region", MORE_REGIONS, more=True)),
    (choose(1, "ML-3"), places("system.place_cercle", SIKASSO_CERCLES, unknown=True)),
    (
        choose(2, "ML-3.kadiolo"),
        places("system.place_commune", KADIOLO_COMMUNES, more=True, unknown=True),
    ),
    (
        choose(8, "more"),
        places("system.place_commune", KADIOLO_MORE_COMMUNES, more=True, unknown=True),
    ),
    (choose(2, "ML-3.kadiolo.zegoua"), menu("report.danger", *DANGER)),
]


def describe(d: Dialog):
    return record(RECORDING) if d.channel == "voice" else DESCRIPTIONS[d.lang]


def yes_no(value: bool) -> tuple[int, str]:
    return (1, "yes") if value else (2, "no")


@dataclass(frozen=True)
class Route:
    """One way through the report flow and what it must store."""

    category: int  # position in the category menu
    places: list
    area: str
    danger: bool
    anonymous: bool
    consent: bool


ROUTES = {
    # A Bamako commune, someone in danger, anonymous, agrees to surveys.
    "bamako-danger": Route(1, BAMAKO_COMMUNE_IV, "ML-BKO.commune-iv", True, True, True),
    # A rural commune two pages deep, no danger, may be called back, no surveys.
    "rural-paging": Route(2, KADIOLO_ZEGOUA, "ML-3.kadiolo.zegoua", False, False, False),
}


def after_place(d: Dialog, route: Route) -> list:
    """From the danger question to the confirmation."""
    if route.danger:
        danger = (choose(1, "yes"), [say("report.emergency"), question("report.describe")])
    else:
        danger = (choose(2, "no"), question("report.describe"))
    return [
        danger,
        (describe(d), menu("report.anonymous", *ANONYMOUS)),
        (choose(*yes_no(route.anonymous)), menu("report.consent", *CONSENT)),
        (choose(*yes_no(route.consent)), say("report.confirm", reference=REFERENCE)),
    ]


# A second report starts on an explicit choice: a call, /start, or the report keyword (any
# other message after a report gets an acknowledgement: tests/flows/test_journeys.py).
REPORT_KEYWORD = {"fr": "SIGNALER", "bm": "LAKALI", "en": "REPORT"}


def new_report_input(d: Dialog):
    return {"voice": call(), "telegram": "/start", "sms": REPORT_KEYWORD[d.lang]}[d.channel]


def full_report(d: Dialog, route: Route, *, first: bool = True) -> list:
    start = opening(d) if first else welcome(d, new_report_input(d))
    return [*start, category(route.category), *route.places, *after_place(d, route)]


def to_danger_question(d: Dialog) -> list:
    return [*opening(d), category(2), *BAMAKO_COMMUNE_IV]


def count_reports(d: Dialog) -> int:
    with d.session() as session:
        return session.exec(select(func.count()).select_from(Report)).one()


def assert_stored(d: Dialog, transcript, route: Route, *, total: int = 1) -> Report:
    """The contact's one report (``total`` in the database), as the conversation said."""
    assert count_reports(d) == total
    [report] = d.reports()
    assert re.fullmatch(r"\d{3}-\d{4}", report.reference)
    assert transcript.captures["reference"] == report.reference
    assert report.reference in transcript.last.text
    assert report.channel == d.channel
    assert report.language == d.lang
    assert report.category == CATEGORY_KEYS[route.category - 1]
    assert d.area_code(report.area_id) == route.area
    assert report.urgency == ("emergency" if route.danger else "normal")
    if d.channel == "voice":
        assert (report.recording_url, report.description) == (RECORDING, None)
    else:
        assert (report.description, report.recording_url) == (DESCRIPTIONS[d.lang], None)
    assert report.anonymous is route.anonymous
    assert report.callback_ok is (not route.anonymous)
    contact = d.contact()
    assert contact.language == d.lang
    assert contact.survey_consent is route.consent
    assert contact.opted_out is False
    conversation = d.conversation()
    assert (conversation.flow_id, conversation.status) == ("report", "completed")
    assert report.conversation_id == conversation.id
    return report


def assert_emergency_first(transcript) -> None:
    """With someone in danger, the emergency numbers come first, before the description."""
    d = transcript.dialog
    [turn] = [t for t in transcript.turns if d.t("report.emergency") in t.text]
    assert turn.text.index(d.t("report.emergency")) == 0
    assert turn.text.index(d.t("report.describe")) > 0


# --- full conversations ----------------------------------------------------------------------------
# Cases of one kind share a test (and so a database), each as its own contact: a fresh database per
# case would cost more than the conversations themselves.


@pytest.mark.parametrize("lang", ["fr", "bm", "en"])
def test_report_by_sms(talk, lang):
    for reports, name in enumerate(ROUTES, start=1):
        d = talk("sms", lang)
        transcript = verify_dialog(d, full_report(d, ROUTES[name]))
        assert_stored(d, transcript, ROUTES[name], total=reports)
        if ROUTES[name].danger:
            assert_emergency_first(transcript)


@pytest.mark.parametrize(("lang", "route"), [("fr", "rural-paging"), ("bm", "bamako-danger")])
def test_report_by_call(talk, lang, route):
    d = talk("voice", lang)
    transcript = verify_dialog(d, full_report(d, ROUTES[route]))
    assert transcript.last.text.endswith("(the call ends)")
    assert_stored(d, transcript, ROUTES[route])
    if ROUTES[route].danger:
        assert_emergency_first(transcript)


@pytest.mark.parametrize(("lang", "route"), [("fr", "bamako-danger"), ("bm", "rural-paging")])
def test_report_by_telegram(talk, lang, route):
    d = talk("telegram", lang)
    transcript = verify_dialog(d, full_report(d, ROUTES[route]))
    assert_stored(d, transcript, ROUTES[route])
    if ROUTES[route].danger:
        assert_emergency_first(transcript)


def test_second_report_skips_the_language_question(talk):
    for channel, lang in [("sms", "bm"), ("voice", "fr"), ("telegram", "en")]:
        d = talk(channel, lang)
        verify_dialog(d, full_report(d, ROUTES["bamako-danger"]))
        second = verify_dialog(d, full_report(d, ROUTES["rural-paging"], first=False))
        first_report, second_report = d.reports()
        assert second_report.reference == second.captures["reference"], d.transcript()
        assert second_report.reference != first_report.reference
        assert (first_report.language, second_report.language) == (lang, lang), channel
        assert d.area_code(second_report.area_id) == "ML-3.kadiolo.zegoua", channel


# --- keywords at odd moments -----------------------------------------------------------------------


def test_stop_mid_flow(talk):
    for lang, word in [
        ("fr", "STOP"),
        ("fr", "arrêt"),
        ("bm", "DABILA"),
        ("bm", "A DABILA"),
        ("en", "STOP"),
    ]:
        d = talk("sms", lang)
        verify_dialog(d, [*opening(d), category(1), (word, say("system.stopped"))])
        contact = d.contact()
        assert (contact.opted_out, contact.survey_consent) == (True, False), word
        assert d.reports() == [], word
        assert d.conversation().status == "completed", word
    assert count_reports(d) == 0


def test_help_mid_question_asks_the_same_question_again(talk):
    for lang, word in [
        ("fr", "AIDE"),
        ("en", "HELP"),
        ("bm", "DƐMƐ"),
        ("bm", "DÈMÈ"),  # older spelling
        ("bm", "deme"),  # typed without the Bambara letters
    ]:
        d = talk("sms", lang)
        verify_dialog(
            d,
            [
                *to_danger_question(d),
                (word, [say("system.help"), menu("report.danger", *DANGER)]),
                (word, [say("system.help"), menu("report.danger", *DANGER)]),
                (choose(2, "no"), question("report.describe")),
            ],
        )
        assert d.conversation().state["answers"]["danger"] == "no", word


def test_help_on_a_later_page_of_a_place_menu_keeps_the_page(talk):
    d = talk("sms", "fr")
    page_two = places("system.place_commune", KADIOLO_MORE_COMMUNES, more=True, unknown=True)
    verify_dialog(
        d,
        [
            *opening(d),
            category(5),
            *KADIOLO_ZEGOUA[:-1],
            ("AIDE", [say("system.help"), page_two]),
            (choose(1, "ML-3.kadiolo.nimbougou"), menu("report.danger", *DANGER)),
        ],
    )
    assert d.conversation().state["answers"]["place"] == "ML-3.kadiolo.nimbougou"


def test_menu_goes_back_to_the_start(talk):
    for lang, word in [("fr", "MENU"), ("bm", "SEGIN"), ("en", "restart")]:
        d = talk("sms", lang)
        verify_dialog(
            d,
            [
                *to_danger_question(d),
                (word, [say("report.welcome"), menu("report.category", *CATEGORIES)]),
            ],
        )
        assert d.conversation().state["answers"] == {"language": lang}, word
    # The last one goes on to a report with the new answers only.
    transcript = verify_dialog(
        d, [category(7), *BAMAKO_COMMUNE_IV, *after_place(d, ROUTES["bamako-danger"])]
    )
    [report] = d.reports()
    assert report.category == "disaster"
    assert report.reference == transcript.captures["reference"]


def test_language_keyword_then_the_same_question_in_the_new_language(talk):
    for lang, word, new in [
        ("fr", "LANGUE", "en"),
        ("bm", "KAN", "fr"),
        ("en", "LANGUAGE", "bm"),
        ("fr", "kan", "bm"),
    ]:
        d = talk("sms", lang)
        verify_dialog(
            d,
            [
                *to_danger_question(d),
                (word, language_menu()),
                (choose(language_number(d, new), new), menu("report.danger", *DANGER, lang=new)),
            ],
        )
        d.lang = new
        transcript = verify_dialog(d, after_place(d, ROUTES["bamako-danger"]))
        [report] = d.reports()
        assert report.reference == transcript.captures["reference"], word
        assert (report.language, d.contact().language) == (new, new), word


def test_language_keyword_on_a_commune_menu_asks_the_commune_again(talk):
    d = talk("sms", "fr")
    verify_dialog(
        d,
        [
            *opening(d),
            category(2),
            (choose(1, "ML-BKO"), places("system.place_commune", BAMAKO_COMMUNES, unknown=True)),
            ("LANGUE", language_menu()),
            (
                choose(language_number(d, "en"), "en"),
                places("system.place_commune", BAMAKO_COMMUNES, unknown=True, lang="en"),
            ),
        ],
    )


# --- menu labels typed as answers --------------------------------------------------------------------


def test_typing_a_menu_label_chooses_that_option(talk):
    for channel, lang in [("sms", "fr"), ("sms", "bm"), ("sms", "en"), ("telegram", "fr")]:
        d = talk(channel, lang)
        verify_dialog(
            d,
            [
                *opening(d),
                (d.t("report.category.theft"), asks_place()),
                (d.t("system.more"), places("system.place_region", MORE_REGIONS, more=True)),
                ("Sikasso", places("system.place_cercle", SIKASSO_CERCLES, unknown=True)),
                # "I don't know" below the region level: the region is the answer.
                (d.t("system.place_unknown"), menu("report.danger", *DANGER)),
                (d.t("report.danger.no").upper(), question("report.describe")),
            ],
        )
        answers = d.conversation().state["answers"]
        assert (answers["category"], answers["place"], answers["danger"]) == (
            "theft",
            "ML-3",
            "no",
        ), f"{channel} {lang}"
    # A label in another language than the citizen's is not an answer.
    d = talk("sms", "bm")
    verify_dialog(
        d,
        [
            *opening(d),
            (
                d.t("report.category.theft", "fr"),
                [say("system.invalid_choice"), menu("report.category", *CATEGORIES)],
            ),
            (d.t("report.category.theft"), asks_place()),
        ],
    )


def test_typing_a_language_button_label_chooses_that_language(talk):
    d = talk("telegram", "bm")
    verify_dialog(
        d,
        [
            ("/start", language_menu(lang=DEFAULT)),
            (
                d.catalog.meta("bm").name,
                [say("report.welcome"), menu("report.category", *CATEGORIES)],
            ),
        ],
    )


# --- invalid answers and silence ----------------------------------------------------------------------


def test_invalid_answers_then_goodbye(talk):
    for channel, lang in [("sms", "fr"), ("sms", "bm"), ("sms", "en"), ("voice", "bm")]:
        d = talk(channel, lang)
        retries = d.runtime.bundle.flows["report"].max_retries
        again = [say("system.invalid_choice"), menu("report.category", *CATEGORIES)]
        wrong = ["9", "0", "zz", "42"] if channel == "sms" else ["9", "0", "*", "#"]
        verify_dialog(
            d,
            [
                *opening(d),
                *[(wrong[i % len(wrong)], again) for i in range(retries - 1)],
                (wrong[(retries - 1) % len(wrong)], say("system.goodbye")),
            ],
        )
        if channel == "voice":
            assert d.last.text.endswith("(the call ends)")
        assert d.last.reply.status == "interrupted", d.transcript()
        assert d.conversation().status == "interrupted", d.transcript()
        # The next message starts a new conversation, in the language already chosen.
        verify_dialog(d, welcome(d, first_input(d)))
        assert [c.status for c in d.conversations()] == ["interrupted", "waiting"]
    assert count_reports(d) == 0


def test_silence_on_a_call(talk):
    for lang in ["fr", "bm"]:
        d = talk("voice", lang)
        regions = places("system.place_region", REGIONS, more=True)
        verify_dialog(
            d,
            [
                *opening(d),
                (no_answer(), [say("system.no_answer"), menu("report.category", *CATEGORIES)]),
                (choose(2, "theft"), asks_place()),
                (no_answer(), [say("system.no_answer"), regions]),
                (no_answer(), say("system.goodbye")),
            ],
        )
        assert d.last.text.endswith("(the call ends)")
        assert d.conversation().status == "interrupted"


# --- provider retries --------------------------------------------------------------------------------


def test_a_retried_input_gets_the_same_reply_and_changes_nothing(talk):
    route = ROUTES["bamako-danger"]
    for reports, channel in enumerate(["sms", "voice", "telegram"], start=1):
        d = talk(channel, "fr")
        # Mid-flow: the provider delivers the category answer twice; the flow does not move on.
        verify_dialog(d, [*opening(d), category(1), (retry(), asks_place())])
        assert d.last.reply.duplicate is True
        # At the end: the last answer twice gives one report and the same reference.
        transcript = verify_dialog(d, [*route.places, *after_place(d, route)])
        final = d.last
        messages = len(d.messages())
        again = d.send(retry())
        assert again.reply.duplicate is True
        assert again.text == final.text, d.transcript()
        assert len(d.messages(provider_id=final.provider_id)) == 1
        assert len(d.messages()) == messages  # nothing stored for the copy
        assert count_reports(d) == reports
        [report] = d.reports()
        assert report.reference == transcript.captures["reference"]
        with d.session() as session:
            inbound = session.exec(
                select(func.count())
                .select_from(Message)
                .where(Message.direction == "in", Message.contact_id == report.contact_id)
            ).one()
        assert inbound == len(d.turns) - 2, channel  # the two copies are not stored


# --- the helper itself ---------------------------------------------------------------------------------


def test_verify_dialog_shows_the_whole_transcript_when_a_reply_differs(talk):
    d = talk("sms", "bm")
    wrong = [say("report.place", lang="fr"), places("system.place_region", REGIONS, more=True)]
    with pytest.raises(AssertionError) as failure:
        verify_dialog(d, [*opening(d), (choose(2, "theft"), wrong)])
    message = str(failure.value)
    assert message.startswith("turn 3: the reply differs")
    for turn in d.turns:  # every exchange so far, and the expected reply with a diff
        assert f"{turn.number:>3} > {turn.shown}" in message
        assert all(line in message for line in turn.text.splitlines())
    assert f"-{d.t('report.place', 'fr')}" in message
    assert f"+{d.t('report.place')}" in message
    # Partial expectations; and a citizen can only do what the channel offers.
    verify_dialog(
        d,
        [
            (
                "1",
                contains(
                    places("system.place_commune", BAMAKO_COMMUNES[:2]),
                    d.t("system.place_unknown"),
                ),
            ),
            ("4", matches(r"\n1\. " + re.escape(d.t("report.danger.yes")) + r"\n2\. ")),
        ],
    )
    for impossible in (button("yes"), press("1"), record(RECORDING)):
        with pytest.raises(AssertionError, match="only"):
            d.send(impossible)


# --- following a report ------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["fr", "bm"])
def test_follow_a_report_by_keying_its_reference_on_a_call(talk, lang):
    route = ROUTES["bamako-danger"]
    reporter = talk("sms", lang)
    reference = verify_dialog(reporter, full_report(reporter, route)).captures["reference"]
    caller = talk("voice", lang)
    verify_dialog(
        caller,
        [
            (call(), language_menu(lang=DEFAULT)),
            (
                choose(language_number(caller), lang),
                [say("report.welcome"), menu("report.intent", *INTENTS)],
            ),
            (choose(2, "follow"), code_question("report.ask_reference")),
            (
                press("1234567"),
                [say("system.invalid_reference"), code_question("report.ask_reference")],
            ),
            (
                press(reference.replace("-", "")),
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
            (choose(2, "done"), say("system.goodbye")),
        ],
    )
    assert caller.last.text.endswith("(the call ends)")
    assert count_reports(caller) == 1  # following a report creates nothing


def test_follow_a_report_by_sms_keyword(talk):
    route = ROUTES["bamako-danger"]
    reporter = talk("sms", "en")
    reference = verify_dialog(reporter, full_report(reporter, route)).captures["reference"]
    status = say(
        "report.follow_status", reference=reference, report_status=reporter.t("report.status.new")
    )
    # The reporter's own last report needs no reference; anyone else is asked for it.
    verify_dialog(reporter, [("FOLLOW", status)])
    neighbour = talk("sms", "en")
    verify_dialog(
        neighbour,
        [
            ("Hello", language_menu(lang=DEFAULT)),
            *welcome(neighbour, choose(language_number(neighbour), "en")),
            ("FOLLOW", code_question("report.ask_reference")),
            (reference, status),
        ],
    )
