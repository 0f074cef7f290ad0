"""How each prompt is voiced: recordings, text-to-speech, and the fallback for Bambara.

No database: the renderer works on neutral prompts and a catalogue built here.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from citoyen.channels.twilio_voice import (
    CallUrls,
    VoiceRenderer,
    sayable,
    spaced_reference,
    voice_problem,
)
from citoyen.engine.types import Option, Prompt
from citoyen.i18n import Catalog, Entry, LocaleMeta
from tests.channels.twilio_helpers import PUBLIC_URL
from tests.channels.voice.helpers import parse_twiml, spoken

URLS = CallUrls(
    gather_action=f"{PUBLIC_URL}/twilio/voice/step?n=4",
    no_input=f"{PUBLIC_URL}/twilio/voice/step?n=4&timeout=1",
    record_action=f"{PUBLIC_URL}/twilio/voice/recorded?n=4",
    recording_status=f"{PUBLIC_URL}/twilio/voice/recording-status",
)
TEXTS = {
    "fr": {
        "ask": "Que s'est-il passé ?",
        "opt.a": "Vol",
        "opt.b": "Incendie",
        "range": "Un nombre entre {min} et {max}.",
        "thanks": "Merci. Référence : {reference}. Police : {police}.",
        "system.voice_option": "Pour {label}, tapez {n}.",
        "system.language_option": "Pour le français, tapez {n}.",
        "system.language_prompt": "Choisissez votre langue.",
    },
    "bm": {
        "ask": "Mun de kɛra?",
        "opt.a": "Sonyali",
        "opt.b": "Tasuma",
        "range": "Jateden {min} ni {max} cɛ.",
        "thanks": "Aw ni ce. Nimɔrɔ: {reference}. Polisi: {police}.",
        "system.voice_option": "{label} kama, {n} digi.",
        "system.language_option": "Bamanankan kama, {n} digi.",
        "system.language_prompt": "Aw ye kan sugandi.",
    },
}
TTS = {"fr": "fr-FR", "bm": None}


def catalog(audio: dict[str, list[str]], tts: dict[str, str | None] = TTS) -> Catalog:
    metas = {
        "fr": LocaleMeta("fr", "Français", tts["fr"]),
        "bm": LocaleMeta("bm", "Bamanankan", tts["bm"]),
    }
    entries = {
        lang: {key: Entry(text, "reviewed") for key, text in texts.items()}
        for lang, texts in TEXTS.items()
    }
    files = {
        lang: {key: Path(f"/locales/{lang}/audio/{key}.wav") for key in keys}
        for lang, keys in audio.items()
    }
    return Catalog(metas, entries, audio=files)


def renderer(cat: Catalog, default: str = "fr") -> VoiceRenderer:
    return VoiceRenderer(
        cat,
        default_language=default,
        languages=("fr", "bm"),
        audio_url=lambda lang, path: f"{PUBLIC_URL}/audio/{lang}/{path.name}",
        fixed_params=("police",),
    )


def render(cat: Catalog, prompts, lang="bm", params=None, waiting=True, default="fr"):  # type: ignore[no-untyped-def]
    body = renderer(cat, default).twiml(prompts, lang, params or {}, URLS, waiting=waiting)
    return parse_twiml(body)


MENU = Prompt(
    "choice", "ask", "category", options=(Option("a", text="opt.a"), Option("b", text="opt.b"))
)


def test_spaced_reference() -> None:
    assert spaced_reference("482-1937") == "4 8 2, 1 9 3 7"
    assert spaced_reference(" 4821937 ") == "4 8 2 1 9 3 7"


def test_sayable_only_knows_twilio_languages() -> None:
    assert sayable("fr-FR") == "fr-FR"
    assert sayable("bm") is None and sayable("bm-ML") is None and sayable(None) is None


def test_bambara_without_recordings_falls_back_to_french_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heard = spoken(render(catalog({}), [MENU]))
    assert heard.lines == [
        ("say:fr-FR", "Que s'est-il passé ?"),
        ("say:fr-FR", "Pour Vol, tapez 1."),
        ("say:fr-FR", "Pour Incendie, tapez 2."),
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'ask'" in w and "'bm'" in w for w in warnings)
    assert any("'opt.a'" in w and "'bm'" in w for w in warnings)


def test_fallback_plays_the_default_language_recording_when_there_is_one() -> None:
    heard = spoken(render(catalog({"fr": ["ask"]}), [MENU]))
    assert heard.lines[0] == ("play", f"{PUBLIC_URL}/audio/fr/ask.wav")


def test_recorded_options_are_the_label_then_press_n() -> None:
    cat = catalog({"bm": ["ask", "opt.a", "opt.b", "system.voice_option.1"]})
    heard = spoken(render(cat, [MENU]))
    audio = f"{PUBLIC_URL}/audio/bm"
    assert heard.lines == [
        ("play", f"{audio}/ask.wav"),
        ("play", f"{audio}/opt.a.wav"),
        ("play", f"{audio}/system.voice_option.1.wav"),
        # No "press 2" recording: that option falls back as a whole, never half in each.
        ("say:fr-FR", "Pour Incendie, tapez 2."),
    ]
    gather = heard.root.find("Gather")
    assert gather.get("numDigits") == "1" and gather.get("timeout") == "6"
    assert [v.tag for v in heard.root] == ["Gather", "Redirect"]


def test_area_names_have_no_recording_and_are_said_in_the_fallback_language() -> None:
    place = Prompt("place", None, "place", options=(Option("ML-4", label="Ségou"),))
    cat = catalog({"bm": ["system.voice_option.1"]})
    assert spoken(render(cat, [place])).lines == [("say:fr-FR", "Pour Ségou, tapez 1.")]


def test_values_a_recording_cannot_hold_are_said_after_it() -> None:
    prompt = Prompt("message", "range", "age", params={"min": 15, "max": 120})
    heard = spoken(render(catalog({"bm": ["range"]}), [prompt], waiting=False))
    assert heard.lines == [
        ("play", f"{PUBLIC_URL}/audio/bm/range.wav"),
        ("say:fr-FR", "15, 120"),
    ]


def test_reference_after_a_recording_is_read_twice_digit_by_digit() -> None:
    prompt = Prompt("end", "thanks", "confirm")
    params = {"reference": "482-1937", "police": "17"}
    heard = spoken(render(catalog({"bm": ["thanks"]}), [prompt], params=params, waiting=False))
    # Emergency numbers are in the recording; the reference cannot be.
    assert heard.lines == [
        ("play", f"{PUBLIC_URL}/audio/bm/thanks.wav"),
        ("say:fr-FR", "4 8 2, 1 9 3 7"),
        ("pause", "1"),
        ("say:fr-FR", "4 8 2, 1 9 3 7"),
    ]
    assert heard.waits == "end" and heard.root[-1].tag == "Hangup"


def test_reference_said_by_text_to_speech_is_spaced_too() -> None:
    prompt = Prompt("end", "thanks", "confirm")
    params = {"reference": "482-1937", "police": "17"}
    heard = spoken(render(catalog({}), [prompt], lang="fr", params=params, waiting=False))
    assert heard.lines == [("say:fr-FR", "Merci. Référence : 4 8 2, 1 9 3 7. Police : 17.")]


def test_language_menu_lines_each_in_their_own_language() -> None:
    prompt = Prompt(
        "language",
        "system.language_prompt",
        "ask_language",
        options=tuple(Option(lang, text="system.language_option", lang=lang) for lang in TTS),
    )
    heard = spoken(render(catalog({}), [prompt], lang="fr"))
    # Bambara has neither recording nor voice: its line is said in French, naming the language.
    assert heard.lines == [
        ("say:fr-FR", "Choisissez votre langue."),
        ("say:fr-FR", "Pour le français, tapez 1."),
        ("say:fr-FR", "Pour Bamanankan, tapez 2."),
    ]
    recorded = catalog({"bm": ["system.language_option.2"]})
    lines = spoken(render(recorded, [prompt], lang="fr")).lines
    assert lines[2] == ("play", f"{PUBLIC_URL}/audio/bm/system.language_option.2.wav")


def test_a_misspelt_tts_language_is_never_put_on_a_call() -> None:
    cat = catalog({}, tts={"fr": "fr-FR", "bm": "bm-ML"})
    heard = spoken(render(cat, [MENU]))
    assert all(kind == "say:fr-FR" for kind, _ in heard.lines)


def test_with_no_language_twilio_can_speak_only_recordings_are_played() -> None:
    cat = catalog({"bm": ["ask"]}, tts={"fr": None, "bm": None})
    root = render(cat, [MENU], default="bm")
    assert spoken(root).lines == [("play", f"{PUBLIC_URL}/audio/bm/ask.wav")]
    assert root.find(".//Say") is None


def test_recording_question_has_bounded_record_then_no_input_redirect() -> None:
    prompt = Prompt("text", "ask", "description", expects={"max_length": 1000, "max_seconds": 90})
    root = render(catalog({"bm": ["ask"]}), [prompt])
    assert [v.tag for v in root] == ["Play", "Record", "Redirect"]
    record = root.find("Record")
    assert record.get("maxLength") == "90"
    assert record.get("action") == URLS.record_action
    assert record.get("recordingStatusCallback") == URLS.recording_status
    assert root.find("Redirect").text == URLS.no_input


def test_a_finished_conversation_hangs_up() -> None:
    root = render(catalog({}), [MENU], lang="fr", waiting=False)
    assert root[-1].tag == "Hangup" and root.find("Gather") is None
    assert [v.tag for v in render(catalog({}), [], lang="fr", waiting=False)] == ["Hangup"]


def test_every_say_names_a_voice_twilio_lists_for_its_language() -> None:
    """The default voice per language, or the one settings.yaml gives (``tts_voices``); a voice
    Twilio does not list for the language is never emitted (the default is used instead)."""
    cat = catalog({})
    default = parse_twiml(renderer(cat).twiml([MENU], "fr", {}, URLS, waiting=True))
    says = default.findall(".//Say")
    assert says and {(s.get("language"), s.get("voice")) for s in says} == {("fr-FR", "Polly.Lea")}

    for configured, expected in [
        ("Google.fr-FR-Standard-A", "Google.fr-FR-Standard-A"),
        ("Polly.Mathieu", "Polly.Mathieu"),
        ("Polly.Joanna", "Polly.Lea"),  # an English voice: not for fr-FR
        ("Google.en-US-Standard-B", "Polly.Lea"),
    ]:
        chosen = VoiceRenderer(
            cat,
            default_language="fr",
            languages=("fr", "bm"),
            audio_url=lambda lang, path: f"{PUBLIC_URL}/audio/{lang}/{path.name}",
            voices={"fr": configured},
        ).twiml([MENU], "fr", {}, URLS, waiting=True)
        voices = {s.get("voice") for s in ET.fromstring(chosen).iter("Say")}
        assert voices == {expected}, configured


def test_voice_problem_names_what_twilio_does_not_list() -> None:
    assert voice_problem("fr-FR", "Polly.Lea") is None
    assert voice_problem("fr-FR", "Polly.Lea-Neural") is None
    assert voice_problem("fr-FR", "Google.fr-FR-Wavenet-C") is None
    assert "not a fr-FR voice" in (voice_problem("fr-FR", "Polly.Joanna") or "")
    assert "Google.fr-FR-Standard-<letter>" in (voice_problem("fr-FR", "alice") or "")
