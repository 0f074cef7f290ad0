"""The bulletin as HTML and PDF.

HTML from a Jinja template beside this module (texts from ``locales/``: ``bulletin.*`` keys,
French by default), charts as inline SVG; the PDF is typeset by WeasyPrint, imported only here
and only when a PDF is asked for: it needs the Pango library of the system, and the rest of the
service runs without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from citoyen.services.bulletin.contents import Bulletin
from citoyen.services.publication.texts import texts

TEMPLATES = Path(__file__).with_name("templates")


class PdfUnavailable(RuntimeError):
    """WeasyPrint or its system libraries are missing."""


def html(bulletin: Bulletin, catalog: Any, lang: str = "fr") -> str:
    t, category, _kind = texts(catalog, lang)
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape())
    values = [v for v in bulletin.by_week.values() if v is not None]
    top = max(values or [1])
    bars = [
        {"x": 10 + i * 60, "h": 0 if v is None else round(100 * v / top), "week": w[5:], "value": v}
        for i, (w, v) in enumerate(bulletin.by_week.items())
    ]
    return env.get_template("bulletin.html").render(
        b=bulletin, t=t, category=category, lang=lang, bars=bars, width=20 + 60 * len(bars)
    )


def pdf(document: str) -> bytes:
    """The PDF of an HTML document; :class:`PdfUnavailable` says what to install."""
    try:
        from weasyprint import HTML
    except ImportError as exc:  # the package, or Pango (OSError subclasses are caught below)
        raise PdfUnavailable(
            "the bulletin needs WeasyPrint: pip install weasyprint "
            f"(and the Pango library: apt-get install libpango-1.0-0 libpangoft2-1.0-0) ({exc})"
        ) from exc
    except OSError as exc:
        raise PdfUnavailable(
            "WeasyPrint cannot load the Pango library: apt-get install libpango-1.0-0 "
            f"libpangoft2-1.0-0 ({exc})"
        ) from exc
    return HTML(string=document).write_pdf()
