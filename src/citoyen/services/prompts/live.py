"""Which languages are live on which channel: no language offered that a caller cannot hear.

A language is heard on a call when Twilio can say it (text-to-speech with a voice we can name)
or when every prompt a call can play is recorded in it; otherwise a caller who picked it would
hear another language (the fallback) at every prompt. The voice language menu offers only the
languages heard, unless the operator forces one (``languages.voice_forced`` in
config/settings.yaml). ``citoyen run``, ``citoyen flows check`` and the admin's prompts page show
the same table (:func:`channel_lines`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from citoyen.channels.twilio_voice import say_voice, sayable
from citoyen.services.prompts.catalogue import catalogue
from citoyen.services.prompts.library import PromptAudio

TEXT_CHANNELS = ("SMS", "Telegram")


@dataclass(frozen=True)
class VoiceLanguage:
    """How one enabled language is heard on calls."""

    language: str
    how: str  # "text-to-speech" | "recorded" | "forced" | "not offered"
    recorded: int  # prompts with a recording
    prompts: int  # prompts a call can play
    voice: str | None = None  # the Twilio voice of its <Say>, with text-to-speech

    @property
    def offered(self) -> bool:
        return self.how != "not offered"


def _shipped_url(lang: str, path: Any) -> str:
    return f"{lang}/{path.name}"


def voice_languages(runtime: Any, *, database: bool = True) -> list[VoiceLanguage]:
    """Every enabled language, in menu order, with how a caller hears it.

    ``database=False`` counts shipped recordings only (a database not migrated yet).
    """
    bundle = runtime.bundle
    settings = bundle.settings
    catalog = bundle.catalog
    audio = (
        PromptAudio.load(runtime, _shipped_url)
        if database
        else PromptAudio({}, catalog, base_url="", shipped_url=_shipped_url)
    )
    out: list[VoiceLanguage] = []
    for lang in settings.languages.enabled:
        specs = catalogue(bundle, lang)
        recorded = sum(1 for spec in specs if audio.has(spec.key, lang))
        tag = sayable(catalog.meta(lang).tts) if lang in catalog.languages else None
        voice = say_voice(tag, settings.tts_voices.get(lang))
        if voice is not None:
            how = "text-to-speech"
        elif specs and recorded == len(specs):
            how = "recorded"
        elif lang in settings.languages.voice_forced:
            how = "forced"
        else:
            how = "not offered"
        out.append(VoiceLanguage(lang, how, recorded, len(specs), voice))
    return out


def offered_on_voice(runtime: Any) -> list[str]:
    """The languages the voice language menu offers, in menu order."""
    return [v.language for v in voice_languages(runtime) if v.offered]


def channel_lines(runtime: Any, *, database: bool = True) -> list[str]:
    """One line per language: the channels it is live on, and how calls hear it."""
    lines = []
    for v in voice_languages(runtime, database=database):
        counts = f"{v.recorded} of {v.prompts} prompts recorded"
        if v.how == "text-to-speech":
            calls = f"calls (text-to-speech, {v.voice})"
        elif v.how == "recorded":
            calls = f"calls (recorded, {counts})"
        elif v.how == "forced":
            calls = f"calls (forced by languages.voice_forced; {counts}, the rest in the fallback)"
        else:
            calls = None
        channels = ", ".join([*TEXT_CHANNELS, *([calls] if calls else [])])
        line = f"{v.language}: {channels}"
        if calls is None:
            line += f"; not offered on calls ({counts}, no text-to-speech)"
        lines.append(line)
    return lines
