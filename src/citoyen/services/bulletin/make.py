"""One bulletin, from the database to PDF bytes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from citoyen.services.bulletin import contents, render
from citoyen.services.publication.figures import compute


def make_pdf(
    runtime: Any, code: str, month: str, *, language: str = "fr", now: datetime | None = None
) -> bytes:
    """The PDF of ``code``'s bulletin for ``month``; KeyError for an unknown area.

    The public figures are computed at ``now`` (default: now, or the month's end if that is
    later), as the public pages compute them, so the bulletin's month cells are theirs."""
    _, end = contents.month_bounds(month)
    at = now or max(end, datetime.now(UTC))
    with Session(runtime.engine) as session:
        figures = compute(session, runtime, at)
        bulletin = contents.build(session, figures, code, month)
    return render.pdf(render.html(bulletin, runtime.bundle.catalog, language))
