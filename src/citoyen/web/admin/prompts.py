"""The voice prompt library in the admin: coverage per language, listen, upload, delete, and who
may record by phone (their PIN). The work is done by :mod:`citoyen.services.prompts`; this page
only shows it and passes forms on.

Uploads may be up to the library's limit (10 MB), more than the 1 MB every other request may
send: :class:`UploadAwareRequest` raises the limit for the upload URL only.
"""

from __future__ import annotations

from flask import Request, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _

from citoyen.services import prompts as library
from citoyen.services.prompts import AudioError, PromptError
from citoyen.services.prompts import pins as prompt_pins
from citoyen.services.prompts.audio import MAX_BYTES as UPLOAD_MAX_BYTES
from citoyen.services.prompts.live import voice_languages
from citoyen.services.users import active_users
from citoyen.web.admin import bp, reading, roles_required, runtime, staff
from citoyen.web.admin.labels import refusal_words

EDITORS = ("admin", "coordinator")
UPLOAD_LIMIT = UPLOAD_MAX_BYTES + 64 * 1024  # the file, plus the form around it


class UploadAwareRequest(Request):
    """The app's request class: prompt uploads may be larger than any other body."""

    @property
    def max_content_length(self) -> int | None:  # type: ignore[override]
        if self.path.startswith("/admin/prompts/") and self.path.endswith("/upload"):
            return UPLOAD_LIMIT
        return super().max_content_length


def _language(requested: str | None) -> str:
    enabled = list(runtime().bundle.settings.languages.enabled)
    if requested in enabled:
        return requested  # type: ignore[return-value]
    needing = [lang for lang in enabled if not library.library.has_tts(runtime().bundle, lang)]
    return (needing or enabled)[0]


@bp.get("/prompts")
@roles_required(*EDITORS)
def prompts():  # type: ignore[no-untyped-def]
    return _render(request.args.get("language"), request.args.get("status") or None)


def _render(requested: str | None, wanted: str | None, status: int = 200):  # type: ignore[no-untyped-def]
    rt = runtime()
    lang = _language(requested)
    statuses = library.coverage(rt)
    counts = library.summary(statuses)
    rows = [s for s in statuses if s.language == lang and (wanted is None or s.status == wanted)]
    recorders = prompt_pins.recorders(rt) if staff().is_admin else []
    with reading() as s:
        users = active_users(s)
    return render_template(
        "admin/prompts.html",
        lang=lang,
        wanted=wanted,
        rows=rows,
        counts=counts,
        languages=list(counts),
        recorders=recorders,
        users=users,
        live=voice_languages(rt),
        max_mb=UPLOAD_MAX_BYTES // (1024 * 1024),
    ), status


def _back(lang: str):  # type: ignore[no-untyped-def]
    return redirect(
        url_for("admin.prompts", language=lang, status=request.form.get("status") or None)
    )


def _refused(lang: str | None):  # type: ignore[no-untyped-def]
    """The page again, with the flashed reason, as a 400: nothing was changed."""
    return _render(lang, request.form.get("status") or None, 400)


@bp.get("/prompts/<lang>/<key>/audio")
@roles_required(*EDITORS)
def prompt_audio(lang: str, key: str):  # type: ignore[no-untyped-def]
    found = library.prompt_file(runtime(), lang, key)
    if found is None or not found[0].is_file():
        abort(404)
    path, content_type = found
    response = send_file(path, mimetype=content_type, conditional=True)
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@bp.post("/prompts/<lang>/<key>/upload")
@roles_required(*EDITORS)
def prompt_upload(lang: str, key: str):  # type: ignore[no-untyped-def]
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash(_("Choose a sound file to upload."), "error")
        return _refused(lang)
    try:
        library.store_upload(
            runtime(), lang, key, upload.read(), upload.filename, user_id=staff().id
        )
    except (AudioError, PromptError) as exc:
        flash(_("Not stored: %(reason)s", reason=refusal_words(exc)), "error")
        return _refused(lang)
    flash(_("Recording stored for %(key)s.", key=key))
    return _back(lang)


@bp.post("/prompts/<lang>/<key>/delete")
@roles_required(*EDITORS)
def prompt_delete(lang: str, key: str):  # type: ignore[no-untyped-def]
    if library.delete_prompt(runtime(), lang, key, user_id=staff().id):
        flash(_("Recording deleted for %(key)s.", key=key))
        return _back(lang)
    flash(_("No library recording to delete for %(key)s.", key=key), "error")
    return _refused(lang)


@bp.post("/prompts/pins")
@roles_required("admin")
def prompt_pin_set():  # type: ignore[no-untyped-def]
    user_id = request.form.get("user", type=int)
    if user_id is None:
        abort(400)
    try:
        prompt_pins.set_pin(
            runtime(), user_id, request.form.get("pin") or "", by_user_id=staff().id
        )
    except PromptError as exc:
        flash(_("Not done: %(reason)s", reason=refusal_words(exc)), "error")
        return _refused(None)
    flash(_("PIN saved: this user may now record prompts by phone."))
    return redirect(url_for("admin.prompts"))


@bp.post("/prompts/pins/<int:user_id>/clear")
@roles_required("admin")
def prompt_pin_clear(user_id: int):  # type: ignore[no-untyped-def]
    if not prompt_pins.clear_pin(runtime(), user_id, by_user_id=staff().id):
        abort(404)
    flash(_("Phone recording access removed."))
    return redirect(url_for("admin.prompts"))
