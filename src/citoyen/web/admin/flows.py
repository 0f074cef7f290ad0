"""The flows page ("Parcours"): each loaded flow drawn, its texts, and the check of the files.

The drawing is :mod:`citoyen.services.flowmap` and :mod:`citoyen.services.diagram`, the same as
``citoyen flows diagram``. Beside each node: its texts in every language with their SMS cost and
whether the voice prompt is recorded; at the top, what ``citoyen flows check`` finds in the files
on disk (not only what the service loaded), with file, line and node.
"""

from __future__ import annotations

from flask import abort, render_template, request
from flask_babel import gettext
from markupsafe import Markup

from citoyen.services import diagram, flowcheck, flowmap
from citoyen.services import prompts as library
from citoyen.web.admin import bp, roles_required, runtime

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
    svg = diagram.diagram_svg(bundle, flow_id, lang, _)
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
