"""Suggesting reports that may be about the same event (merging is in status.py)."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from citoyen.models import Area, Report
from citoyen.services.areas.trees import database_area_tree
from citoyen.services.queues.config import Router, router_for
from citoyen.services.queues.routes import area_code
from citoyen.services.trial import real_reports


def suggest_duplicates(
    session: Session,
    report: Report,
    *,
    window: timedelta | None = None,
    router: Router | None = None,
    limit: int = 10,
) -> list[Report]:
    """Reports that may be about the same event: same category, same commune (quartiers
    included), created within ``window`` (routing.yaml ``duplicates.window``) before or after,
    not closed and not merged. Closest in time first. A report without category or place has
    no suggestions: too little to compare."""
    if report.category is None or report.area_id is None:
        return []
    if window is None:
        window = timedelta(seconds=(router or router_for(session)).config.duplicate_window)
    tree = database_area_tree(session)
    code = area_code(session, report.area_id)
    commune = tree.commune_of(code) or code
    codes = [a.code for a in tree if commune in tree.ancestors(a.code)] or [code]
    area_ids = session.exec(select(Area.id).where(Area.code.in_(codes))).all()
    rows = session.exec(
        select(Report).where(
            Report.id != report.id,
            Report.category == report.category,
            Report.area_id.in_(area_ids),
            Report.merged_into_id.is_(None),
            Report.status != "closed",
            Report.created_at >= report.created_at - window,
            Report.created_at <= report.created_at + window,
            real_reports(),
        )
    ).all()
    rows = sorted(
        rows, key=lambda r: (abs((r.created_at - report.created_at).total_seconds()), r.id)
    )
    return rows[:limit]
