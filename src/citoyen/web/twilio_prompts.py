"""The prompt recorder: staff record the voice prompts by phone (docs/voice-prompts.md).

A deployment points a second Twilio number (or a hidden entry of its own) at
``POST /twilio/voice/prompts``. Every route is Twilio-signed like the citizens' IVR; the staff
number travels in the signed URL between the two keypad questions, and the prompt number and the
take in the others, so nothing is kept in process memory. Until the caller has keyed a right
staff number and PIN, every route past the PIN refuses with 403.

- ``POST /twilio/voice/prompts``: the call comes in: "key your staff number, then #".
- ``POST /twilio/voice/prompts/staff``: the staff number; "key your PIN, then #".
- ``POST /twilio/voice/prompts/pin?staff=S``: the PIN; then the language menu.
- ``POST /twilio/voice/prompts/language``: the language to record; then 1 missing / 2 by number.
- ``POST /twilio/voice/prompts/mode`` and ``/number``: which prompts.
- ``POST /twilio/voice/prompts/recorded?i=N&mode=M``: the take of prompt N; it is played back.
- ``POST /twilio/voice/prompts/review?i=N&mode=M&take=T``: 1 keep, 2 record again, 3 skip.
- ``POST /twilio/voice/prompts/silent?i=N&mode=M``: nothing was recorded.

Staff hear the service's own texts (``recorder.*`` in locales/) in the default language, voiced
like every prompt (recording, else text-to-speech, else the fallback).
"""

from __future__ import annotations

import logging
import re
from typing import Any, NoReturn

from flask import Blueprint, Flask, Response, abort, current_app, request
from twilio.twiml.voice_response import Gather, VoiceResponse

from citoyen.channels.twilio_voice import GATHER_TIMEOUT, VoiceRenderer
from citoyen.models import PromptCall
from citoyen.runtime import Runtime
from citoyen.services import calls
from citoyen.services.prompts import phone
from citoyen.services.prompts.catalogue import PromptSpec
from citoyen.web.twilio_auth import require_twilio_signature
from citoyen.web.twilio_voice import renderer as voice_renderer

log = logging.getLogger(__name__)

bp = Blueprint("twilio_prompts", __name__, url_prefix="/twilio/voice/prompts")

NUMBER = re.compile(r"\d{1,6}")
KEYS = re.compile(r"[0-9*#]{0,20}")
RECORD_SILENCE = 5  # seconds of silence that end a take: a prompt is read, not improvised
TWILIO_API = "https://api.twilio.com"


def _runtime() -> Runtime:
    return current_app.extensions["citoyen"]


def _base() -> str:
    return _runtime().settings.public_url.rstrip("/") + bp.url_prefix


def _bad(reason: str) -> NoReturn:
    log.warning("twilio prompts: bad request on %s: %s", request.path, reason)
    abort(400)


def _call_sid() -> str:
    call_sid = request.form.get("CallSid", "")
    if not calls.CALL_SID.fullmatch(call_sid):
        _bad("missing or malformed CallSid")
    return call_sid


def _digits() -> str | None:
    """The keys pressed without the final ``#``; None when the Gather timed out."""
    digits = request.form.get("Digits")
    if digits is None:
        return None
    if not KEYS.fullmatch(digits):
        _bad("malformed Digits")
    return digits.rstrip("#")


def _arg_int(name: str) -> int:
    value = request.args.get(name, "")
    if not NUMBER.fullmatch(value):
        _bad(f"missing or malformed {name}")
    return int(value)


def _mode() -> phone.Mode:
    mode = request.args.get("mode", "")
    if mode not in ("missing", "all"):
        _bad("missing or malformed mode")
    return mode  # type: ignore[return-value]


def _identified() -> PromptCall:
    """The call, identified by staff number and PIN, with a language when one is needed."""
    call = phone.get_call(_runtime(), _call_sid())
    if call is None or call.user_id is None:
        log.warning("twilio prompts: refused (403): call not identified on %s", request.path)
        abort(403)
    return call


class _Twiml:
    """One TwiML answer of the recorder, in the default language."""

    def __init__(self) -> None:
        runtime = _runtime()
        self.runtime = runtime
        self.renderer: VoiceRenderer = voice_renderer(runtime)
        self.lang = runtime.bundle.settings.languages.default
        self.fixed = dict(runtime.bundle.settings.emergency_numbers)
        self.response = VoiceResponse()

    def say(
        self, text: str, target: VoiceResponse | Gather | None = None, /, **params: Any
    ) -> None:
        """Voice the text ``text`` (a locale key); ``params`` may be called anything, ``key``
        included, hence the positional-only arguments."""
        out = target if target is not None else self.response
        self.renderer.speak(out, text, self.lang, params)

    def gather(self, action: str, *, digits: int | None = None) -> Gather:
        keys: dict[str, Any] = {"num_digits": digits} if digits else {"finish_on_key": "#"}
        return self.response.gather(
            input="dtmf", timeout=GATHER_TIMEOUT, action=f"{_base()}{action}", method="POST", **keys
        )

    def end(self, key: str = "system.goodbye") -> Response:
        self.say(key)
        self.response.hangup()
        return self.done()

    def done(self) -> Response:
        return Response(str(self.response), mimetype="text/xml")

    # -- the steps ---------------------------------------------------------------------------

    def ask_staff(self) -> Response:
        self.say("recorder.welcome", self.gather("/staff"))
        return self.end()

    def ask_language(self) -> Response:
        target = self.gather("/language", digits=1)
        self.say("recorder.language", target)
        catalog = self.runtime.bundle.catalog
        for n, lang in enumerate(self.runtime.bundle.settings.languages.enabled, start=1):
            self.say("system.voice_option", target, label=catalog.meta(lang).name, n=n)
        return self.end()

    def ask_mode(self) -> Response:
        self.say("recorder.mode", self.gather("/mode", digits=1))
        return self.end()

    def prompt(self, spec: PromptSpec | None, mode: phone.Mode, *, again: bool = False) -> Response:
        """Read prompt ``spec`` to the recorder and record it; the end when there is none."""
        if spec is None:
            return self.end("recorder.done")
        key_words = spec.key.replace(".", " ").replace("_", " ")
        self.say("recorder.prompt", number=spec.number, key=key_words)
        self.renderer.speak(self.response, spec.text_key, self.lang, dict(spec.values))
        self.say("recorder.record")
        query = f"i={spec.number}&mode={mode}"
        self.response.record(
            action=f"{_base()}/recorded?{query}",
            method="POST",
            max_length=phone.MAX_TAKE_SECONDS,
            timeout=RECORD_SILENCE,
            finish_on_key="#",
            play_beep=True,
        )
        if again:
            return self.end()  # silent twice in a row: nobody is there
        self.response.redirect(f"{_base()}/silent?{query}", method="POST")
        return self.done()

    def review(self, number: int, mode: phone.Mode, take_id: int, recording_sid: str) -> Response:
        account = self.runtime.settings.twilio_account_sid
        self.say("recorder.listen")
        # Built from the account and the RecordingSid, never from a URL in the request.
        self.response.play(f"{TWILIO_API}/2010-04-01/Accounts/{account}/Recordings/{recording_sid}")
        return self.review_menu(number, mode, take_id)

    def review_menu(
        self, number: int, mode: phone.Mode, take_id: int, again: bool = False
    ) -> Response:
        query = f"i={number}&mode={mode}&take={take_id}"
        self.say("recorder.review", self.gather(f"/review?{query}", digits=1))
        if again:
            return self.end()
        self.response.redirect(f"{_base()}/review?{query}&again=1", method="POST")
        return self.done()


@bp.post("")
@require_twilio_signature
def incoming() -> Response:
    phone.open_call(_runtime(), _call_sid())
    return _Twiml().ask_staff()


@bp.post("/staff")
@require_twilio_signature
def staff() -> Response:
    _call_sid()
    digits = _digits()
    twiml = _Twiml()
    if not digits or not NUMBER.fullmatch(digits):
        return twiml.ask_staff()
    twiml.say("recorder.pin", twiml.gather(f"/pin?staff={digits}"))
    return twiml.end()


@bp.post("/pin")
@require_twilio_signature
def pin() -> Response:
    call_sid = _call_sid()
    staff_number = request.args.get("staff", "")
    if not NUMBER.fullmatch(staff_number):
        _bad("missing or malformed staff")
    result = phone.identify(_runtime(), call_sid, staff_number, _digits() or "")
    twiml = _Twiml()
    if result == "ok":
        return twiml.ask_language()
    if result == "wrong":
        twiml.say("recorder.wrong_pin")
        return twiml.ask_staff()
    return twiml.end("recorder.locked")


@bp.post("/language")
@require_twilio_signature
def language() -> Response:
    call = _identified()
    digits = _digits()
    enabled = list(_runtime().bundle.settings.languages.enabled)
    twiml = _Twiml()
    if digits is None or not digits.isdigit() or not 1 <= int(digits) <= len(enabled):
        twiml.say("system.invalid_choice")
        return twiml.ask_language()
    phone.set_language(_runtime(), call.call_sid, enabled[int(digits) - 1])
    return twiml.ask_mode()


def _language(call: PromptCall) -> str:
    if call.language is None:
        _bad("no language chosen in this call")
    return call.language


@bp.post("/mode")
@require_twilio_signature
def mode() -> Response:
    call = _identified()
    lang = _language(call)
    digits = _digits()
    twiml = _Twiml()
    if digits == "1":
        return twiml.prompt(phone.next_prompt(_runtime(), lang, 1, "missing"), "missing")
    if digits == "2":
        twiml.say("recorder.choose_number", twiml.gather("/number"))
        return twiml.end()
    twiml.say("system.invalid_choice")
    return twiml.ask_mode()


@bp.post("/number")
@require_twilio_signature
def number() -> Response:
    call = _identified()
    lang = _language(call)
    digits = _digits()
    twiml = _Twiml()
    spec = (
        phone.prompt_by_number(_runtime(), lang, int(digits))
        if digits and NUMBER.fullmatch(digits)
        else None
    )
    if spec is None:
        twiml.say("recorder.not_found")
        return twiml.ask_mode()
    return twiml.prompt(spec, "all")


def _spec(call: PromptCall) -> PromptSpec:
    spec = phone.prompt_by_number(_runtime(), _language(call), _arg_int("i"))
    if spec is None:
        _bad("no such prompt number")
    return spec


@bp.post("/recorded")
@require_twilio_signature
def recorded() -> Response:
    call = _identified()
    spec = _spec(call)
    mode_ = _mode()
    sid = request.form.get("RecordingSid", "")
    if not calls.RECORDING_SID.fullmatch(sid):
        _bad("missing or malformed RecordingSid")
    duration = calls.parse_duration(request.form.get("RecordingDuration"))
    twiml = _Twiml()
    if duration == 0:
        twiml.say("recorder.nothing")
        return twiml.prompt(spec, mode_, again=True)
    take = phone.add_take(_runtime(), call, spec, sid, duration)
    assert take.id is not None
    return twiml.review(spec.number, mode_, take.id, sid)


@bp.post("/silent")
@require_twilio_signature
def silent() -> Response:
    call = _identified()
    twiml = _Twiml()
    twiml.say("recorder.nothing")
    return twiml.prompt(_spec(call), _mode(), again=True)


@bp.post("/review")
@require_twilio_signature
def review() -> Response:
    call = _identified()
    spec = _spec(call)
    mode_ = _mode()
    take_id = _arg_int("take")
    if phone.get_take(_runtime(), call, take_id) is None:
        _bad("no such take in this call")
    digits = _digits()
    twiml = _Twiml()
    choice = phone.CHOICES.get(digits or "")
    if choice is None:
        if digits:
            twiml.say("system.invalid_choice")
        return twiml.review_menu(
            spec.number, mode_, take_id, again=request.args.get("again") == "1"
        )
    phone.decide(_runtime(), call, take_id, choice)
    if choice == "again":
        return twiml.prompt(spec, mode_)
    if choice == "keep":
        twiml.say("recorder.kept")
    following = phone.next_prompt(_runtime(), _language(call), spec.number + 1, mode_)
    return twiml.prompt(following, mode_)


def init_app(app: Flask) -> None:
    """Register the recorder routes; Twilio's signature stands in for a CSRF token."""
    from citoyen.web.admin import csrf

    csrf.exempt(bp)
    app.register_blueprint(bp)
