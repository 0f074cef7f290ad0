"""Trying a flow in the admin: staff chat with any flow as a citizen on SMS, Telegram or a call
would, in any enabled language, through the conversation service (:mod:`citoyen.services.trial`).

The test conversation's address is kept in the signed session cookie; what it makes never leaves
the simulator (no queue, no count, removed after a day).
"""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from citoyen.engine.types import Input
from citoyen.services import trial
from citoyen.services.prompts import PromptAudio
from citoyen.web.admin import bp, roles_required, runtime
from citoyen.web.admin.flows import AUTHORS
from citoyen.web.admin.labels import refusal_words

# -- try a flow ---------------------------------------------------------------------------------

TRIAL_KEY = "trial"


def _audio_url() -> Callable[[str, str], str | None]:
    """The admin's URL of a prompt's recording (library first, then shipped), if there is one."""
    prompts = PromptAudio.load(runtime(), lambda _lang, _path: "")

    def url(key: str, lang: str) -> str | None:
        if not prompts.has(key, lang):
            return None
        return url_for("admin.prompt_audio", lang=lang, key=key)

    return url


@bp.get("/try")
@roles_required(*AUTHORS)
def try_flow():  # type: ignore[no-untyped-def]
    bundle = runtime().bundle
    current = session.get(TRIAL_KEY)
    turns = []
    if current:
        turns = trial.transcript(runtime(), current["address"], current["channel"], _audio_url())
    last = next((t for t in reversed(turns) if t.who == "service"), None)
    return render_template(
        "admin/try.html",
        ids=sorted(bundle.flows),
        languages=[
            (lang, bundle.catalog.meta(lang).name) for lang in bundle.settings.languages.enabled
        ],
        channels=trial.CHANNELS,
        current=current,
        turns=turns,
        last=last,
    )


@bp.post("/try/start")
@roles_required(*AUTHORS)
def try_start():  # type: ignore[no-untyped-def]
    form = request.form
    channel, language, flow_id = (
        form.get("channel", ""),
        form.get("language", ""),
        form.get("flow", ""),
    )
    try:
        address = trial.start(runtime(), channel=channel, language=language, flow_id=flow_id)
    except trial.TrialError as exc:
        flash(_("Not started: %(reason)s", reason=refusal_words(exc)), "error")
        return redirect(url_for("admin.try_flow")), 303
    session[TRIAL_KEY] = {
        "address": address,
        "channel": channel,
        "language": language,
        "flow": flow_id,
    }
    return redirect(url_for("admin.try_flow", _anchor="end"), 303)


def _input(channel: str) -> Input | None:
    """What the form sent, as the channel would pass it on."""
    form = request.form
    if channel == "voice":
        if "timeout" in form:
            return Input("timeout")
        if form.get("recording", "").strip():
            return Input("recording", f"simulator:{form['recording'].strip()[:500]}")
        digits = (form.get("digits") or "").strip().rstrip("#")
        return Input("digits", digits) if digits.isdigit() else None
    if channel == "telegram" and form.get("choice"):
        return Input("choice", form["choice"])
    text = (form.get("text") or "").strip()
    return Input("text", text[:1600]) if text else None


@bp.post("/try/send")
@roles_required(*AUTHORS)
def try_send():  # type: ignore[no-untyped-def]
    current = session.get(TRIAL_KEY)
    if not current:
        flash(_("Start a test conversation first."), "error")
        return redirect(url_for("admin.try_flow")), 303
    inp = _input(current["channel"])
    if inp is None:
        flash(_("Nothing to send."), "error")
        return redirect(url_for("admin.try_flow", _anchor="end"), 303)
    try:
        trial.send(runtime(), current["address"], current["channel"], inp)
    except trial.TrialError:
        session.pop(TRIAL_KEY, None)
        abort(400)
    return redirect(url_for("admin.try_flow", _anchor="end"), 303)


@bp.post("/try/end")
@roles_required(*AUTHORS)
def try_end():  # type: ignore[no-untyped-def]
    session.pop(TRIAL_KEY, None)
    return redirect(url_for("admin.try_flow"), 303)
