"""Stakeholder scorecards: per stakeholder and month, who answers and who does not.

For each stakeholder, over the queue entries of a month (declined entries left out: the report
went elsewhere): entries received, those whose outcome is known (taken in hand, closed, or past
the deadline by the month's end) and of them those taken in hand or closed no later than the
deadline, the median hours to being taken in hand and to being closed, escalations (entries
that arrived by escalation), and at the month's end the entries still open and those of them
never taken in hand although their deadline had passed (late).

The admin shows them to staff (counts about the stakeholders' work, not about reporters, for
stakeholders in the user's scope); the CCS bulletin shows them through the publication module.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, select

from citoyen.models import QueueEntry, Stakeholder


@dataclass
class Scorecard:
    stakeholder_id: int
    name: str
    kind: str
    received: int = 0
    decided: int = 0
    on_time: int = 0
    escalations: int = 0
    open: int = 0
    late: int = 0
    ack_hours: list[float] = field(default_factory=list)
    close_hours: list[float] = field(default_factory=list)

    @property
    def on_time_share(self) -> float | None:
        return self.on_time / self.decided if self.decided else None

    @property
    def median_ack_hours(self) -> float | None:
        return round(statistics.median(self.ack_hours), 1) if self.ack_hours else None

    @property
    def median_close_hours(self) -> float | None:
        return round(statistics.median(self.close_hours), 1) if self.close_hours else None


def scorecards(
    session: Session,
    start: datetime,
    end: datetime,
    *,
    stakeholders: set[int] | None = None,
    area_filter: Callable[[int | None], bool] | None = None,
) -> list[Scorecard]:
    """The scorecards of [start, end) for ``stakeholders`` (None: all), counting only entries
    whose report's area passes ``area_filter`` (None: all), sorted by name."""
    stmt = (
        select(
            Stakeholder.id,
            Stakeholder.name,
            Stakeholder.kind,
            QueueEntry.area_id,
            QueueEntry.created_at,
            QueueEntry.due_at,
            QueueEntry.acknowledged_at,
            QueueEntry.closed_at,
            QueueEntry.via,
        )
        .join(Stakeholder, Stakeholder.id == QueueEntry.stakeholder_id)
        .where(QueueEntry.created_at < end, QueueEntry.status != "declined")
    )
    if stakeholders is not None:
        stmt = stmt.where(QueueEntry.stakeholder_id.in_(sorted(stakeholders)))
    cards: dict[int, Scorecard] = {}
    for sid, name, kind, area_id, created, due, acked, closed, via in session.exec(stmt).all():
        if area_filter is not None and not area_filter(area_id):
            continue
        card = cards.setdefault(sid, Scorecard(sid, name, kind))
        if created >= start:
            card.received += 1
            card.escalations += via == "escalation"
            if acked is not None or closed is not None or due < end:
                card.decided += 1
                card.on_time += (acked is not None and acked <= due) or (
                    closed is not None and closed <= due
                )
            if acked is not None:
                card.ack_hours.append((acked - created).total_seconds() / 3600)
            if closed is not None:
                card.close_hours.append((closed - created).total_seconds() / 3600)
        if closed is None or closed >= end:  # still open at the month's end
            card.open += 1
            card.late += (acked is None or acked >= end) and due < end
    return sorted(cards.values(), key=lambda c: c.name)
