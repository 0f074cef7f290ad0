"""CSV/JSON export of reports, as the signed-in user's role allows.

What each role gets is decided by :func:`citoyen.services.reports.export_for`: administrators
the same rows as ``citoyen reports export``, coordinators and agents the reports of their
queues, analysts an anonymised form. The file is streamed in pieces from one read transaction,
so a large export neither fills the web worker's memory nor times out before the first byte.
Every export leaves an audit event (action ``export``: format, rows, role), written when the
stream ends, with the number of rows actually sent (``complete`` is false when the download was
cut short).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from flask import Response, render_template, stream_with_context
from flask_login import login_required

from citoyen.services import casework
from citoyen.services.reports import ANONYMISED_FIELDS, EXPORT_FIELDS, export_chunks, export_for
from citoyen.web.admin import bp, reading, staff, writing

MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


@bp.get("/export")
@login_required
def export_page():  # type: ignore[no-untyped-def]
    me = staff()
    fields = ANONYMISED_FIELDS if me.role == "analyst" else EXPORT_FIELDS
    return render_template("admin/export.html", fields=fields, role=me.role)


def _download(fmt: str) -> Response:
    me = staff()
    now = datetime.now(UTC)

    def generate() -> Iterator[str]:
        counted = {"rows": 0}
        complete = False
        try:
            with reading() as s:
                fields, rows = export_for(s, me)

                def tally() -> Iterator[dict[str, object]]:
                    for row in rows:
                        counted["rows"] += 1
                        yield row

                yield from export_chunks(tally(), fmt, fields)
            complete = True
        finally:
            with writing() as s:
                casework.audit(
                    s,
                    me,
                    "export",
                    data={
                        "format": fmt,
                        "rows": counted["rows"],
                        "role": me.role,
                        "complete": complete,
                    },
                    now=now,
                )

    name = f"citoyen-reports-{now:%Y%m%d-%H%M}.{fmt}"
    response = Response(stream_with_context(generate()), mimetype=MEDIA_TYPES[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/export.csv")
@login_required
def export_csv():  # type: ignore[no-untyped-def]
    return _download("csv")


@bp.get("/export.json")
@login_required
def export_json():  # type: ignore[no-untyped-def]
    return _download("json")
