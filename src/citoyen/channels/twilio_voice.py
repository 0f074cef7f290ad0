"""TwiML for one turn of a call: what the caller hears, then how their answer is collected.

The words come from the neutral prompts (``render_voice``); this module only decides, segment by
segment, *how* each is voiced, because most rural callers speak Bambara and Twilio has no Bambara
voice:

1. recorded audio for the segment's language (the prompt library, citoyen.services.prompts,
   else ``locales/<lang>/audio/<key>.wav|mp3``) -> ``<Play>`` of its URL;
2. else, when the language has text-to-speech Twilio can speak (``meta.tts``) -> ``<Say>``;
3. else the fallback language (the language's ``voice_fallback`` in config/settings.yaml, else
   the default language, or the first with text-to-speech): its recording, or ``<Say>`` in it,
   and a warning naming the key and language so the missing recording gets made. A ``<Say>`` in a language Twilio cannot speak is never emitted: Twilio
   would either fail the call or read Bambara with an English voice.

A recording cannot contain values only known during the call (a report reference, a number
range), so after such a recording the values are said with text-to-speech; a reference is read
digit by digit, twice, so it can be written down. Menu options in a recorded language are the
option's own recording followed by ``system.voice_option.<n>`` ("... kama, 2 digi"); see
docs/voice.md for the file names.
"""

from __future__ import annotations

import logging
import re
import string
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from twilio.twiml.voice_response import Gather, VoiceResponse

from citoyen.engine.types import Input, Option, Prompt
from citoyen.messages.render import VoiceSegment, option_label, render_voice

log = logging.getLogger(__name__)
# A prompt without a recording is a gap in the deployment (shown on the admin's prompts page),
# not news at every call: it is logged once per text and language in this long per process.
# Logged at each turn of each call, it took a twentieth of a voice step's time under load and
# filled the log.
MISSING_LOGGED_EVERY = 600.0  # seconds
_missing_logged: dict[tuple[str, str, str | None], float] = {}

# Languages <Say> accepts with Twilio's standard voices. A locale whose ``meta.tts`` is not here
# is treated as having no text-to-speech, so a typo can never put an unknown language on a call.
SAY_LANGUAGES = frozenset(
    {
        "da-DK", "de-DE", "en", "en-AU", "en-CA", "en-GB", "en-IN", "en-US", "ca-ES", "es",
        "es-ES", "es-MX", "fi-FI", "fr", "fr-CA", "fr-FR", "it-IT", "ja-JP", "ko-KR", "nb-NO",
        "nl-NL", "pl-PL", "pt-BR", "pt-PT", "ru-RU", "sv-SE", "zh-CN", "zh-HK", "zh-TW",
    }
)  # fmt: skip
# Voices Twilio's text-to-speech table lists, per <Say> language: Amazon Polly voices
# ("Polly.Lea", optionally "-Neural"/"-Generative" where Polly offers that engine) and Google voices
# ("Google.fr-FR-Standard-A": their name starts with the language). Twilio's docs warn that a
# voice and language it does not list together "may result in error and <Say> instruction
# failure", and its default voice is not listed for fr-FR: every <Say> therefore names a voice,
# the one settings.yaml gives the language (``tts_voices``) or the default below.
POLLY_VOICES: dict[str, frozenset[str]] = {
    "fr-FR": frozenset({"Celine", "Lea", "Mathieu", "Remi"}),
    "fr-CA": frozenset({"Chantal", "Gabrielle", "Liam"}),
    "en-US": frozenset({"Ivy", "Joanna", "Joey", "Justin", "Kendra", "Kevin", "Kimberly",
                        "Matthew", "Ruth", "Salli", "Stephen"}),
    "en-GB": frozenset({"Amy", "Arthur", "Brian", "Emma"}),
}  # fmt: skip
DEFAULT_VOICES: dict[str, str] = {
    "fr-FR": "Polly.Lea",
    "fr-CA": "Polly.Chantal",
    "en-US": "Polly.Joanna",
    "en-GB": "Polly.Amy",
}
_POLLY = re.compile(r"Polly\.([A-Za-z]+)(?:-(?:Neural|Generative))?")
GATHER_TIMEOUT = 6  # seconds of silence after the prompt before the Gather gives up
RECORD_SILENCE = 10  # seconds of silence that end a recording (callers pause to think)
LANGUAGE_OPTION = "system.language_option"
VOICE_OPTION = "system.voice_option"


@dataclass(frozen=True)
class CallUrls:
    """Where Twilio goes next; each URL carries the turn number ``n`` (the dedupe key)."""

    gather_action: str  # Gather action: the keys pressed
    no_input: str  # Redirect after a Gather or Record that got nothing
    record_action: str  # Record action: the recording made
    recording_status: str  # recordingStatusCallback


AudioUrl = Callable[[str, Path], str]  # (language, file) -> absolute URL served by the app


class PromptSource(Protocol):
    """Where recorded prompts come from (citoyen.services.prompts.PromptAudio)."""

    def url(self, key: str, lang: str) -> str | None: ...


def spaced_reference(reference: str) -> str:
    """``482-1937`` -> ``4 8 2, 1 9 3 7``: text-to-speech reads digits one by one, a pause at
    the dash, so a caller can write the code down."""
    groups = [g for g in re.split(r"[\s\-]+", reference.strip()) if g]
    return ", ".join(" ".join(group) for group in groups)


def sayable(tts: str | None) -> str | None:
    """The ``<Say>`` language for a locale's ``meta.tts``, or None when Twilio cannot speak it."""
    return tts if tts in SAY_LANGUAGES else None


def voice_problem(tag: str, voice: str) -> str | None:
    """Why ``voice`` cannot say ``tag`` (a <Say> language), or None when Twilio lists the pair."""
    polly = _POLLY.fullmatch(voice)
    if polly is not None:
        if polly.group(1) in POLLY_VOICES.get(tag, frozenset()):
            return None
        known = ", ".join(f"Polly.{v}" for v in sorted(POLLY_VOICES.get(tag, ()))) or "none"
        return f"{voice} is not a {tag} voice in Twilio's table (known here: {known})"
    if re.fullmatch(rf"Google\.{re.escape(tag)}-(Standard|Wavenet|Neural2|Chirp3-HD)-\w+", voice):
        return None
    return (
        f"{voice} is not a voice Twilio lists for {tag} (use Polly.<Name> or "
        f"Google.{tag}-Standard-<letter>)"
    )


def language_choice(offered: Sequence[str], keys: str) -> Input:
    """A key pressed at a language menu that offered only ``offered`` (in this order): the
    language itself, since the engine numbers every enabled language; a key outside the menu
    is a choice of nothing (the engine asks again)."""
    if keys.isdigit() and 1 <= int(keys) <= len(offered):
        return Input("choice", offered[int(keys) - 1])
    return Input("choice", "-")


def say_voice(tag: str | None, configured: str | None = None) -> str | None:
    """The voice a <Say> in ``tag`` names: the configured one when Twilio lists it for the
    language, else the default; None when there is none (the language is then not spoken)."""
    if tag is None:
        return None
    if configured and voice_problem(tag, configured) is None:
        return configured
    return DEFAULT_VOICES.get(tag)


def _placeholders(template: str) -> list[str]:
    """Placeholder names of a template, in order of appearance (a bad template has none)."""
    try:
        return [name for _lit, name, _spec, _conv in string.Formatter().parse(template) if name]
    except ValueError:
        return []


class VoiceRenderer:
    """Turns neutral prompts into TwiML for one deployment (catalogue, languages, audio URLs)."""

    def __init__(
        self,
        catalog: Any,
        *,
        default_language: str,
        languages: Sequence[str],
        audio_url: AudioUrl,
        fixed_params: Iterable[str] = (),
        prompts: PromptSource | None = None,
        fallbacks: Mapping[str, str] | None = None,
        voices: Mapping[str, str] | None = None,
        offered: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        """``fixed_params`` are placeholders whose value is known when a prompt is recorded
        (emergency numbers): a recording may say them, nothing is added after it.

        ``prompts`` gives the URL of a prompt's recording (the prompt library, which also knows
        the shipped files); without it only shipped files under ``locales/`` are played.
        ``fallbacks`` is ``voice_fallback`` from config/settings.yaml: per language, the language
        heard when a prompt has no recording; other languages use the default one.
        ``voices`` is ``tts_voices`` from settings.yaml (language -> Twilio voice). ``offered``
        gives the languages the voice language menu offers (those a caller can hear: see
        citoyen.services.prompts.live); it is asked only when a language menu is said.
        """
        self.catalog = catalog
        self.voices = dict(voices or {})
        self.offered = offered
        self.last_offered: list[str] | None = None  # the last language menu's languages
        self.audio_url = audio_url
        self.prompts = prompts
        self.fixed_params = frozenset(fixed_params)
        candidates = [default_language, *languages]
        self.fallback = next(
            (lang for lang in candidates if lang in catalog.languages and self._tts(lang)), None
        )
        self.fallbacks = {
            lang: target
            for lang, target in (fallbacks or {}).items()
            if target in catalog.languages and self._tts(target)
        }

    # -- public -------------------------------------------------------------------------------

    def twiml(
        self,
        prompts: Sequence[Prompt],
        lang: str,
        params: Mapping[str, Any],
        urls: CallUrls,
        *,
        waiting: bool,
    ) -> str:
        """The TwiML document for one reply; ``waiting`` says the conversation expects input."""
        params = dict(params)
        if isinstance(params.get("reference"), str):
            params["reference"] = spaced_reference(params["reference"])
        offered = self.last_offered = self._offered(prompts)
        gather = (
            render_voice(self.catalog, prompts, lang, params, offered=offered).gather
            if waiting
            else None
        )
        response = VoiceResponse()
        if gather is None:
            self._speak_all(response, prompts, lang, params)
            response.hangup()
        elif gather.get("input") == "record":
            self._speak_all(response, prompts, lang, params)
            response.record(
                action=urls.record_action,
                method="POST",
                max_length=int(gather.get("max_seconds") or 120),
                timeout=RECORD_SILENCE,
                finish_on_key="#",
                play_beep=True,
                recording_status_callback=urls.recording_status,
                recording_status_callback_method="POST",
                recording_status_callback_event="completed absent",
            )
            # Twilio goes on to the next verb when nothing was recorded.
            response.redirect(urls.no_input, method="POST")
        else:
            keys: dict[str, Any] = {}
            if gather.get("finish_on_key"):
                keys["finish_on_key"] = gather["finish_on_key"]
            else:
                keys["num_digits"] = int(gather.get("num_digits") or 1)
            action = urls.gather_action
            if offered is not None:
                # The digits of this menu name these languages, in this order (see web step).
                action += "&languages=" + ".".join(offered)
            target = response.gather(
                input="dtmf",
                timeout=GATHER_TIMEOUT,
                action=action,
                method="POST",
                **keys,
            )
            # Prompts inside the Gather: a caller who knows the menu may press before it ends.
            self._speak_all(target, prompts, lang, params, offered)
            response.redirect(urls.no_input, method="POST")
        return str(response)

    # -- segments -----------------------------------------------------------------------------

    def _offered(self, prompts: Sequence[Prompt]) -> list[str] | None:
        """The languages a language menu among ``prompts`` offers; None without such a menu
        or when it offers every language."""
        if self.offered is None or not any(p.kind == "language" for p in prompts):
            return None
        everyone = [o.key for p in prompts if p.kind == "language" for o in p.options]
        offered = [lang for lang in self.offered() if lang in everyone]
        return offered if offered != everyone else None

    def _speak_all(
        self,
        out: VoiceResponse | Gather,
        prompts: Sequence[Prompt],
        lang: str,
        params: Mapping[str, Any],
        offered: Sequence[str] | None = None,
    ) -> None:
        for prompt in prompts:
            p = {**params, **prompt.params}
            segments = render_voice(self.catalog, [prompt], lang, p, offered=offered).segments
            options = list(prompt.options)
            if prompt.kind == "language" and offered is not None:
                options = [o for o in options if o.key in offered]
            items: list[tuple[VoiceSegment, Option | None, int]] = []
            if prompt.text:
                items.append((segments[0], None, 0))
            offset = 1 if prompt.text else 0
            for n, option in enumerate(options, start=1):
                items.append((segments[offset + n - 1], option, n))
            for segment, option, n in items:
                if option is None:
                    self._text(out, segment.key, lang, p)
                elif prompt.kind == "language":
                    self._language_option(out, segment, option.key, n)
                else:
                    self._option(out, segment, option, n, lang, p)

    def _tts(self, lang: str) -> str | None:
        """The <Say> language of ``lang``, when Twilio can say it with a voice we can name."""
        if lang not in self.catalog.languages:
            return None
        tag = sayable(self.catalog.meta(lang).tts)
        return tag if say_voice(tag, self.voices.get(lang)) else None

    def _say(self, out: VoiceResponse | Gather, text: str, lang: str) -> None:
        """<Say> in ``lang``'s language with its named voice (callers check ``_tts`` first)."""
        tag = self._tts(lang)
        out.say(text, language=tag, voice=say_voice(tag, self.voices.get(lang)))

    def _audio(self, key: str, lang: str) -> str | None:
        """URL of the recording of ``key`` in ``lang``: the prompt library, else shipped."""
        if self.prompts is not None:
            return self.prompts.url(key, lang)
        path = self.catalog.audio_path(key, lang)
        return self.audio_url(lang, path) if path is not None else None

    def fallback_for(self, lang: str) -> str | None:
        """The language heard when ``lang`` has neither a recording nor text-to-speech."""
        return self.fallbacks.get(lang, self.fallback)

    def _missing(self, key: str, lang: str) -> None:
        fallback = self.fallback_for(lang)
        now = time.monotonic()
        last = _missing_logged.get((key, lang, fallback))
        if last is not None and now - last < MISSING_LOGGED_EVERY:
            return
        _missing_logged[(key, lang, fallback)] = now
        # Names the text and the language only: never who is calling.
        log.warning(
            "voice: no recording for '%s' in '%s' and no text-to-speech; using '%s' instead",
            key,
            lang,
            fallback,
        )

    def speak(
        self, out: VoiceResponse | Gather, key: str, lang: str, params: Mapping[str, Any]
    ) -> None:
        """Voice one text as a prompt of a flow is voiced (recording, Say, else fallback)."""
        self._text(out, key, lang, params)

    def _text(
        self, out: VoiceResponse | Gather, key: str, lang: str, params: Mapping[str, Any]
    ) -> None:
        """One text: recording, else <Say>, else the fallback language."""
        catalog = self.catalog
        audio = self._audio(key, lang)
        if audio is not None:
            out.play(audio)
            self._say_values(out, key, lang, params)
            return
        if self._tts(lang):
            self._say(out, catalog.render(key, lang, params, "voice"), lang)
            return
        self._missing(key, lang)
        fallback = self.fallback_for(lang)
        if fallback and fallback != lang and catalog.has(key, fallback):
            self._text(out, key, fallback, params)

    def _say_values(
        self, out: VoiceResponse | Gather, key: str, lang: str, params: Mapping[str, Any]
    ) -> None:
        """After a recording: say the values it cannot contain (reference twice, slowly)."""
        if not self.catalog.has(key, lang):
            return
        names = [
            n
            for n in _placeholders(self.catalog.text(key, lang, "voice"))
            if n not in self.fixed_params and n in params
        ]
        if not names:
            return
        fallback = self.fallback_for(lang)
        speaker = lang if self._tts(lang) else fallback
        if not speaker or not self._tts(speaker):
            return
        values = ", ".join(str(params[n]) for n in names)
        self._say(out, values, speaker)
        if "reference" in names:
            out.pause(length=1)
            self._say(out, values, speaker)

    def _language_option(
        self, out: VoiceResponse | Gather, segment: VoiceSegment, option_lang: str, n: int
    ) -> None:
        """One line of the language menu, in that language ("Bamanankan kama, 2 digi")."""
        catalog = self.catalog
        # A recording has its digit baked in: prefer the one made for this position.
        audio = self._audio(f"{LANGUAGE_OPTION}.{n}", option_lang) or self._audio(
            LANGUAGE_OPTION, option_lang
        )
        if audio is not None:
            out.play(audio)
            return
        if self._tts(option_lang):
            self._say(out, segment.text, option_lang)
            return
        self._missing(LANGUAGE_OPTION, option_lang)
        fallback = self.fallback_for(option_lang)
        if fallback:
            name = catalog.meta(option_lang).name
            text = catalog.render(VOICE_OPTION, fallback, {"label": name, "n": n}, "voice")
            self._say(out, text, fallback)

    def _option(
        self,
        out: VoiceResponse | Gather,
        segment: VoiceSegment,
        option: Option,
        n: int,
        lang: str,
        params: Mapping[str, Any],
    ) -> None:
        """One menu option: its recording then "press n" recorded, else <Say>, else fallback."""
        catalog = self.catalog
        if self._option_recorded(out, option, n, lang):
            return
        if self._tts(lang):
            self._say(out, segment.text, lang)
            return
        self._missing(option.text or VOICE_OPTION, lang)
        fallback = self.fallback_for(lang)
        if not fallback or fallback == lang:
            return
        if self._option_recorded(out, option, n, fallback):
            return
        label = option_label(catalog, option, fallback, params, "voice")
        text = catalog.render(VOICE_OPTION, fallback, {**params, "label": label, "n": n}, "voice")
        self._say(out, text, fallback)

    def _option_recorded(
        self, out: VoiceResponse | Gather, option: Option, n: int, lang: str
    ) -> bool:
        if option.text is None or option.label is not None:
            return False  # a literal label (an area name) has no recording
        label_audio = self._audio(option.text, lang)
        press_audio = self._audio(f"{VOICE_OPTION}.{n}", lang)
        if label_audio is None or press_audio is None:
            return False
        out.play(label_audio)
        out.play(press_audio)
        return True
