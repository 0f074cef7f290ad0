"""Twilio voice webhooks: the keypad IVR, its recordings, and the recorded prompts it plays.

Routes (all POSTs Twilio-signed; a failed check is a 403 before anything is read or stored):

- ``POST /twilio/voice``: an incoming call; turn 0 of the conversation.
- ``POST /twilio/voice/step?n=K``: the keys pressed at turn K (Gather action);
  ``&timeout=1`` when the Gather got nothing (reached through ``<Redirect>``).
- ``POST /twilio/voice/recorded?n=K``: the recording made at turn K (Record action).
- ``POST /twilio/voice/recording-status``: Twilio's recordingStatusCallback.
- ``POST /twilio/voice/survey?invitation=ID``: an outbound survey call was answered; turn 0 of
  the survey (:mod:`citoyen.services.surveys.voice`). Later turns use ``/twilio/voice/step``.
- ``POST /twilio/voice/survey-status?invitation=ID``: the survey call's status callbacks
  (busy, no-answer and failed calls are retried later).
- ``POST /twilio/voice/callback?request=ID``: a call-back we placed was answered (the citizen
  asked for it, :mod:`citoyen.services.callbacks`); turn 0 of the report IVR, as an incoming
  call, or ``<Hangup/>`` when ``AnsweredBy`` says a machine answered.
  ``POST /twilio/voice/callback-status?request=ID``: its status callbacks (retries).
- ``GET /audio/<lang>/<file>``: recorded prompts for ``<Play>``, from the prompt library
  (``CITOYEN_PROMPTS_DIR``) or the shipped ``locales/<lang>/audio/``.

Requests are checked before use: a missing CallSid, a caller number that is neither a phone number
nor a withheld caller id, keys that are not keypad keys or a step number that is not a number get
a 400, never a 500, and the caller's number is never written to the logs. A withheld caller id
("anonymous", "Restricted", an empty From...) makes the call its own contact,
``withheld:<CallSid>``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote

from flask import Blueprint, Flask, Response, abort, current_app, request, send_from_directory

from citoyen.channels.twilio_voice import CallUrls, VoiceRenderer, language_choice
from citoyen.engine.types import Input
from citoyen.messages.addresses import AddressError, normalise_address, withheld_address
from citoyen.messages.types import Reply
from citoyen.runtime import Runtime
from citoyen.services import calls
from citoyen.services.prompts import PromptAudio, library_dir
from citoyen.services.prompts.live import offered_on_voice
from citoyen.web.twilio_auth import require_twilio_signature

log = logging.getLogger(__name__)

bp = Blueprint("twilio_voice", __name__)

MAX_STEP = 10_000  # a real call never gets near this; a bigger n is not a call of ours
STEP = re.compile(r"\d{1,5}")
INVITATION = re.compile(r"[1-9]\d{0,11}")
DIGITS = re.compile(r"[0-9*#]{0,40}")
AUDIO_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg"}
AUDIO_MAX_AGE = 86400
LIBRARY_MAX_AGE = 365 * 86400
# What Twilio puts in From when the caller id is withheld (compared case-insensitively);
# +266696687 spells ANONYMOUS on a keypad.
WITHHELD_FROM = frozenset(
    {"", "anonymous", "restricted", "unknown", "private", "+266696687", "266696687"}
)


def _runtime() -> Runtime:
    return current_app.extensions["citoyen"]


def _base() -> str:
    return _runtime().settings.public_url.rstrip("/")


def _bad(reason: str) -> NoReturn:
    # The reason names a field, never its value: values may be a caller's number.
    log.warning("twilio voice: bad request on %s: %s", request.path, reason)
    abort(400)


def _call_sid() -> str:
    """The request's CallSid, or 400."""
    call_sid = request.form.get("CallSid", "")
    if not calls.CALL_SID.fullmatch(call_sid):
        _bad("missing or malformed CallSid")
    return call_sid


def _call() -> tuple[str, str]:
    """CallSid and the caller's canonical address, or 400."""
    call_sid = _call_sid()
    # On a call we placed (a survey call) the citizen is the callee: "To", not "From".
    outbound = request.form.get("Direction", "").startswith("outbound")
    field = "To" if outbound else "From"
    sender = request.form.get(field)
    if sender is None:
        _bad(f"missing {field}")
    if sender.strip().lower() in WITHHELD_FROM:
        # A withheld number: the call is its own contact, never written or called back to.
        return call_sid, withheld_address(call_sid)
    try:
        address = normalise_address(sender)
    except AddressError:
        _bad("From is not a phone number")
    if not address.startswith("tel:"):
        _bad("From is not a phone number")  # "telegram:1" or "withheld:…" typed into From
    return call_sid, address


def _step() -> int:
    value = request.args.get("n", "")
    if not STEP.fullmatch(value) or not 1 <= int(value) <= MAX_STEP:
        _bad("missing or malformed step number n")
    return int(value)


def _urls(n: int) -> CallUrls:
    """Where Twilio goes after turn ``n - 1``: every URL carries ``n``."""
    base = _base()
    return CallUrls(
        gather_action=f"{base}/twilio/voice/step?n={n}",
        no_input=f"{base}/twilio/voice/step?n={n}&timeout=1",
        record_action=f"{base}/twilio/voice/recorded?n={n}",
        recording_status=f"{base}/twilio/voice/recording-status",
    )


def _audio_url(lang: str, path: Path) -> str:
    return f"{_base()}/audio/{quote(lang)}/{quote(path.name)}"


def renderer(runtime: Runtime) -> VoiceRenderer:
    """The TwiML renderer of this deployment: recordings from the prompt library (its rows as
    kept by :func:`citoyen.services.prompts.library.library_rows`, so a prompt recorded a
    moment ago is heard on the next turn), then shipped files, then Say or the language's
    configured fallback."""
    bundle = runtime.bundle
    languages = bundle.settings.languages
    return VoiceRenderer(
        bundle.catalog,
        default_language=languages.default,
        languages=languages.enabled,
        audio_url=_audio_url,
        fixed_params=bundle.settings.emergency_numbers,
        prompts=PromptAudio.load(runtime, _audio_url),
        fallbacks=bundle.settings.voice_fallback,
        voices=bundle.settings.tts_voices,
        offered=lambda: offered_on_voice(runtime),
    )


def _twiml(reply: Reply, n: int) -> Response:
    """The reply to turn ``n`` as TwiML; its action URLs lead to turn ``n + 1``."""
    renderer_ = renderer(_runtime())
    body = renderer_.twiml(
        reply.prompts,
        reply.language,
        reply.params,
        _urls(n + 1),
        waiting=reply.status == "waiting",
    )
    return Response(body, mimetype="text/xml")


@bp.post("/twilio/voice")
@require_twilio_signature
def incoming() -> Response:
    """A call comes in: start (or resume) the caller's conversation."""
    call_sid, address = _call()
    reply = calls.voice_turn(
        _runtime(), call_sid=call_sid, n=0, address=address, inp=Input("start")
    )
    return _twiml(reply, 0)


@bp.post("/twilio/voice/step")
@require_twilio_signature
def step() -> Response:
    """Keys pressed at a Gather, or the Gather's timeout."""
    n = _step()
    call_sid, address = _call()
    if request.args.get("timeout") == "1":
        inp = Input("timeout")
    else:
        digits = request.form.get("Digits")
        if digits is None or not DIGITS.fullmatch(digits):
            _bad("missing or malformed Digits")
        keys = digits.rstrip("#")
        # Only "#" pressed on a number question: as if nothing was keyed.
        inp = Input("digits", keys) if keys else Input("timeout")
        menu = request.args.get("languages")
        if menu is not None and keys:
            inp = _language_choice(menu, keys)
    reply = calls.voice_turn(_runtime(), call_sid=call_sid, n=n, address=address, inp=inp)
    return _twiml(reply, n)


def _language_choice(menu: str, keys: str) -> Input:
    """A key pressed at a language menu that offered only some languages (those a caller can
    hear, in this order: the Gather action's ``languages``)."""
    enabled = _runtime().bundle.settings.languages.enabled
    offered = menu.split(".")
    if not all(lang in enabled for lang in offered):
        _bad("malformed languages")
    return language_choice(offered, keys)


@bp.post("/twilio/voice/recorded")
@require_twilio_signature
def recorded() -> Response:
    """A free-text answer was recorded: the recording stands for the text."""
    n = _step()
    call_sid, address = _call()
    sid = request.form.get("RecordingSid", "")
    if not calls.RECORDING_SID.fullmatch(sid):
        _bad("missing or malformed RecordingSid")
    url = request.form.get("RecordingUrl", "")
    if not url.startswith("https://") or len(url) > 400:
        url = ""
    duration = calls.parse_duration(request.form.get("RecordingDuration"))
    if duration == 0:
        # Twilio sends an empty recording when the caller said nothing: that is no answer.
        reply = calls.voice_turn(
            _runtime(), call_sid=call_sid, n=n, address=address, inp=Input("timeout")
        )
        return _twiml(reply, n)
    recording = calls.Recording(sid=sid, url=url or None, duration=duration)
    reply = calls.voice_turn(
        _runtime(),
        call_sid=call_sid,
        n=n,
        address=address,
        inp=Input("recording", url or sid),
        recording=recording,
    )
    return _twiml(reply, n)


@bp.post("/twilio/voice/recording-status")
@require_twilio_signature
def recording_status() -> Response:
    """Twilio says a recording is ready (with its duration) or that there is none."""
    if not calls.RECORDING_SID.fullmatch(request.form.get("RecordingSid", "")):
        _bad("missing or malformed RecordingSid")
    _call_sid()
    calls.record_recording_status(_runtime(), request.form)
    return Response(status=204)


def _id_arg(name: str) -> int:
    """The id a placed call's URL carries (``?invitation=``, ``?request=``), or 400."""
    value = request.args.get(name, "")
    if not INVITATION.fullmatch(value):
        _bad(f"missing or malformed {name}")
    return int(value)


@bp.post("/twilio/voice/survey")
@require_twilio_signature
def survey_call() -> Response:
    """A survey call we placed was answered: the survey starts (turn 0); a machine
    (``AnsweredBy``, answering machine detection) is hung up on."""
    from citoyen.services.surveys import voice

    invitation = _id_arg("invitation")
    answered_by = request.form.get("AnsweredBy")
    reply = voice.answered(_runtime(), invitation, _call_sid(), answered_by=answered_by)
    if reply is None:
        abort(404)  # not a call we placed for this invitation
    return _twiml(reply, 0)


@bp.post("/twilio/voice/survey-status")
@require_twilio_signature
def survey_call_status() -> Response:
    """Status callbacks of survey calls: retries, concurrency, the end of the call."""
    from citoyen.services.surveys import SurveyConfigError, surveys_for, voice

    invitation = _id_arg("invitation")
    _call_sid()
    runtime = _runtime()
    try:
        surveys = surveys_for(runtime)
    except SurveyConfigError:
        # The operator broke flows/surveys/ after start: Twilio retries, nothing is lost.
        log.error("survey definitions are broken: run `citoyen flows check`")
        return Response(status=503)
    voice.call_status(runtime, surveys, invitation, request.form)
    return Response(status=204)


@bp.post("/twilio/voice/callback")
@require_twilio_signature
def callback_call() -> Response:
    """A call-back we placed was answered: the report IVR starts, as for an incoming call; a
    machine (``AnsweredBy``, answering machine detection) is hung up on."""
    from citoyen.services import callback_calls

    request_id = _id_arg("request")
    answered_by = request.form.get("AnsweredBy")
    reply = callback_calls.answered(_runtime(), request_id, _call_sid(), answered_by=answered_by)
    if reply is None:
        abort(404)  # not a call we placed for this request
    return _twiml(reply, 0)


@bp.post("/twilio/voice/callback-status")
@require_twilio_signature
def callback_call_status() -> Response:
    """Status callbacks of call-back calls: answered, retries, the end of the call."""
    from citoyen.services import callback_calls

    request_id = _id_arg("request")
    _call_sid()
    callback_calls.call_status(_runtime(), request_id, request.form)
    return Response(status=204)


@bp.get("/audio/<lang>/<path:file>")
def audio(lang: str, file: str) -> Response:
    """A recorded prompt, public and cacheable (Twilio fetches it for every <Play>).

    Library files (``CITOYEN_PROMPTS_DIR``) carry a hash of their content in their name, so they
    never change: cached for a year. Shipped files (``locales/<lang>/audio/``) may be replaced
    under the same name: cached for a day. Both carry an ETag (a conditional request gets 304).
    """
    runtime = _runtime()
    mimetype = AUDIO_TYPES.get(Path(file).suffix.lower())
    if lang not in runtime.bundle.catalog.languages or mimetype is None or "/" in file:
        abort(404)
    library = library_dir(runtime.settings) / lang
    if (library / file).is_file():
        folder, max_age, immutable = library, LIBRARY_MAX_AGE, True
    else:
        folder, max_age, immutable = (
            Path(runtime.settings.locales_dir) / lang / "audio",
            AUDIO_MAX_AGE,
            False,
        )
    # send_from_directory refuses any path that leaves the folder (404); it sets the ETag.
    response = send_from_directory(folder, file, mimetype=mimetype, max_age=max_age)
    response.cache_control.public = True
    response.cache_control.max_age = max_age
    if immutable:
        response.cache_control.immutable = True
    return response


def init_app(app: Flask) -> None:
    """Register the voice routes; Twilio cannot send CSRF tokens, its signature stands instead."""
    from citoyen.web.admin import csrf

    csrf.exempt(bp)
    app.register_blueprint(bp)
