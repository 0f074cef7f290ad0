"""Stakeholder scorecards and the kept CCS bulletins, in the admin.

``/admin/scorecards?month=YYYY-MM``: per stakeholder of the user's scope, the month's entries,
on-time share, median times, escalations, open and late entries
(:mod:`citoyen.services.scorecards`). ``/admin/bulletins``: the bulletins the worker made for
the areas the user's scope covers, and their PDFs (404 outside the scope, like reports).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from flask import abort, render_template, request, send_file
from flask_login import login_required

from citoyen.services.access import visible_stakeholders
from citoyen.services.bulletin.access import kept_bulletin, kept_bulletins
from citoyen.services.bulletin.contents import month_bounds
from citoyen.services.bulletin.jobs import previous_month
from citoyen.services.dashboard import WHOLE_PICTURE_ROLES
from citoyen.services.scorecards import scorecards as build_scorecards
from citoyen.web.admin import bp, reading, runtime, staff


@bp.get("/scorecards")
@login_required
def scorecards():  # type: ignore[no-untyped-def]
    me = staff()
    month = request.args.get("month") or previous_month(datetime.now(UTC))
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        abort(400)
    start, end = month_bounds(month)
    with reading() as s:
        scope = None if me.role in WHOLE_PICTURE_ROLES else visible_stakeholders(s, me)
        cards = build_scorecards(s, start, end, stakeholders=scope) if scope != set() else []
    return render_template("admin/scorecards.html", cards=cards, month=month)


@bp.get("/bulletins")
@login_required
def bulletins():  # type: ignore[no-untyped-def]
    me = staff()
    with reading() as s:
        rows = kept_bulletins(s, me)
    return render_template("admin/bulletins.html", rows=rows)


@bp.get("/bulletins/<int:bulletin_id>.pdf")
@login_required
def bulletin_pdf(bulletin_id: int):  # type: ignore[no-untyped-def]
    me = staff()
    with reading() as s:
        row = kept_bulletin(s, me, bulletin_id)
    if row is None:
        abort(404)
    path = runtime().settings.instance_dir / "bulletins" / (row.file_name or "")
    if not path.is_file():
        abort(404)
    return send_file(
        path,
        mimetype="application/pdf",
        as_attachment=True,
        download_name=f"bulletin-{row.area_code}-{row.month}.pdf",
    )
