"""The dashboard: reports per category, region and week, SLA compliance, perceived safety.

Every role may open it; :mod:`citoyen.services.dashboard` decides which reports each one counts.
The page carries its numbers twice: as a JSON data block (``<script type="application/json">``,
never executed, so the ``default-src 'self'`` policy holds) that ``static/admin/dashboard.js``
draws with the vendored Chart.js, and as plain tables under each chart, for screen readers and
for browsers without JavaScript.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from flask import render_template
from flask_babel import gettext as _
from flask_login import login_required

from citoyen.services import dashboard as service
from citoyen.services.areas.labels import names_by_code
from citoyen.web.admin import bp, reading, runtime, staff
from citoyen.web.admin.labels import category_label


def chart_data(board: service.Dashboard, region_names: dict[str, str]) -> dict[str, Any]:
    """What dashboard.js draws: per chart, the keys (codes), their labels and the values."""

    def bars(counts: list[service.Count], label: Any) -> dict[str, Any]:
        return {
            "keys": [c.key for c in counts],
            "labels": [label(c.key) for c in counts],
            "values": [c.count for c in counts],
        }

    return {
        "category": bars(board.by_category, lambda k: category_label(k) if k else _("No category")),
        "region": bars(board.by_region, lambda k: region_names.get(k, k) or _("No place given")),
        "week": bars(board.by_week, lambda k: k),
        "sla": {
            "keys": [w.week for w in board.sla],
            "labels": [w.week for w in board.sla],
            "values": [None if w.share is None else round(w.share * 100, 1) for w in board.sla],
            "decided": [w.decided for w in board.sla],
            "on_time": [w.on_time for w in board.sla],
        },
        "safety": [
            {
                "survey": p.survey,
                "area": p.area,
                "period": p.period,
                "n": p.n,
                "share": None if p.share is None else round(p.share * 100, 1),
                "low": None if p.low is None else round(p.low * 100, 1),
                "high": None if p.high is None else round(p.high * 100, 1),
            }
            for p in board.safety
        ],
        "titles": {
            "reports": _("Reports"),
            "sla": _("Taken in hand on time (%)"),
            "safety": _("Feeling safe (%)"),
        },
    }


@bp.get("/dashboard")
@login_required
def dashboard():  # type: ignore[no-untyped-def]
    me = staff()
    now = datetime.now(UTC)
    with reading() as s:
        board = service.build(s, me, now)
        board = replace(board, safety=service.perceived_safety(s, runtime()))
        names = names_by_code(s, [c.key for c in board.by_region])
    data = chart_data(board, names)
    return render_template(
        "admin/dashboard.html",
        board=board,
        data=data,
        whole_picture=me.role in service.WHOLE_PICTURE_ROLES,
    )
