"""Neutral prompts rendered the way each channel shows them.

One flow runs on every channel: a menu becomes numbered lines on SMS, buttons on Telegram and
"press 1 for ..." on a call. All words come from the locale catalogue; this module only arranges
them. Voice rendering says which segments have recorded audio so the Twilio adapter can play them
(or use <Say> only for languages Twilio can speak).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from citoyen.engine.sms import render_menu
from citoyen.engine.types import Option, Prompt

WAITING_KINDS = ("choice", "language", "place", "number", "text")


def stored_prompts(reply: Mapping[str, Any]) -> list[Prompt]:
    """The prompts of a reply as stored with its message (``Reply.to_dict``), to render again."""
    prompts = []
    for p in reply.get("prompts", ()):
        options = tuple(Option(**o) for o in p.get("options", ()))
        prompts.append(Prompt(**{**p, "options": options}))
    return prompts


def option_label(
    catalog: Any,
    option: Option,
    lang: str,
    params: Mapping[str, Any],
    channel: str | None = None,
) -> str:
    if option.label is not None:
        return option.label
    if option.text is None:
        return option.key
    return catalog.render(option.text, option.lang or lang, params, channel)


def _lines_for(
    catalog: Any, prompt: Prompt, lang: str, params: Mapping[str, Any], channel: str
) -> list[str]:
    lines: list[str] = []
    if prompt.text:
        lines.append(catalog.render(prompt.text, lang, {**params, **prompt.params}, channel))
    return lines


def render_sms(
    catalog: Any,
    prompts: Sequence[Prompt],
    lang: str,
    params: Mapping[str, Any],
    channel: str = "sms",
) -> str:
    """All prompts of one reply as one SMS text, menus as numbered lines."""
    return "\n\n".join(render_sms_parts(catalog, prompts, lang, params, channel))


def render_sms_parts(
    catalog: Any,
    prompts: Sequence[Prompt],
    lang: str,
    params: Mapping[str, Any],
    channel: str = "sms",
) -> list[str]:
    """One text per prompt; a menu's numbered lines go with its question. ``channel`` (sms or
    whatsapp) picks the texts' variants for that channel."""
    parts: list[str] = []
    for prompt in prompts:
        header = "\n".join(_lines_for(catalog, prompt, lang, params, channel)) or None
        if prompt.kind == "language":
            # Each language announces itself in its own words ("Pour le français, envoyez 1.").
            lines = [header] if header else []
            lines += [
                catalog.render("system.language_option", o.key, {"n": n}, channel)
                for n, o in enumerate(prompt.options, start=1)
            ]
            text = "\n".join(lines)
        else:
            labels = [option_label(catalog, o, lang, params, channel) for o in prompt.options]
            text = render_menu(header, labels)
        if text:
            parts.append(text)
    return parts


@dataclass
class TelegramMessage:
    text: str
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (label, callback data)
    # A question for the citizen's own number (a ``phone`` prompt): the label of the keyboard
    # button that shares it (Telegram's request_contact), instead of inline buttons.
    share_phone: str | None = None


def render_telegram(
    catalog: Any, prompts: Sequence[Prompt], lang: str, params: Mapping[str, Any]
) -> list[TelegramMessage]:
    """One Telegram message per prompt; menus become inline buttons carrying option keys, and a
    question for the citizen's phone number a button that shares it."""
    messages: list[TelegramMessage] = []
    for prompt in prompts:
        text = "\n".join(_lines_for(catalog, prompt, lang, params, "telegram"))
        button = prompt.expects.get("button") if prompt.kind == "phone" else None
        if isinstance(button, str):
            label = catalog.render(button, lang, {**params, **prompt.params}, "telegram")
            messages.append(TelegramMessage(text=text or "…", share_phone=label))
            continue
        buttons = [
            (
                catalog.meta(option.key).name
                if prompt.kind == "language"
                else option_label(catalog, option, lang, params, "telegram"),
                option.key,
            )
            for option in prompt.options
        ]
        if text or buttons:
            messages.append(TelegramMessage(text=text or "…", buttons=buttons))
    return messages


@dataclass
class VoiceSegment:
    """One thing said on a call: recorded audio when it exists, else text for <Say>."""

    key: str
    lang: str
    text: str
    audio: Path | str | None  # a shipped file, or the URL of a library recording
    tts: str | None  # Twilio <Say> language, None when the language has no text-to-speech


@dataclass
class VoiceTurn:
    segments: list[VoiceSegment]
    gather: dict[str, Any] | None  # None: nothing to wait for (the call ends)


AudioLookup = Callable[[str, str], Path | str | None]  # (key, language) -> recording or None


def _segment(
    catalog: Any,
    key: str,
    lang: str,
    params: Mapping[str, Any],
    audio: AudioLookup | None = None,
    audio_key: str | None = None,
) -> VoiceSegment:
    look = audio_key or key
    return VoiceSegment(
        key=key,
        lang=lang,
        text=catalog.render(key, lang, params, "voice"),
        audio=audio(look, lang) if audio is not None else catalog.audio_path(look, lang),
        tts=catalog.meta(lang).tts,
    )


def render_voice(
    catalog: Any,
    prompts: Sequence[Prompt],
    lang: str,
    params: Mapping[str, Any],
    *,
    audio: AudioLookup | None = None,
    offered: Sequence[str] | None = None,
) -> VoiceTurn:
    """What a caller hears, and how the next keypad input is gathered.

    ``audio`` finds a segment's recording (the prompt library's ``PromptAudio.url``); without
    it only the shipped files under ``locales/`` count. A menu line counts as recorded when its
    option's own text is (the Twilio adapter then adds the "press n" recording). ``offered``
    limits a language menu to the languages a caller can hear, numbered from 1.
    """
    segments: list[VoiceSegment] = []
    gather: dict[str, Any] | None = None
    for prompt in prompts:
        p = {**params, **prompt.params}
        if prompt.text:
            segments.append(_segment(catalog, prompt.text, lang, p, audio))
        options = list(prompt.options)
        if prompt.kind == "language" and offered is not None:
            options = [o for o in options if o.key in offered]
        for n, option in enumerate(options, start=1):
            if prompt.kind == "language":
                segments.append(
                    _segment(
                        catalog,
                        "system.language_option",
                        option.key,
                        {"n": n},
                        audio,
                        f"system.language_option.{n}",
                    )
                )
            else:
                label = option_label(catalog, option, lang, p, "voice")
                seg = _segment(
                    catalog,
                    "system.voice_option",
                    lang,
                    {**p, "n": n, "label": label},
                    audio,
                    option.text if option.text and option.label is None else None,
                )
                segments.append(seg)
        if prompt.kind in ("choice", "language", "place"):
            gather = {"input": "dtmf", "num_digits": 1, "options": len(options)}
        elif prompt.kind in ("number", "reference"):
            gather = {"input": "dtmf", "finish_on_key": "#", **prompt.expects}
        elif prompt.kind == "text":
            gather = {"input": "record", **prompt.expects}
    return VoiceTurn(segments=segments, gather=gather)
