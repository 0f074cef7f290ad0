"""No language offered that a caller cannot hear.

The voice language menu offers a language only when Twilio can say it (text-to-speech with a
named voice) or when every prompt a call can play is recorded in it, unless the operator forces
it (``languages.voice_forced``). These calls go through the real webhooks with the shipped flows
(nothing forced) and the voice fixtures' locales, where Bambara has 6 of its prompts recorded;
every TwiML answer is parsed as XML and every <Say> must name a voice Twilio lists for its
language (tests/channels/voice/helpers.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from citoyen.runtime import Runtime
from citoyen.services.prompts import catalogue
from citoyen.services.prompts.live import channel_lines, offered_on_voice, voice_languages
from tests.channels.voice.conftest import FIXTURES, ROOT
from tests.channels.voice.helpers import Call, relative


@pytest.fixture
def voice_settings(settings, locales_dir: Path):  # type: ignore[no-untyped-def]
    """The shipped flows: no language forced onto calls."""
    from tests.channels.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL

    return settings.model_copy(
        update={
            "flows_dir": ROOT / "flows",
            "locales_dir": locales_dir,
            "public_url": PUBLIC_URL,
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
        }
    )


def test_bambara_is_not_offered_while_its_prompts_are_not_recorded(client, runtime: Runtime):
    call = Call(client)
    heard = call.start()
    assert heard.lines == [
        ("say:fr-FR", "Choisissez votre langue."),
        ("say:fr-FR", "Pour le français, tapez 1."),
        ("say:en-US", "For English, press 2."),
    ]
    gather = heard.root.find("Gather")
    assert "languages=fr.en" in relative(gather.get("action"))
    # "2" is English here (the engine numbers every enabled language: the webhook translates).
    welcome = call.press("2")
    assert welcome.lines[0][0] == "say:en-US"
    assert welcome.said[0] == runtime.bundle.catalog.render(
        "report.welcome", "en", {"police": "17", "fire": "18"}, "voice"
    )


def test_a_key_outside_the_shorter_menu_is_refused(client, runtime: Runtime):
    call = Call(client)
    call.start()
    again = call.press("3")  # Bambara's place among enabled languages, not offered
    assert again.said[:2] == ["Réponse non valide. Merci de réessayer.", "Choisissez votre langue."]
    assert "For English, press 2." in again.said
    assert all("Bamanankan" not in text for text in again.said)


def test_the_status_says_which_languages_are_live_where(runtime: Runtime):
    by_lang = {v.language: v for v in voice_languages(runtime)}
    assert (by_lang["fr"].how, by_lang["fr"].voice) == ("text-to-speech", "Polly.Lea")
    assert (by_lang["en"].how, by_lang["en"].voice) == ("text-to-speech", "Polly.Joanna")
    assert by_lang["bm"].how == "not offered"
    assert 0 < by_lang["bm"].recorded < by_lang["bm"].prompts
    assert offered_on_voice(runtime) == ["fr", "en"]
    lines = channel_lines(runtime)
    assert lines[0] == "fr: SMS, Telegram, calls (text-to-speech, Polly.Lea)"
    assert lines[1].startswith("bm: SMS, Telegram; not offered on calls (")
    assert "no text-to-speech" in lines[1]


def test_bambara_is_offered_once_every_prompt_is_recorded(
    client, runtime: Runtime, locales_dir: Path, tmp_path: Path
):
    # A copy of the locales where every Bambara prompt has a recording.
    recorded = tmp_path / "locales"
    shutil.copytree(locales_dir, recorded)
    sample = FIXTURES / "bm" / "audio" / "report.welcome.wav"
    for spec in catalogue(runtime.bundle, "bm"):
        target = recorded / "bm" / "audio" / f"{spec.key}.wav"
        if not target.exists():
            shutil.copy(sample, target)
    from citoyen.web import create_app

    settings = runtime.settings.model_copy(update={"locales_dir": recorded})
    app = create_app({"TESTING": True, "SETTINGS": settings})
    full = app.extensions["citoyen"]
    assert [v.how for v in voice_languages(full)] == [
        "text-to-speech",
        "recorded",
        "text-to-speech",
    ]
    heard = Call(app.test_client()).start()
    assert [kind for kind, _ in heard.lines] == ["say:fr-FR", "say:fr-FR", "play", "say:en-US"]
    assert heard.lines[3] == ("say:en-US", "For English, press 3.")
    assert "languages=" not in heard.root.find("Gather").get("action")
