"""What the monthly bulletin of an area holds, for its communal security council (CCS).

- reports received by category (the public pages' month cells) and by week: ISO weeks clipped
  to the month, protected in a cube of their own whose month totals are tied to the public
  pages' (a total shown there is known, one hidden there stays hidden), so that weeks and
  months together give nothing away;
- the open cases at the end of the month, by reference, with category, age, stakeholders and
  status: never a reporter, never a description;
- per stakeholder: entries received, the share taken in hand within the deadline and the median
  hours to it (only on at least the threshold of entries), escalations, open and late entries;
- perceived safety with its interval and change, as on the public pages.

The CCS works the cases; the references are there so that members can speak of them. Counts of
reports and answers go through :mod:`citoyen.services.publication` like everywhere else.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from citoyen.models import QueueEntry, Report, Stakeholder
from citoyen.services.publication.areas import UNSTATED, PublicArea
from citoyen.services.publication.figures import ALL, PublicFigures, month_of
from citoyen.services.publication.suppression import Hierarchy, protect
from citoyen.services.scorecards import scorecards
from citoyen.services.trial import real_reports

OPEN = ("new", "acknowledged", "in_progress")


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a ``YYYY-MM`` month in Bamako (UTC+0)."""
    year, mon = (int(x) for x in month.split("-"))
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = (
        datetime(year + 1, 1, 1, tzinfo=UTC)
        if mon == 12
        else datetime(year, mon + 1, 1, tzinfo=UTC)
    )
    return start, end


def week_of(moment: datetime) -> str:
    year, week, _ = moment.astimezone(UTC).isocalendar()
    return f"{year:04d}-W{week:02d}"


@dataclass(frozen=True)
class OpenCase:
    reference: str
    category: str
    age_days: int
    stakeholders: str
    status: str


@dataclass(frozen=True)
class StakeholderLine:
    name: str
    entries: int | None
    on_time: float | None
    median_ack_hours: float | None
    escalations: int
    open: int
    late: int


@dataclass(frozen=True)
class Bulletin:
    area: PublicArea
    path: list[PublicArea]
    month: str
    threshold: int
    categories: list[str]
    by_category: dict[str, int | None]  # category or * -> reports this month
    weeks: list[str]
    by_week: dict[str, int | None]
    open_cases: list[OpenCase]
    stakeholders: list[StakeholderLine]
    safety: list[tuple[str, list[tuple[str, dict[str, Any] | None]]]]  # survey, (month, cell)


def build(session: Session, fig: PublicFigures, code: str, month: str) -> Bulletin:
    """The bulletin of area ``code`` for ``month`` from the public figures ``fig`` (computed at
    or after the month's end) and the case files."""
    area = fig.tree.areas.get(code)
    if area is None or code.endswith(UNSTATED):
        raise KeyError(f"unknown area {code!r}")
    start, end = month_bounds(month)
    in_area = _area_test(fig, code)
    threshold = fig.threshold

    # Weeks: a cube (area x weeks under the month) tied to the public month cells.
    week_counts: Counter[tuple[str, str]] = Counter()
    reports = session.exec(
        select(Report.area_id, Report.created_at).where(
            Report.merged_into_id.is_(None),
            real_reports(),
            Report.created_at >= start,
            Report.created_at < end,
        )
    ).all()
    for area_id, created in reports:
        week_counts[(fig.tree.leaf(area_id), week_of(created))] += 1
    weeks = sorted({week_of(start + timedelta(days=d)) for d in range((end - start).days)})
    time = Hierarchy("time", {month: None, **dict.fromkeys(weeks, month)})
    areas = fig.reports.dims[0]
    week_cube = protect(
        week_counts,
        [areas, time],
        threshold,
        hide=[(a, month) for a in areas.values if fig.reports_count(a, month) is None],
        keep=[(a, month) for a in areas.values if fig.reports_count(a, month) is not None],
    )
    by_week = {w: week_cube.visible((code, w)) for w in weeks}
    by_category = {c: fig.reports_count(code, month, c) for c in [*fig.categories, ALL]}

    return Bulletin(
        area=area,
        path=fig.tree.path(code),
        month=month,
        threshold=threshold,
        categories=fig.categories,
        by_category=by_category,
        weeks=weeks,
        by_week=by_week,
        open_cases=_open_cases(session, in_area, end),
        stakeholders=_stakeholders(session, in_area, start, end, threshold),
        safety=[
            (
                t.survey,
                [(m, fig.safety_cell(t, code, m)) for m in _last_months(month, 3)],
            )
            for t in fig.safety
        ],
    )


def _last_months(month: str, n: int) -> list[str]:
    out = [month]
    while len(out) < n:
        year, mon = (int(x) for x in out[0].split("-"))
        out.insert(0, f"{year - 1:04d}-12" if mon == 1 else f"{year:04d}-{mon - 1:02d}")
    return out


def _area_test(fig: PublicFigures, code: str) -> Any:
    """Whether a stored area id lies in ``code`` (itself or below)."""
    dims = fig.reports.dims[0]

    def inside(area_id: int | None) -> bool:
        return code in dims.chain(fig.tree.leaf(area_id))

    return inside


def _open_cases(session: Session, in_area: Any, end: datetime) -> list[OpenCase]:
    rows = session.exec(
        select(
            Report.id,
            Report.reference,
            Report.category,
            Report.created_at,
            Report.status,
            Report.area_id,
        )
        .where(
            Report.merged_into_id.is_(None),
            real_reports(),
            Report.created_at < end,
            Report.status.in_(OPEN),
        )
        .order_by(Report.created_at)
    ).all()
    cases = [r for r in rows if in_area(r[5])]
    names: dict[int, list[str]] = {}
    if cases:
        for report_id, name in session.exec(
            select(QueueEntry.report_id, Stakeholder.name)
            .join(Stakeholder, Stakeholder.id == QueueEntry.stakeholder_id)
            .where(
                QueueEntry.report_id.in_([r[0] for r in cases]),
                QueueEntry.status.in_(("open", "acknowledged")),
            )
        ):
            names.setdefault(report_id, []).append(name)
    return [
        OpenCase(
            reference=ref,
            category=category or "none",
            age_days=(end - created).days,
            stakeholders=", ".join(sorted(names.get(rid, []))),
            status=status,
        )
        for rid, ref, category, created, status, _area in cases
    ]


def _stakeholders(
    session: Session, in_area: Any, start: datetime, end: datetime, threshold: int
) -> list[StakeholderLine]:
    """The scorecards of the entries for reports of the area; entries received go through the
    publication module, the share and median only on at least the threshold of entries."""
    cards = scorecards(session, start, end, area_filter=in_area)
    names = Hierarchy("stakeholder", {ALL: None, **{c.name: ALL for c in cards}})
    protected = protect({(c.name,): c.received for c in cards}, [names], threshold)
    out = []
    for c in cards:
        n = protected.visible((c.name,))
        out.append(
            StakeholderLine(
                name=c.name,
                entries=n,
                on_time=c.on_time_share if n is not None and c.decided >= threshold else None,
                median_ack_hours=(
                    c.median_ack_hours if n is not None and len(c.ack_hours) >= threshold else None
                ),
                escalations=c.escalations,
                open=c.open,
                late=c.late,
            )
        )
    return out


__all__ = ["Bulletin", "build", "month_bounds", "month_of"]
