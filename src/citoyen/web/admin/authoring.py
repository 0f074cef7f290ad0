"""Pages for the people who adapt citoyen to a region: see a flow ("Parcours"), try it, and
review its texts.

The flows page draws each loaded flow (:mod:`citoyen.services.flowmap` and
:mod:`citoyen.services.diagram`, the same diagram as ``citoyen flows diagram``), lists beside each
node its texts in every language with their SMS cost and whether the voice prompt is recorded,
and shows what ``citoyen flows check`` finds in the files on disk, with file, line and node.

The try page chats with any flow as a citizen on SMS, Telegram or a call would, in any enabled
language, through the conversation service (:mod:`citoyen.services.trial`): the test
conversation's address is kept in the signed session cookie, and what it makes never leaves the
simulator (no queue, no count, removed after a day).

The texts page lets reviewers (and administrators) correct a text and mark it reviewed: the
change is written to ``locales/<lang>.yaml`` (:mod:`citoyen.services.translations`, the same
checks as a PO import) and kept in the history with who and when.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext
from markupsafe import Markup

from citoyen.engine.types import Input
from citoyen.i18n import Catalog
from citoyen.services import flowcheck, flowmap, translations, trial
from citoyen.services import prompts as library
from citoyen.services.prompts import PromptAudio
from citoyen.web.admin import bp, reading, roles_required, runtime, staff

AUTHORS = ("admin", "coordinator")


def _(text: str, **params: object) -> str:
    """Flask-Babel's gettext with the signature flowmap's words expect."""
    return gettext(text, **params)  # type: ignore[arg-type]


@bp.get("/flows")
@bp.get("/flows/<flow_id>")
@roles_required(*AUTHORS)
def flows(flow_id: str | None = None):  # type: ignore[no-untyped-def]
    rt = runtime()
    bundle = rt.bundle
    ids = sorted(bundle.flows)
    if flow_id is None:
        flow_id = ids[0]
    if flow_id not in bundle.flows:
        abort(404)
    languages = list(bundle.settings.languages.enabled)
    lang = request.args.get("language")
    if lang not in languages:
        lang = bundle.settings.languages.default
    fmap = flowmap.flow_map(bundle, flow_id, _)
    svg = flowmap.diagram_svg(bundle, flow_id, lang, _)
    # A missing recording matters only where the language has no text-to-speech.
    voice = {
        (s.language, s.key): s.status if s.status != "missing" or s.needed else "tts"
        for s in library.coverage(rt)
    }
    problems = flowcheck.problems(rt)
    return render_template(
        "admin/flows.html",
        ids=ids,
        flow_id=flow_id,
        fmap=fmap,
        svg=Markup(svg),  # built by services.diagram, every text escaped
        languages=languages,
        lang=lang,
        voice=voice,
        errors=[p for p in problems if p.level == "error"],
        warnings=[p for p in problems if p.level != "error"],
    )


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
        flash(_("Not started: %(reason)s", reason=str(exc)), "error")
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


# -- review texts -------------------------------------------------------------------------------

REVIEWERS = ("admin", "reviewer")
TEXT_STATES = ("needs-review", "reviewed")


@bp.get("/texts")
@roles_required(*REVIEWERS)
def texts():  # type: ignore[no-untyped-def]
    rt = runtime()
    settings = rt.bundle.settings
    catalog = Catalog.load(rt.settings.locales_dir)  # the files as they are now
    enabled = [lang for lang in settings.languages.enabled if lang in catalog.languages]
    coverage = catalog.coverage(tuple(enabled))
    lang = request.args.get("language")
    if lang not in enabled:
        lang = next((x for x in enabled if coverage[x]["needs_review"]), enabled[0])
    state = request.args.get("state")
    state = state if state in TEXT_STATES else None
    reference = settings.languages.default
    params = translations.sample_params(settings)
    rows = []
    for key in catalog.keys(lang):
        entry = catalog.entry(key, lang)
        if state and entry.review != state:
            continue
        parts, enc = translations.cost(entry.text, params)
        source = catalog.text(key, reference) if catalog.has(key, reference) else ""
        rows.append(
            {"key": key, "entry": entry, "source": source, "segments": parts, "encoding": enc}
        )
    with reading() as s:
        changes = translations.history(s, lang)
    return render_template(
        "admin/texts.html",
        lang=lang,
        state=state,
        reference=reference,
        languages=enabled,
        coverage=coverage,
        rows=rows,
        changes=changes,
    )


@bp.post("/texts/<lang>/<key>")
@roles_required(*REVIEWERS)
def text_review(lang: str, key: str):  # type: ignore[no-untyped-def]
    form = request.form
    try:
        change = translations.review_text(
            runtime(),
            lang,
            key,
            form.get("text", ""),
            reviewed=form.get("reviewed") == "1",
            note=form.get("note"),
            user_id=staff().id,
        )
    except translations.TranslationError as exc:
        flash(_("Not saved: %(reason)s", reason=str(exc)), "error")
    else:
        if change is None:
            flash(_("Nothing changed for %(key)s.", key=key))
        else:
            flash(
                _(
                    "Saved %(key)s: now %(n)s SMS (%(encoding)s). Citizens get it once the "
                    "service restarts.",
                    key=key,
                    n=change.segments,
                    encoding=change.encoding,
                )
            )
    back = url_for("admin.texts", language=lang, state=form.get("state") or None)
    return redirect(f"{back}#text-{key}", 303)
