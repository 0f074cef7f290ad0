"""The terminal simulator: talk to the flows as an SMS, voice, Telegram or WhatsApp user would.

It goes through the same conversation service and database as the real channels (a report made
here is a real report), and shows each reply the way that channel would: numbered options on SMS
(with what it costs), buttons on Telegram, and on a call plainly what the caller would hear,
from the same TwiML the voice webhook sends: "[French text-to-speech] ..." for a <Say>,
"[recording bm/report.welcome]" for a recorded prompt, then what the call waits for. WhatsApp
shows numbered options and the 24-hour customer-service window: ``/wait HOURS`` moves the
simulated clock, and each reply says whether notices would now go free-form or need a template
(config/whatsapp/templates.yaml).
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError

from citoyen.channels.sms import MAX_SEGMENTS
from citoyen.channels.twilio_voice import CallUrls, VoiceRenderer, language_choice
from citoyen.engine.sms import cost
from citoyen.engine.types import Input
from citoyen.messages.render import (
    render_sms,
    render_sms_parts,
    render_telegram,
)
from citoyen.messages.types import Inbound, Reply
from citoyen.services.telegram_inbound import contact_input, typed_input

HELP = {
    "sms": "Type your SMS. /quit to leave.",
    "voice": "Type keypad digits (a menu takes one digit; numbers end with #). "
    "When a recording is asked, type what you would say. Empty line = no answer. "
    "/hangup or /quit to leave.",
    "telegram": "Type text, or the number of a button to press it. "
    "/location CODE shares a place (area code), /contact NUMBER shares your own phone number "
    '(the "call me" button). /quit to leave.',
    "whatsapp": "Type your message. /location CODE shares a place (area code), /voice TEXT "
    "sends a voice note, /wait HOURS lets time pass (the 24-hour window). /quit to leave.",
}


class Simulator:
    """One simulated citizen on one channel."""

    def __init__(self, runtime: Any, channel: str, sender: str) -> None:
        self.runtime = runtime
        self.channel = channel
        self.address = f"telegram:{sender}" if channel == "telegram" else sender
        self.catalog = runtime.bundle.catalog
        self.buttons: list[tuple[str, str]] = []
        self.waits: str | None = None  # on a call: "key", "digits", "record" or None
        self.menu: list[str] | None = None  # the languages the last language menu offered
        self.now = datetime.now(UTC)  # WhatsApp: the simulated clock, moved by /wait
        self.last_message_at: datetime | None = None

    def _renderer(self) -> VoiceRenderer:
        """The voice webhook's renderer, with recordings named ``recording:<lang>/<file>``
        (the prompt library is read each turn: a recording may just have arrived)."""
        from citoyen.services.prompts import PromptAudio
        from citoyen.services.prompts.live import offered_on_voice

        bundle = self.runtime.bundle
        settings = bundle.settings
        shipped = lambda lang, path: f"{RECORDING}{lang}/{Path(path).name}"  # noqa: E731
        library = PromptAudio.load(self.runtime, shipped)
        library.base_url = RECORDING.rstrip("/")
        return VoiceRenderer(
            bundle.catalog,
            default_language=settings.languages.default,
            languages=settings.languages.enabled,
            audio_url=shipped,
            fixed_params=settings.emergency_numbers,
            prompts=library,
            fallbacks=settings.voice_fallback,
            voices=settings.tts_voices,
            offered=lambda: offered_on_voice(self.runtime),
        )

    def _heard(self, reply: Reply) -> str:
        """What a caller hears for ``reply``, one line per thing said, then what it waits for."""
        renderer = self._renderer()
        urls = CallUrls("sim:gather", "sim:silence", "sim:record", "sim:status")
        twiml = renderer.twiml(
            reply.prompts, reply.language, reply.params, urls, waiting=reply.status == "waiting"
        )
        self.menu = renderer.last_offered
        lines, self.waits = heard_lines(ET.fromstring(twiml))
        return "\n".join(lines)

    def send(self, inp: Input) -> Reply:
        inbound = Inbound(self.channel, self.address, inp, provider_id=f"sim-{uuid.uuid4().hex}")
        if self.channel != "whatsapp":
            return self.runtime.conversations.handle(inbound)
        self.last_message_at = self.now
        return self.runtime.conversations.handle(inbound, now=self.now)

    def window(self) -> str:
        """WhatsApp: what the 24-hour window allows now, for messages the service starts."""
        from citoyen.channels.whatsapp import WINDOW, window_open
        from citoyen.channels.whatsapp_templates import PURPOSES, load_templates

        if window_open(self.last_message_at, self.now):
            assert self.last_message_at is not None
            left = self.last_message_at + WINDOW - self.now
            return f"[window open {left.total_seconds() / 3600:.0f} h more: notices go free-form]"
        lang = self.runtime.bundle.settings.languages.default
        settings = self.runtime.settings
        templates = load_templates(settings.flows_dir, config_dir=settings.resolved_config_dir)
        state = ", ".join(
            f"{purpose} {'template' if templates.get(purpose, lang) else 'held (no template)'}"
            for purpose in PURPOSES
        )
        return f"[window closed: {state}]"

    def show(self, reply: Reply) -> str:
        """The reply as the channel presents it."""
        lang = reply.language
        if self.channel == "sms":
            parts = render_sms_parts(self.catalog, reply.prompts, lang, reply.params)
            text = "\n\n".join(parts)
            n = cost(parts, MAX_SEGMENTS)
            return f"{text}\n    [{n} SMS segment{'s' if n != 1 else ''}]" if text else ""
        if self.channel == "whatsapp":
            text = render_sms(self.catalog, reply.prompts, lang, reply.params)
            return f"{text}\n    {self.window()}" if text else ""
        if self.channel == "voice":
            return self._heard(reply)
        messages = render_telegram(self.catalog, reply.prompts, lang, reply.params)
        self.buttons = [b for m in messages for b in m.buttons]
        lines = []
        n = 0
        for m in messages:
            lines.append(m.text)
            for label, _key in m.buttons:
                n += 1
                lines.append(f"  [{n}: {label}]")
            if m.share_phone:
                lines.append(f"  [{m.share_phone}] (keyboard button: /contact NUMBER)")
        return "\n".join(lines)

    def parse(self, line: str) -> Input | None:
        """What a typed line means on this channel; None to leave."""
        line = line.rstrip("\n")
        if line.strip() in ("/quit", "/exit", "/hangup"):
            return None
        if self.channel == "voice":
            if not line.strip():
                return Input("timeout")
            if self.waits == "record":
                return Input("recording", f"simulator:{line.strip()}")
            keys = line.strip().rstrip("#")
            if self.menu is not None and keys:
                return language_choice(self.menu, keys)
            return Input("digits", keys)
        if self.channel in ("telegram", "whatsapp") and line.startswith("/location "):
            return Input("location", line.split(maxsplit=1)[1].strip())
        if self.channel == "whatsapp" and line.startswith("/voice "):
            return Input("recording", f"simulator:{line.split(maxsplit=1)[1].strip()}")
        if self.channel == "telegram" and line.startswith("/contact "):
            return self._contact(line.split(maxsplit=1)[1])
        if self.channel == "telegram":
            stripped = line.strip()
            if stripped.isdigit() and 1 <= int(stripped) <= len(self.buttons):
                return Input("choice", self.buttons[int(stripped) - 1][1])
            return typed_input(self.runtime, self.address, line)  # /help, /start... as the bot
        return Input("text", line)

    def _contact(self, number: str) -> Input:
        """The citizen's own number, as the "call me" button shares it (an unreadable one as
        someone else's: refused)."""
        from citoyen.messages.addresses import AddressError, normalise_address

        try:
            phone: str | None = normalise_address(f"tel:{number.strip()}")
        except AddressError:
            phone = None
        return contact_input(self.runtime, phone)

    def first_input(self) -> Input:
        return Input("start") if self.channel == "voice" else Input("text", "Bonjour")

    def run(self, lines: Iterable[str], out: Callable[[str], None]) -> list[Reply]:
        """Feed lines (the first message is sent for you on voice) and print replies."""
        replies = []
        if self.channel == "voice":
            reply = self.send(Input("start"))
            replies.append(reply)
            out(self.show(reply))
        for line in lines:
            if self.channel == "whatsapp" and line.startswith("/wait "):
                self.now += timedelta(hours=float(line.split(maxsplit=1)[1]))
                out(self.window())
                continue
            inp = self.parse(line)
            if inp is None:
                break
            reply = self.send(inp)
            replies.append(reply)
            out(self.show(reply))
            if self.channel == "voice" and reply.status != "waiting":
                break
        return replies

    def repl(self) -> None:
        print(f"citoyen simulator: {self.channel}, from {self.address}. {HELP[self.channel]}")

        def lines() -> Iterable[str]:
            while True:
                try:
                    yield input("> " if self.channel != "voice" else "keys> ")
                except EOFError:
                    return

        def out(text: str) -> None:
            print("\n".join(f"< {line}" for line in text.splitlines()) or "< (no reply)")

        self.run(lines(), out)


RECORDING = "recording:"  # how the simulator's recordings are named in its TwiML


def _language_name(tag: str | None) -> str:
    """``fr-FR`` -> ``French``: the language of a <Say>, in English as the simulator speaks."""
    try:
        return Locale.parse(tag or "", sep="-").get_language_name("en") or str(tag)
    except (UnknownLocaleError, ValueError):
        return str(tag)


def heard_lines(root: ET.Element) -> tuple[list[str], str | None]:
    """A TwiML answer as plain lines of what is heard, and what the call then waits for."""
    lines: list[str] = []
    waits: str | None = None
    for verb in root:
        for element in [*verb] if verb.tag == "Gather" else [verb]:
            if element.tag == "Say":
                lines.append(
                    f"[{_language_name(element.get('language'))} text-to-speech] "
                    f"{element.text or ''}"
                )
            elif element.tag == "Play":
                name = (element.text or "").removeprefix(RECORDING)
                lines.append(f"[recording {name.rsplit('.', 1)[0]}]")
            elif element.tag == "Pause":
                lines.append(f"(pause, {element.get('length', '1')} s)")
        if verb.tag == "Gather":
            waits = "digits" if verb.get("finishOnKey") else "key"
            lines.append("(digits, then #)" if waits == "digits" else "(one key)")
        elif verb.tag == "Record":
            waits = "record"
            lines.append(f"(recording, up to {verb.get('maxLength', '120')} s, # to finish)")
        elif verb.tag == "Hangup":
            lines.append("(the call ends)")
    return lines, waits
