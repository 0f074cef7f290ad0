"""The queue list: what is waiting for the signed-in user, most pressing first."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required

from citoyen.engine.textnorm import whole_number
from citoyen.models import Area
from citoyen.routing import STATUSES, URGENCIES
from citoyen.services.access import visible_stakeholders
from citoyen.services.areas.labels import areas_of_levels
from citoyen.services.queues.config import router_for
from citoyen.services.queues.listing import (
    AGES,
    OPEN_STATUSES,
    FilterError,
    QueueFilter,
    queue_page,
)
from citoyen.services.queues.stakeholders import stakeholders_by_name
from citoyen.web.admin import bp, reading, staff
from citoyen.web.admin.labels import refusal_words


def _filter_from_args(categories: tuple[str, ...]) -> QueueFilter:
    args = request.args
    statuses = tuple(s for s in args.getlist("status") if s) or OPEN_STATUSES
    if args.get("status") == "all":
        statuses = STATUSES
    area = args.get("area") or None
    holder = args.get("stakeholder") or None
    for value in (area, holder):
        if value is not None and whole_number(value) is None:
            raise FilterError("invalid filter value", "filter_value")
    return QueueFilter(
        statuses=statuses,
        category=args.get("category") or None,
        urgency=args.get("urgency") or None,
        area_id=int(area) if area else None,
        age=args.get("age") or None,
        stakeholder_id=int(holder) if holder else None,
        overdue=args.get("overdue") == "1",
    ).validate(categories)


@bp.get("/")
@login_required
def queues():  # type: ignore[no-untyped-def]
    me = staff()
    if me.role == "reviewer":  # works on texts only
        return redirect(url_for("admin.texts"))
    if not me.does_casework:
        return redirect(url_for("admin.dashboard"))
    with reading() as s:
        router = router_for(s)
        categories = tuple(router.config.categories)
        args = request.args.to_dict(flat=False)
        args.pop("after", None)
        refused = False
        try:
            flt = _filter_from_args(categories)
        except FilterError as exc:  # a hand-made or stale link: the open queue, unfiltered
            flash(_("Filter not applied: %(reason)s", reason=refusal_words(exc)), "error")
            refused, flt, args = True, QueueFilter(), {}
        try:
            page = queue_page(
                s, me, flt, cursor=None if refused else (request.args.get("after") or None)
            )
        except FilterError as exc:  # a damaged "next page" link: its first page
            flash(refusal_words(exc), "error")
            refused, page = True, queue_page(s, me, flt)
        scope = visible_stakeholders(s, me)
        holders = [h for h in stakeholders_by_name(s) if scope is None or h.id in scope]
        regions = areas_of_levels(s, ("region", "district"))
        area_name = (
            s.get(Area, flt.area_id).name if flt.area_id and s.get(Area, flt.area_id) else None
        )
        labels = {c: router.catalog.text(f"report.category.{c}", "fr") for c in categories}
    html = render_template(
        "admin/queues.html",
        page=page,
        flt=flt,
        statuses=STATUSES,
        urgencies=URGENCIES,
        categories=categories,
        category_labels=labels,
        ages=tuple(AGES),
        stakeholders=holders,
        regions=regions,
        area_name=area_name,
        args=args,
    )
    return (html, 400) if refused else html
