"""Transcripts of the perceived-safety survey (flows/perceived_safety.yaml), per language.

SDG 16.1.4 ("how safe do you feel walking alone in your area after dark?") and two Afrobarometer
frequency questions. Answers must be stored one row per question with the option key and the flow
version the conversation is pinned to. Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import pytest
from sqlmodel import func, select

from citoyen.models import Report, SurveyAnswer
from tests.dialog import (
    DEFAULT,
    Dialog,
    choose,
    language_menu,
    menu,
    ready_runtime,
    say,
    verify_dialog,
)

SAFE_KEYS = ("very_safe", "fairly_safe", "bit_unsafe", "very_unsafe", "never_alone", "dont_know")
FREQUENCY_KEYS = ("never", "once_twice", "several", "many", "always", "dont_know")
SAFE = tuple(f"perceived_safety.safe_after_dark.{key}" for key in SAFE_KEYS)
FREQUENCY = tuple(f"perceived_safety.frequency.{key}" for key in FREQUENCY_KEYS)
QUESTIONS = ("safe_after_dark", "unsafe_walking", "feared_home")

FIRST_QUESTION = [say("perceived_safety.intro"), menu("perceived_safety.safe_after_dark", *SAFE)]
UNSAFE_WALKING = menu("perceived_safety.unsafe_walking", *FREQUENCY)
FEARED_HOME = menu("perceived_safety.feared_home", *FREQUENCY)

# Trigger keywords per language (flows/perceived_safety.yaml), as citizens may type them.
TRIGGERS = {"fr": ["SONDAGE", "sondage"], "bm": ["ƝININKALI", "nininkali"], "en": ["SURVEY"]}
# Answers per language: each says "never alone after dark" and "don't know" (to a frequency
# question); the second survey of each language answers "don't know" to the first question.
ANSWERS = {
    "fr": ("never_alone", "dont_know", "once_twice"),
    "bm": ("never_alone", "several", "dont_know"),
    "en": ("never_alone", "always", "dont_know"),
}


@pytest.fixture
def runtime(settings):
    return ready_runtime(settings)


@pytest.fixture
def talk(runtime):
    def make(channel: str, lang: str | None = None) -> Dialog:
        return Dialog(runtime, channel, lang=lang)

    return make


def language_number(d: Dialog, lang: str | None = None) -> int:
    return list(d.settings.languages.enabled).index(lang or d.lang) + 1


def survey(d: Dialog, safe: str, walking: str, home: str) -> list:
    """The three questions answered (the intro and first question already asked)."""
    return [
        (choose(SAFE_KEYS.index(safe) + 1, safe), UNSAFE_WALKING),
        (choose(FREQUENCY_KEYS.index(walking) + 1, walking), FEARED_HOME),
        (choose(FREQUENCY_KEYS.index(home) + 1, home), say("perceived_safety.thanks")),
    ]


def first_contact(d: Dialog, trigger: str) -> list:
    return [
        (trigger, language_menu(lang=DEFAULT)),
        (choose(language_number(d), d.lang), FIRST_QUESTION),
    ]


def stored(d: Dialog, conversation_id: int) -> dict[str, str]:
    """The answers stored for one conversation, checking flow id and version on the way."""
    conversation = next(c for c in d.conversations() if c.id == conversation_id)
    assert conversation.flow_id == "perceived_safety"
    assert conversation.status == "completed"
    assert conversation.flow_version == d.runtime.bundle.flows["perceived_safety"].version
    rows = [a for a in d.survey_answers() if a.conversation_id == conversation_id]
    for row in rows:
        assert (row.flow_id, row.flow_version) == ("perceived_safety", conversation.flow_version)
    assert len({row.question for row in rows}) == len(rows)
    return {row.question: row.answer for row in rows}


def count(d: Dialog, table) -> int:
    with d.session() as session:
        return session.exec(select(func.count()).select_from(table)).one()


@pytest.mark.parametrize("lang", ["fr", "bm", "en"])
def test_survey_started_by_its_keyword(talk, lang):
    safe, walking, home = ANSWERS[lang]
    dialogs = []
    for trigger in TRIGGERS[lang]:
        d = talk("sms", lang)
        verify_dialog(d, [*first_contact(d, trigger), *survey(d, safe, walking, home)])
        answers = stored(d, d.conversation().id)
        assert answers == dict(zip(QUESTIONS, (safe, walking, home), strict=True)), trigger
        assert d.contact().language == lang
        dialogs.append(d)
    # The language is remembered: the next survey starts with its introduction.
    d = dialogs[0]
    verify_dialog(
        d, [(TRIGGERS[lang][0], FIRST_QUESTION), *survey(d, "dont_know", "never", "many")]
    )
    first, second = (c.id for c in d.conversations())
    assert stored(d, second) == {
        "safe_after_dark": "dont_know",
        "unsafe_walking": "never",
        "feared_home": "many",
    }
    assert stored(d, first)["safe_after_dark"] == safe
    assert count(d, SurveyAnswer) == 3 * (len(TRIGGERS[lang]) + 1)
    assert count(d, Report) == 0


@pytest.mark.parametrize("lang", ["fr", "bm"])
def test_survey_on_telegram(talk, lang):
    d = talk("telegram", lang)
    verify_dialog(
        d,
        [*first_contact(d, TRIGGERS[lang][0]), *survey(d, "never_alone", "several", "dont_know")],
    )
    assert stored(d, d.conversation().id) == {
        "safe_after_dark": "never_alone",
        "unsafe_walking": "several",
        "feared_home": "dont_know",
    }


def test_survey_keywords_labels_and_invalid_answers(talk):
    # STOP (or its Bambara form) in the middle: stopped, opted out, nothing stored.
    for lang, word in [("fr", "STOP"), ("bm", "A DABILA"), ("en", "stop")]:
        d = talk("sms", lang)
        verify_dialog(
            d,
            [
                *first_contact(d, TRIGGERS[lang][0]),
                (choose(1, "very_safe"), UNSAFE_WALKING),
                (word, say("system.stopped")),
            ],
        )
        assert d.contact().opted_out is True, word
        assert d.survey_answers() == [], word
        assert d.conversation().status == "completed", word

    # Help, then the same question; an answer typed as its label in the citizen's language.
    for lang, word in [("fr", "AIDE"), ("bm", "DÈMÈ"), ("en", "help")]:
        d = talk("sms", lang)
        verify_dialog(
            d,
            [
                *first_contact(d, TRIGGERS[lang][0]),
                (word, [say("system.help"), menu("perceived_safety.safe_after_dark", *SAFE)]),
                (d.t("perceived_safety.safe_after_dark.never_alone"), UNSAFE_WALKING),
                (d.t("perceived_safety.frequency.dont_know"), FEARED_HOME),
                (d.t("perceived_safety.frequency.many"), say("perceived_safety.thanks")),
            ],
        )
        assert stored(d, d.conversation().id) == {
            "safe_after_dark": "never_alone",
            "unsafe_walking": "dont_know",
            "feared_home": "many",
        }, word

    # Wrong answers: asked again, then goodbye after max_retries; nothing stored.
    d = talk("sms", "bm")
    retries = d.runtime.bundle.flows["perceived_safety"].max_retries
    again = [say("system.invalid_choice"), UNSAFE_WALKING]
    verify_dialog(
        d,
        [
            *first_contact(d, TRIGGERS["bm"][1]),
            (choose(6, "dont_know"), UNSAFE_WALKING),
            *[("7", again) for _ in range(retries - 1)],
            ("7", say("system.goodbye")),
        ],
    )
    assert d.conversation().status == "interrupted"
    assert d.survey_answers() == []
