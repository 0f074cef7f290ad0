"""Per-language fallback (``voice_fallback``) and library recordings in the TwiML of a call.

No database: the renderer gets a catalogue built here and a prompt source standing for the
library.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from citoyen.channels import twilio_voice
from citoyen.channels.twilio_voice import VoiceRenderer
from citoyen.engine import check
from citoyen.engine.types import Option, Prompt
from citoyen.i18n import Catalog, Entry, LocaleMeta
from tests.channels.twilio_helpers import PUBLIC_URL
from tests.channels.voice.helpers import parse_twiml, spoken
from tests.channels.voice.test_twiml import URLS

ROOT = Path(__file__).resolve().parents[3]
TEXTS = {
    "fr": {"ask": "Que s'est-il passé ?", "opt.a": "Vol", "system.voice_option": "Pour {label}, tapez {n}."},
    "en": {"ask": "What happened?", "opt.a": "Theft", "system.voice_option": "For {label}, press {n}."},
    "bm": {"ask": "Mun de kɛra?", "opt.a": "Sonyali", "system.voice_option": "{label} kama, {n} digi."},
}  # fmt: skip
MENU = Prompt("choice", "ask", "category", options=(Option("a", text="opt.a"),))


class Library:
    """Stands for citoyen.services.prompts.PromptAudio: URLs of recorded prompts."""

    def __init__(self, recorded: dict[tuple[str, str], str]) -> None:
        self.recorded = recorded

    def url(self, key: str, lang: str) -> str | None:
        name = self.recorded.get((lang, key))
        return f"{PUBLIC_URL}/audio/{lang}/{name}" if name else None


def renderer(library: Library, fallbacks: dict[str, str] | None = None) -> VoiceRenderer:
    metas = {
        "fr": LocaleMeta("fr", "Français", "fr-FR"),
        "en": LocaleMeta("en", "English", "en-US"),
        "bm": LocaleMeta("bm", "Bamanankan", None),
    }
    entries = {
        lang: {k: Entry(v, "reviewed") for k, v in texts.items()} for lang, texts in TEXTS.items()
    }
    return VoiceRenderer(
        Catalog(metas, entries),
        default_language="fr",
        languages=("fr", "bm", "en"),
        audio_url=lambda lang, path: f"{PUBLIC_URL}/audio/{lang}/{path.name}",
        prompts=library,
        fallbacks=fallbacks,
    )


def heard(r: VoiceRenderer):  # type: ignore[no-untyped-def]
    return spoken(parse_twiml(r.twiml([MENU], "bm", {}, URLS, waiting=True)))


def test_a_configured_fallback_replaces_the_default_language(
    caplog: pytest.LogCaptureFixture,
) -> None:
    result = heard(renderer(Library({}), {"bm": "en"}))
    assert result.lines == [("say:en-US", "What happened?"), ("say:en-US", "For Theft, press 1.")]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "voice: no recording for 'ask' in 'bm' and no text-to-speech; using 'en' instead" in (
        warnings
    )


def test_without_configuration_the_default_language_is_heard() -> None:
    result = heard(renderer(Library({})))
    assert result.lines[0] == ("say:fr-FR", "Que s'est-il passé ?")


def test_library_recordings_are_played_and_the_fallback_can_be_recorded_too() -> None:
    library = Library(
        {
            ("bm", "ask"): "ask.1a2b3c.wav",
            ("en", "opt.a"): "opt.a.9f8e7d.wav",
            ("en", "system.voice_option.1"): "system.voice_option.1.aa11bb.wav",
        }
    )
    result = heard(renderer(library, {"bm": "en"}))
    assert result.lines == [
        ("play", f"{PUBLIC_URL}/audio/bm/ask.1a2b3c.wav"),
        # The option has no Bambara recording: the English one, label then "press 1".
        ("play", f"{PUBLIC_URL}/audio/en/opt.a.9f8e7d.wav"),
        ("play", f"{PUBLIC_URL}/audio/en/system.voice_option.1.aa11bb.wav"),
    ]


def write_settings(tmp_path: Path, fallback: str) -> Path:
    flows = tmp_path / "flows"
    flows.mkdir()
    for path in (ROOT / "flows").glob("*.yaml"):
        (flows / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "config").mkdir()
    settings = tmp_path / "config" / "settings.yaml"
    settings.write_text((ROOT / "config" / "settings.yaml").read_text("utf-8"), "utf-8")
    text = settings.read_text(encoding="utf-8")
    assert "voice_fallback:\n  bm: fr\n" in text
    settings.write_text(
        text.replace("voice_fallback:\n  bm: fr\n", f"voice_fallback:\n{fallback}\n"),
        encoding="utf-8",
    )
    return flows


@pytest.mark.parametrize(
    ("fallback", "message"),
    [
        ("  bm: ff", "voice_fallback: bm -> ff: 'ff' is not enabled"),
        ("  ff: fr", "voice_fallback: ff -> fr: 'ff' is not enabled"),
        ("  bm: bm", "voice_fallback: bm -> bm: a language cannot fall back to itself"),
        ("  fr: bm", "voice_fallback: fr -> bm: 'bm' has no text-to-speech (meta.tts)"),
    ],
)
def test_flows_check_refuses_a_wrong_fallback(tmp_path: Path, fallback: str, message: str) -> None:
    problems = check(write_settings(tmp_path, fallback), ROOT / "locales")
    errors = [str(p) for p in problems if p.level == "error"]
    assert len(errors) == 1, errors
    assert errors[0].startswith("config/settings.yaml:")
    assert message in errors[0]


def test_flows_check_accepts_a_fallback_to_a_spoken_language(tmp_path: Path) -> None:
    problems = check(write_settings(tmp_path, "  bm: en"), ROOT / "locales")
    assert [p for p in problems if p.level == "error"] == []


def test_a_missing_recording_is_logged_once_in_a_while_not_at_every_turn(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def logged() -> int:
        return sum(
            "no recording for 'ask' in 'bm'" in r.getMessage()
            for r in caplog.records
            if r.levelno == logging.WARNING
        )

    clock = [1000.0]
    monkeypatch.setattr(twilio_voice, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    for _ in range(3):  # three turns, in three calls
        heard(renderer(Library({})))
    assert logged() == 1
    clock[0] += twilio_voice.MISSING_LOGGED_EVERY + 1
    heard(renderer(Library({})))
    assert logged() == 2
