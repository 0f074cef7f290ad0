"""The public accountability pages: no sign-in, every figure through the publication module.

``/public/`` (Mali), ``/public/area/<code>`` (a region, cercle or commune) for a year,
``/public/area/<code>/<year>.csv|.json`` (the same figures as open data) and ``/public/how``.
``/`` redirects to ``/public/``.

Texts are the citizens' texts of ``locales/`` (``public.*`` keys, in fr, bm and en; ``?lang=``
picks one, French by default), like every text citizens read. Pages are server-rendered, charts
are inline SVG with their numbers in a table beside them, and there is no script: a basic
smartphone on a slow network gets the whole page in one small response plus one stylesheet.
The figures are computed at most once per ``CITOYEN_PUBLIC_CACHE_SECONDS`` (and browsers and
proxies may keep the pages as long).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, redirect, render_template, request

from citoyen.services.publication.figures import ALL, public_figures
from citoyen.services.publication.texts import texts
from citoyen.services.publication.views import OPEN_DATA_COLUMNS, area_view

bp = Blueprint("public", __name__, url_prefix="/public")
LANGUAGES = ("fr", "bm", "en")


def _runtime() -> Any:
    return current_app.extensions["citoyen"]


def _figures() -> Any:
    """The cached figures; ``PUBLIC_CLOCK`` in the app's config (tests) fixes "now"."""
    clock = current_app.config.get("PUBLIC_CLOCK")
    return public_figures(_runtime(), clock() if clock else None)


def _lang() -> str:
    lang = request.args.get("lang", "fr")
    return lang if lang in LANGUAGES else "fr"


def _texts(lang: str) -> Any:
    return texts(_runtime().bundle.catalog, lang)


def _cached(response: Response) -> Response:
    response.headers["Cache-Control"] = (
        f"public, max-age={_runtime().settings.public_cache_seconds}"
    )
    return response


def _page(template: str, **context: Any) -> Response:
    lang = _lang()
    t, category, kind = _texts(lang)
    html = render_template(
        template, lang=lang, languages=LANGUAGES, t=t, category=category, kind=kind, **context
    )
    return _cached(Response(html, mimetype="text/html"))


@bp.get("/")
def national() -> Response:
    return area("ML")


@bp.get("/area/<code>")
def area(code: str) -> Response:
    figures = _figures()
    year = request.args.get("year") or None
    view = area_view(figures, code, year)
    if view is None:
        if code in figures.tree.areas and not figures.months:
            return _page("public/empty.html", area=figures.tree.areas[code])
        abort(404)
    return _page("public/area.html", view=view, computed=figures.computed_at, chart=_chart(view))


@bp.get("/area/<code>/<year>.<fmt>")
def open_data(code: str, year: str, fmt: str) -> Response:
    if fmt not in ("csv", "json"):
        abort(404)
    view = area_view(_figures(), code, year)
    if view is None:
        abort(404)
    rows = view.rows()
    licence = _texts("en")[0]("public.licence")
    name = f"citoyen-{code}-{year}.{fmt}"
    if fmt == "json":
        body = json.dumps(
            {
                "licence": licence,
                "area": code,
                "year": year,
                "threshold": view.threshold,
                "columns": dict(OPEN_DATA_COLUMNS),
                "rows": rows,
            },
            ensure_ascii=False,
            indent=1,
        )
        response = Response(body, mimetype="application/json")
    else:
        out = io.StringIO()
        out.write(f"# {licence} Columns: docs/transparency.md.\n")
        writer = csv.DictWriter(out, fieldnames=[c for c, _ in OPEN_DATA_COLUMNS])
        writer.writeheader()
        writer.writerows(rows)
        response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return _cached(response)


@bp.get("/how")
def how() -> Response:
    return _page(
        "public/how.html",
        threshold=_runtime().settings.publication_min_count,
        columns=OPEN_DATA_COLUMNS,
    )


def _chart(view: Any) -> dict[str, Any]:
    """Bars of the reports per month, as numbers the SVG template places (no script)."""
    values = [view.reports[(ALL, m)] for m in view.months]
    top = max([v for v in values if v is not None] or [1])
    width = 30
    bars = []
    for i, (month, value) in enumerate(zip(view.months, values, strict=True)):
        height = 0 if value is None else round(100 * value / top)
        bars.append(
            {
                "x": 10 + i * width,
                "y": 110 - height,
                "h": height,
                "month": month[5:],
                "value": value,
            }
        )
    return {"bars": bars, "width": 20 + width * len(bars), "bar": width - 6}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    if not any(rule.rule == "/" for rule in app.url_map.iter_rules()):
        app.add_url_rule("/", "public_home", lambda: redirect("/public/", code=302))
