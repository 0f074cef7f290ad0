"""The dashboard's grouped queries count exactly what a plain walk over the rows counts.

``services.dashboard.build`` lets the database group the window's reports and queue entries;
here the same figures are computed the obvious way (every row read, regions by walking up the
area tree, weeks by date arithmetic) on a mix made to hit the edges: weeks at both ends of the
window, a report dated ahead (a wrong clock), one without a place, entries acknowledged or
closed before or after their deadline, declined ones, and open ones before and after it.
Each runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.models import QueueEntry, Report
from citoyen.runtime import Runtime
from citoyen.services import dashboard
from citoyen.services.access import Staff
from citoyen.services.areas.labels import area_path, get_area
from citoyen.services.users import create_user
from tests.routing.support import make_report

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # a Wednesday
START = dashboard.window_start(NOW)


def reference(rt: Runtime, staff: Staff) -> dashboard.Dashboard:
    """The figures from every row, read one by one."""
    with Session(rt.engine) as s:
        scope = dashboard.report_scope(s, staff)
        entries = s.exec(select(QueueEntry)).all()
        ids = {e.report_id for e in entries if scope is None or e.stakeholder_id in scope}
        reports = [r for r in s.exec(select(Report)).all() if r.created_at >= START and r.id in ids]
        categories = Counter(r.category or "" for r in reports)
        regions = Counter(
            area_path(s, get_area(s, r.area_id))[0].code if r.area_id else "" for r in reports
        )
        weeks = Counter((r.created_at - START).days // 7 for r in reports)
        decided: Counter[int] = Counter()
        on_time: Counter[int] = Counter()
        for e in entries:
            if e.created_at < START or e.status == "declined":
                continue
            if scope is not None and e.stakeholder_id not in scope:
                continue
            done = [t for t in (e.acknowledged_at, e.closed_at) if t is not None]
            if not done and e.due_at > NOW:
                continue
            week = (e.created_at - START).days // 7
            decided[week] += 1
            on_time[week] += bool(done) and min(done) <= e.due_at
    labels = [(START + timedelta(weeks=i)).date().isoformat() for i in range(dashboard.WEEKS)]
    return dashboard.Dashboard(
        start=START,
        weeks=labels,
        total=len(reports),
        by_category=sorted(
            (dashboard.Count(k, n) for k, n in categories.items()), key=lambda c: (-c.count, c.key)
        ),
        by_region=sorted(
            (dashboard.Count(k, n) for k, n in regions.items()), key=lambda c: (-c.count, c.key)
        ),
        by_week=[dashboard.Count(w, weeks.get(i, 0)) for i, w in enumerate(labels)],
        sla=[dashboard.SlaWeek(w, decided[i], on_time[i]) for i, w in enumerate(labels)],
    )


def fill(rt: Runtime) -> None:
    made = [
        make_report(rt, category="theft", area="ML-BKO.commune-iv", now=START),  # first instant
        make_report(rt, category="theft", area="ML-4.segou.segou", now=START - timedelta(hours=1)),
        make_report(rt, category="disaster", area="ML-BKO.commune-i", now=NOW),
        make_report(rt, category="violence", area=None, now=NOW - timedelta(days=20)),
        make_report(rt, category=None, area="ML-BKO.commune-iv", now=NOW - timedelta(weeks=5)),
        make_report(rt, category="theft", area="ML-BKO.commune-iv", now=NOW + timedelta(weeks=2)),
        make_report(
            rt, category="conflict", area="ML-4.segou.segou", now=START + timedelta(weeks=11)
        ),
    ]
    with write_session(rt.engine) as s:
        entries = s.exec(select(QueueEntry).order_by(QueueEntry.id)).all()
        assert len(entries) >= len(made)
        # Outcomes, cycling: acknowledged in time, acknowledged late, closed in time, closed
        # late after a late acknowledgement, declined, open past its deadline, open.
        for i, entry in enumerate(entries):
            kind = i % 7
            if kind == 0:
                entry.acknowledged_at = entry.due_at - timedelta(minutes=1)
            elif kind == 1:
                entry.acknowledged_at = entry.due_at + timedelta(minutes=1)
            elif kind == 2:
                entry.closed_at = entry.due_at
            elif kind == 3:
                entry.acknowledged_at = entry.due_at + timedelta(hours=1)
                entry.closed_at = entry.due_at - timedelta(hours=1)
            elif kind == 4:
                entry.status = "declined"
            elif kind == 5:
                entry.due_at = NOW - timedelta(seconds=1)
            s.add(entry)


def test_grouped_counts_equal_a_walk_over_every_row(rt: Runtime) -> None:
    fill(rt)
    with write_session(rt.engine) as s:
        users = {
            "admin": create_user(s, "a@example.org", "admin", "a-long-password-1"),
            "analyst": create_user(s, "b@example.org", "analyst", "a-long-password-1"),
            "coordinator": create_user(
                s, "c@example.org", "coordinator", "a-long-password-1", area_code="ML-BKO"
            ),
            "agent": create_user(
                s, "d@example.org", "agent", "a-long-password-1", stakeholder_code="bko-police-c4"
            ),
        }
        s.flush()
        staff = {role: Staff.of(user) for role, user in users.items()}
    for role, who in staff.items():
        with Session(rt.engine) as s:
            board = dashboard.build(s, who, NOW)
        expected = reference(rt, who)
        assert board == expected, role
        if role == "admin":
            assert board.total == 6  # the one dated ahead counts, outside every week
            assert sum(c.count for c in board.by_week) == 5
            assert dashboard.Count("", 1) in board.by_region
            assert sum(w.decided for w in board.sla) > 0
