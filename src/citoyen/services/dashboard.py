"""The numbers behind the admin dashboard: reports per category, region and week, SLA
compliance, and perceived safety from surveys.

Everything here is a count, so the same figures serve every role; what changes is which reports
are counted. Administrators and analysts count every report (analysts see aggregates only, which
is what this is); coordinators and agents count the reports that have an entry in one of their
queues (:func:`citoyen.services.access.visible_stakeholders`), so the dashboard never tells a
stakeholder about work outside its scope.

The window is the last :data:`WEEKS` weeks, weeks starting on Monday 00:00 in Bamako (UTC+0 all
year, so UTC weeks), the current week included: one window for every chart, so the totals agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, or_
from sqlmodel import Session, func, select

from citoyen.models import Area, QueueEntry, Report
from citoyen.services.access import Staff, visible_stakeholders
from citoyen.services.trial import real_reports

WEEKS = 12
# Roles whose dashboard counts every report: the analyst's job is the whole picture, in counts.
WHOLE_PICTURE_ROLES = frozenset({"admin", "analyst"})
# The window has no end (a report dated ahead by a wrong clock still counts); this stands for it.
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Count:
    """One bar: a code (category code, region code, ISO date of a Monday) and its count."""

    key: str
    count: int


@dataclass(frozen=True)
class SlaWeek:
    """Queue entries created in the week whose deadline outcome is known, and how many were
    taken in hand (or closed) no later than their deadline. ``share`` is None when none is due."""

    week: str
    decided: int
    on_time: int

    @property
    def share(self) -> float | None:
        return round(self.on_time / self.decided, 3) if self.decided else None


@dataclass(frozen=True)
class SafetyPoint:
    """One cell of a perceived-safety series (share of respondents feeling safe)."""

    survey: str
    area: str
    period: str
    n: int | None  # None, like the share, when the cell is suppressed
    share: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Dashboard:
    start: datetime
    weeks: list[str]  # ISO dates of the Mondays of the window, oldest first
    total: int
    by_category: list[Count]
    by_region: list[Count]
    by_week: list[Count]
    sla: list[SlaWeek]
    safety: list[SafetyPoint] = field(default_factory=list)


def window_start(now: datetime, weeks: int = WEEKS) -> datetime:
    """Monday 00:00 UTC of the oldest week of the window ending with ``now``'s week."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    monday = today - timedelta(days=today.weekday())
    return monday - timedelta(weeks=weeks - 1)


def report_scope(session: Session, staff: Staff) -> set[int] | None:
    """Stakeholder ids whose reports ``staff`` counts; None means every report."""
    if staff.role in WHOLE_PICTURE_ROLES:
        return None
    return visible_stakeholders(session, staff)


def _scoped_reports(stmt: Any, scope: set[int] | None, start: datetime) -> Any:
    """``stmt`` over reports, limited to those with an entry in one of ``scope``'s queues.

    Only the queues' entries made since ``start`` are looked up: an entry is made when its
    report is routed, never before the report, so a report of the window has its entries there.
    """
    if scope is None:
        return stmt
    in_queues = select(QueueEntry.report_id).where(
        QueueEntry.stakeholder_id.in_(sorted(scope)), QueueEntry.created_at >= start
    )
    return stmt.where(Report.id.in_(in_queues))


def _week_of(column: Any, start: datetime, weeks: int = WEEKS) -> Any:
    """SQL for the week of the window ``column`` falls in (0 = oldest), ``weeks`` past its end.

    A chain of comparisons rather than date arithmetic, which differs per database; rows before
    ``start`` are filtered out by the caller."""
    return case(*((column < start + timedelta(weeks=i + 1), i) for i in range(weeks)), else_=weeks)


def region_codes(session: Session) -> dict[int, str]:
    """Area id -> code of its top-level area (region or the Bamako district), from one read of
    the area tree instead of one query per area and ancestor."""
    parents: dict[int, tuple[int | None, str]] = {
        area_id: (parent_id, code)
        for area_id, parent_id, code in session.exec(select(Area.id, Area.parent_id, Area.code))
    }
    out: dict[int, str] = {}
    for area_id in parents:
        current: int | None = area_id
        top = ""
        # Bounded like areas.area_path: a corrupt cycle must not hang.
        for _depth in range(10):
            if current is None or current not in parents:
                break
            parent_id, top = parents[current]
            current = parent_id
        out[area_id] = top
    return out


def build(session: Session, staff: Staff, now: datetime | None = None) -> Dashboard:
    """The dashboard of ``staff`` at ``now`` (counts only: no reference, alias or text).

    Every figure is one grouped query over the window's rows (the indexes of migration 0008
    cover them): with a million reports the window holds tens of thousands, which are counted
    by the database, never loaded here.
    """
    now = now or datetime.now(UTC)
    start = window_start(now)
    mondays = [start + timedelta(weeks=i) for i in range(WEEKS)]
    weeks = [m.date().isoformat() for m in mondays]
    scope = report_scope(session, staff)
    if scope is not None and not scope:
        empty = [Count(w, 0) for w in weeks]
        return Dashboard(start, weeks, 0, [], [], empty, [SlaWeek(w, 0, 0) for w in weeks])

    # Bounded on both sides so SQLite reads the window's range of ix_reports_window (its planner
    # rates a one-sided range as a quarter of the table and scans another index instead).
    # Reports of staff's test conversations never count (services/trial.py).
    in_window = and_(Report.created_at.between(start, FAR_FUTURE), real_reports())
    week = _week_of(Report.created_at, start)
    per_category: Counter[str] = Counter()
    per_week: Counter[int] = Counter()
    for code, week_index, n in session.exec(
        _scoped_reports(
            select(Report.category, week, func.count())
            .where(in_window)
            .group_by(Report.category, week),
            scope,
            start,
        )
    ).all():
        per_category[code or ""] += n
        per_week[week_index] += n
    by_area = session.exec(
        _scoped_reports(
            select(Report.area_id, func.count()).where(in_window).group_by(Report.area_id),
            scope,
            start,
        )
    ).all()
    regions: Counter[str] = Counter()
    tops = region_codes(session) if by_area else {}
    for area_id, n in by_area:
        regions[tops.get(area_id, "") if area_id is not None else ""] += n

    sla = _sla(session, scope, start, weeks, now)
    categories = sorted(
        (Count(code, n) for code, n in per_category.items()), key=lambda c: (-c.count, c.key)
    )
    return Dashboard(
        start=start,
        weeks=weeks,
        total=sum(c.count for c in categories),
        by_category=categories,
        by_region=sorted(
            (Count(code, n) for code, n in regions.items()), key=lambda c: (-c.count, c.key)
        ),
        by_week=[Count(w, per_week.get(i, 0)) for i, w in enumerate(weeks)],
        sla=sla,
    )


def _sla(
    session: Session, scope: set[int] | None, start: datetime, weeks: Sequence[str], now: datetime
) -> list[SlaWeek]:
    """Per week of creation, queue entries met or missed against their deadline.

    An entry counts once its outcome is known: it was taken in hand (``acknowledged_at``) or
    closed, or its deadline passed. It is on time when taken in hand or closed no later than
    ``due_at`` (the earlier of the two is, if either is). Declined entries are left out: the
    report went to another queue, whose entry counts instead. For coordinators and agents, only
    entries of their own queues count.
    """
    acknowledged, closed, due = QueueEntry.acknowledged_at, QueueEntry.closed_at, QueueEntry.due_at
    handled = or_(acknowledged.is_not(None), closed.is_not(None))
    on_time = or_(
        and_(acknowledged.is_not(None), acknowledged <= due),
        and_(closed.is_not(None), closed <= due),
    )
    week = _week_of(QueueEntry.created_at, start, len(weeks))
    stmt = (
        select(week, func.count(), func.sum(case((on_time, 1), else_=0)))
        .where(
            QueueEntry.created_at.between(start, FAR_FUTURE),
            QueueEntry.status != "declined",
            or_(handled, due <= now),
        )
        .group_by(week)
    )
    if scope is not None:
        stmt = stmt.where(QueueEntry.stakeholder_id.in_(sorted(scope)))
    counts = {i: (decided, met or 0) for i, decided, met in session.exec(stmt).all()}
    return [SlaWeek(w, *counts.get(i, (0, 0))) for i, w in enumerate(weeks)]


# --- perceived safety -------------------------------------------------------------------------


def perceived_safety(session: Session, runtime: Any) -> list[SafetyPoint]:
    """The perceived-safety series of every survey of ``flows/surveys/``, per region and month
    (empty while no survey has results: the dashboard then says so)."""
    from citoyen.services.surveys import indicators, load_surveys

    return _safety_points(session, runtime, indicators, load_surveys)


def _safety_points(
    session: Session, runtime: Any, indicators: Any, load_surveys: Any
) -> list[SafetyPoint]:
    """The published cells (:mod:`citoyen.services.publication.safety`) of each survey: a
    suppressed cell shows no n and no share, like everywhere else."""
    from citoyen.services.publication.safety import published_series

    points: list[SafetyPoint] = []
    for name, survey in sorted(load_surveys(runtime.settings.flows_dir).surveys.items()):
        for cell in published_series(
            session,
            survey,
            "region",
            "month",
            floor=runtime.settings.publication_min_count,
        ):
            points.append(
                SafetyPoint(
                    survey=name,
                    area=cell.area_name,
                    period=cell.period,
                    n=cell.n,
                    share=cell.share,
                    low=cell.low,
                    high=cell.high,
                )
            )
    return points
