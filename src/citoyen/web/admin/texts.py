"""The texts page: reviewers (and administrators) correct a text and mark it reviewed.

The change is written to ``locales/<lang>.yaml`` by :mod:`citoyen.services.translations`, with
the same checks as a PO import, and kept in the history with who and when.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from citoyen.i18n import Catalog
from citoyen.services import translations
from citoyen.web.admin import bp, reading, roles_required, runtime, staff
from citoyen.web.admin.labels import refusal_words

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
        flash(_("Not saved: %(reason)s", reason=refusal_words(exc)), "error")
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
