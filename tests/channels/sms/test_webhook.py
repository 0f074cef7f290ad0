"""``POST /twilio/sms`` end to end: parsing, TwiML, dedupe, keywords, whole conversations."""

from __future__ import annotations

import logging
import re
import threading

import pytest
from sqlmodel import Session, select
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from citoyen.channels.sms import MAX_SEGMENTS
from citoyen.engine.sms import segments
from citoyen.models import Area, Contact, Conversation, Message, Report
from citoyen.services.contacts import find_contact
from citoyen.web.twilio_auth import SIGNATURE_HEADER
from tests.channels.sms.conftest import FROM_NUMBER, Phone, count, counts, twiml_messages, words
from tests.channels.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, signed_post

NUMBER = "+22376112233"


@pytest.fixture
def phone(client) -> Phone:
    return Phone(client, NUMBER)


@pytest.fixture
def t(runtime):
    """A text from the locale catalogue as an SMS says it, with the emergency numbers filled in."""

    def render(key: str, lang: str, **params) -> str:
        params = {**runtime.conversations.emergency_params(), **params}
        return runtime.bundle.catalog.render(key, lang, params, "sms")

    return render


def contact_of(runtime, number: str = NUMBER) -> Contact:
    with Session(runtime.engine) as session:
        contact = find_contact(session, runtime.vault, number)
        assert contact is not None
        return contact


def form(**fields: str) -> dict[str, str]:
    base = {
        "From": NUMBER,
        "To": FROM_NUMBER,
        "Body": "Bonjour",
        "MessageSid": "SM" + "1" * 32,
        "AccountSid": ACCOUNT_SID,
    }
    return {k: v for k, v in {**base, **fields}.items() if v is not None}


# --- malformed requests ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"From": None}, "missing From"),
        ({"From": ""}, "missing From"),
        ({"From": "   "}, "missing From"),
        ({"MessageSid": None}, "missing MessageSid"),
        ({"MessageSid": ""}, "missing MessageSid"),
        ({"MessageSid": "SM<script>"}, "MessageSid is not a Twilio id"),
        ({"MessageSid": "SM" + "1" * 200}, "MessageSid is not a Twilio id"),
        ({"From": "bonjour"}, "From is not a phone number"),
        ({"From": "+1"}, "From is not a phone number"),
        ({"From": "telegram:12345"}, "From is not a phone number"),
        ({"Body": "x" * 1601}, "Body too long"),
    ],
)
def test_malformed_requests_get_400_and_store_nothing(client, runtime, fields, reason) -> None:
    before = counts(runtime)
    response = signed_post(client, "/twilio/sms", form(**fields))
    assert response.status_code == 400
    assert response.get_data(as_text=True) == reason
    assert counts(runtime) == before


def test_a_field_given_twice_is_refused(client, runtime) -> None:
    data = MultiDict([*form().items(), ("From", "+22376000999")])
    # Signed as Twilio would sign repeated keys, so only the parsing can refuse it.
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + "/twilio/sms", data)
    before = counts(runtime)
    response = client.post("/twilio/sms", data=data, headers={SIGNATURE_HEADER: signature})
    assert response.status_code == 400
    assert response.get_data(as_text=True) == "From given more than once"
    assert counts(runtime) == before


def test_a_body_over_the_size_limit_gets_413(client, runtime, app) -> None:
    before = counts(runtime)
    huge = "x" * (app.config["MAX_CONTENT_LENGTH"] + 10)
    response = signed_post(client, "/twilio/sms", form(Body=huge))
    assert response.status_code == 413
    assert counts(runtime) == before


def test_get_is_not_allowed(client) -> None:
    assert client.get("/twilio/sms").status_code == 405


def test_an_empty_or_missing_body_is_empty_text(phone, runtime, t) -> None:
    assert phone.say("Bonjour")  # the language menu
    empty = phone.say("")
    # The refusal and the question asked again share one message (no more segments that way).
    assert empty[0].split("\n\n")[0] == t("system.invalid_choice", "fr")
    response = signed_post(phone.client, "/twilio/sms", form(Body=None, MessageSid="SM" + "9" * 32))
    assert response.status_code == 200
    assert twiml_messages(response)[0].split("\n\n")[0] == t("system.invalid_choice", "fr")


def test_media_messages_do_not_crash(phone, t) -> None:
    phone.say("Bonjour")
    response = phone.text(
        "",
        NumMedia="1",
        MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/AC0/Messages/MM0/Media/ME0",
        MediaContentType0="image/jpeg",
    )
    assert response.status_code == 200
    # no text: no choice (the question follows in the same message)
    assert twiml_messages(response)[0].split("\n\n")[0] == t("system.invalid_choice", "fr")


# --- TwiML -------------------------------------------------------------------------------------


def test_first_message_gets_the_language_menu_as_twiml(phone, t) -> None:
    response = phone.text("Bonjour")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/xml")
    [menu] = twiml_messages(response)
    assert menu.splitlines() == [
        t("system.language_prompt", "fr"),
        t("system.language_option", "fr", n=1),
        t("system.language_option", "bm", n=2),
        t("system.language_option", "en", n=3),
    ]


def test_a_long_part_is_split_on_word_boundaries(phone, monkeypatch) -> None:
    from citoyen.channels import sms

    long_text = " ".join(f"mot{n}" for n in range(300))  # about 2,000 characters
    monkeypatch.setattr(sms, "render_sms_parts", lambda *a: ["Court.", long_text])
    messages = phone.say("Bonjour")
    assert messages[0] == "Court."
    assert len(messages) > 2
    for message in messages[1:]:
        assert segments(message) <= MAX_SEGMENTS
        assert not message.startswith(" ") and not message.endswith(" ")
    assert " ".join(messages[1:]) == long_text


def test_a_repeated_message_sid_gets_the_same_twiml_and_stores_nothing(
    phone, client, runtime
) -> None:
    phone.say("Bonjour")
    first = phone.text("1", sid="SM" + "7" * 32)
    before = counts(runtime)
    with Session(runtime.engine) as session:
        state = session.exec(select(Conversation)).one().state
    again = phone.text("1", sid="SM" + "7" * 32)
    assert again.status_code == 200
    assert again.get_data() == first.get_data()
    assert counts(runtime) == before
    with Session(runtime.engine) as session:
        assert session.exec(select(Conversation)).one().state == state


def _deliver_concurrently(app, data: dict[str, str], copies: int = 4) -> list:
    barrier = threading.Barrier(copies)
    responses: list = []
    errors: list[BaseException] = []

    def post() -> None:
        try:
            client = app.test_client()
            barrier.wait()
            responses.append(signed_post(client, "/twilio/sms", data))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=post) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return responses


def test_concurrent_copies_of_one_message_store_one_message(app, runtime, phone) -> None:
    phone.say("Bonjour")
    data = form(Body="1", MessageSid="SM" + "5" * 32)
    responses = _deliver_concurrently(app, data)
    assert [r.status_code for r in responses] == [200] * 4
    assert len({r.get_data() for r in responses}) == 1
    sid = "SM" + "5" * 32
    assert count(runtime, Message, Message.provider_id == sid) == 1
    assert count(runtime, Message, Message.direction == "in") == 2


def test_concurrent_first_messages_create_one_contact(app, runtime) -> None:
    responses = _deliver_concurrently(app, form(MessageSid="SM" + "6" * 32))
    assert [r.status_code for r in responses] == [200] * 4
    assert count(runtime, Message, Message.direction == "in") == 1
    assert count(runtime, Contact) == 1


# --- keywords ----------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["STOP", "ARRÊT", "arret", "DABILA", "Stop "])
def test_stop_words_opt_out_and_confirm(phone, runtime, t, word) -> None:
    phone.say("Bonjour")
    phone.say("1")  # French
    assert phone.say(word) == [t("system.stopped", "fr")]
    contact = contact_of(runtime)
    assert contact.opted_out is True
    assert contact.survey_consent is False


def test_stop_as_very_first_message(phone, runtime, t) -> None:
    assert phone.say("STOP") == [t("system.stopped", "fr")]
    assert contact_of(runtime).opted_out is True


def test_start_opts_back_in(phone, runtime, t) -> None:
    phone.say("Bonjour")
    phone.say("2")  # Bambara
    assert phone.say("DABILA") == [t("system.stopped", "bm")]
    assert contact_of(runtime).opted_out is True
    messages = phone.say("START")
    assert messages[0].split("\n\n")[0] == t("system.started", "bm")
    assert contact_of(runtime).opted_out is False


def test_aide_gives_help(phone, t) -> None:
    phone.say("Bonjour")
    phone.say("1")
    messages = phone.say("AIDE")
    assert messages[0].split("\n\n")[0] == t("system.help", "fr")


# --- whole conversations -----------------------------------------------------------------------

DESCRIPTIONS = {
    "fr": "Deux hommes armés ont pris une moto près du marché hier soir.",
    "bm": "Mɔgɔ fila ye moto dɔ ta sugu kɛrɛfɛ kunu su.",
}


@pytest.mark.parametrize(("lang", "digit"), [("fr", "1"), ("bm", "2")])
def test_a_whole_report_by_sms(phone, runtime, t, caplog, lang, digit) -> None:
    caplog.set_level(logging.DEBUG)
    assert t("system.language_prompt", "fr") in phone.say("Bonjour")[0]
    first = phone.say(digit)
    # The welcome and the first question: one message, within the language's SMS budget.
    assert len(first) == 1
    assert segments(first[0]) == {"fr": 2, "bm": 3}[lang]
    assert words(*first) == words(
        t("report.welcome", lang),
        t("report.category", lang),
        *(f"{n}. {t(f'report.category.{key}', lang)}" for n, key in enumerate(CATEGORIES, 1)),
    )
    place = phone.say("2")  # theft
    assert words(*place).startswith(words(t("report.place", lang), t("system.place_region", lang)))
    assert "1. Bamako" in place[-1]
    communes = phone.say("1")  # Bamako
    assert "4. Commune IV" in communes[-1]
    assert words(*phone.say("4")).startswith(words(t("report.danger", lang)))
    assert words(*phone.say("2")) == words(t("report.describe", lang))  # no one in danger
    assert words(*phone.say(DESCRIPTIONS[lang])).startswith(words(t("report.anonymous", lang)))
    assert words(*phone.say("1")).startswith(words(t("report.consent", lang)))
    confirm = phone.say("2")

    with Session(runtime.engine) as session:
        [report] = session.exec(select(Report)).all()
        area = session.get(Area, report.area_id)
    assert words(*confirm) == words(t("report.confirm", lang, reference=report.reference))
    assert re.fullmatch(r"\d{3}-\d{4}", report.reference)
    assert report.channel == "sms"
    assert report.language == lang
    assert report.category == "theft"
    assert area.code == "ML-BKO.commune-iv"
    assert report.description == DESCRIPTIONS[lang]
    assert report.urgency == "normal"
    assert report.anonymous is True
    assert count(runtime, Report) == 1
    # The number never reaches the logs, in any form.
    digits = NUMBER.removeprefix("+")
    for record in caplog.records:
        text = record.getMessage()
        assert digits not in text and digits[3:] not in text, text


CATEGORIES = (
    "armed_attack",
    "theft",
    "violence",
    "conflict",
    "suspicious",
    "banditry",
    "disaster",
    "other",
)
