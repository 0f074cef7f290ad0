"""Escalation: queue entries nobody acknowledged within their SLA go up their chain.

A worker job (:func:`scheduled_jobs`) runs :func:`escalate_overdue`; every function takes
``now``, so tests drive a fake clock.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, select

from citoyen.models import QueueEntry, Report, ReportEvent, Stakeholder
from citoyen.routing import AreaTree, next_escalation, texts
from citoyen.services.areas.trees import database_area_tree
from citoyen.services.queues.config import Router, install, router_for
from citoyen.services.queues.routes import (
    OPEN_ENTRY,
    add_entry,
    alert_on_call,
    area_code,
    involved_codes,
)
from citoyen.services.queues.stakeholders import stakeholder_row

log = logging.getLogger(__name__)


ESCALATION_BATCH = 200  # overdue entries handled per run (the rest in the next run)


def escalate_due(
    session: Session, *, now: datetime, router: Router | None = None, limit: int = ESCALATION_BATCH
) -> list[QueueEntry]:
    """Escalate every open entry past its deadline; returns the entries opened.

    Each overdue entry is escalated once (``escalated_at``): the next step of its chain gets a
    new entry (its own SLA from now), a timeline event and an alert to its on-call addresses;
    the overdue stakeholder keeps its entry and can still acknowledge. A chain with no step
    left records an ``overdue`` event instead, so the admin shows it.
    """
    router = router or router_for(session)
    overdue = session.exec(
        select(QueueEntry)
        .where(
            QueueEntry.status == "open",
            QueueEntry.escalated_at.is_(None),
            QueueEntry.due_at <= now,
        )
        .order_by(QueueEntry.due_at, QueueEntry.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not overdue:
        return []
    tree = database_area_tree(session)
    opened: list[QueueEntry] = []
    for entry in overdue:
        entry.escalated_at = now
        entry.updated_at = now
        report = session.get(Report, entry.report_id)
        late = session.get(Stakeholder, entry.stakeholder_id)
        if report is None or late is None or report.status in ("resolved", "closed"):
            continue
        opened += _escalate(session, router, tree, report, entry, late, now=now)
    session.flush()
    return opened


def _escalate(
    session: Session,
    router: Router,
    tree: AreaTree,
    report: Report,
    entry: QueueEntry,
    late: Stakeholder,
    *,
    now: datetime,
) -> list[QueueEntry]:
    """Escalate one overdue entry (see :func:`escalate_due`).

    When the next step's stakeholders are already on the report (another entry escalated to
    them, or the rule named them), nothing is opened: their own entries have their own
    deadlines. The miss is still recorded as an ``overdue`` event.
    """
    config = router.config
    step = next_escalation(
        config,
        tree,
        chain=entry.chain,
        level=entry.escalation_level,
        area=area_code(session, report.area_id),
        late_kind=late.kind,
        late_area=area_code(session, late.area_id),
        exclude=_lineage_codes(session, entry) | involved_codes(session, report, ("declined",)),
    )
    holding = involved_codes(session, report, OPEN_ENTRY)
    new_codes = [c for c in step.stakeholders if c not in holding] if step else []
    if not new_codes:
        already = [c for c in step.stakeholders if c in holding] if step else []
        session.add(
            ReportEvent(
                report_id=report.id,
                kind="overdue",
                stakeholder_id=late.id,
                # No note: the admin words the event in the staff's language from its data.
                data={
                    "stakeholder": late.code,
                    "level": entry.escalation_level,
                    "already_with": already,
                },
                created_at=now,
            )
        )
        return []
    assert step is not None
    opened = []
    for code in new_codes:
        target = stakeholder_row(session, config, code)
        if target is None:
            continue
        new = add_entry(
            session,
            report,
            target,
            config,
            via="escalation",
            level=step.level,
            chain=entry.chain,
            escalated_from=entry,
            now=now,
        )
        if new is None:
            continue
        alerts = alert_on_call(
            session,
            router,
            report,
            target,
            key=texts.ALERT_ESCALATED,
            purpose=f"escalated:{new.id}",
            due_at=new.due_at,
            now=now,
        )
        session.add(
            ReportEvent(
                report_id=report.id,
                kind="escalated",
                stakeholder_id=target.id,
                data={
                    "stakeholder": target.code,
                    "from": late.code,
                    "from_name": late.name,
                    "level": step.level,
                    "due_at": new.due_at.isoformat(),
                    "alerts": alerts,
                },
                created_at=now,
            )
        )
        opened.append(new)
    return opened


def _lineage_codes(session: Session, entry: QueueEntry) -> set[str]:
    """The stakeholders of this entry and of the entries it was escalated from."""
    codes: set[str] = set()
    current: QueueEntry | None = entry
    for _ in range(50):  # bounded: a corrupt loop must not hang the worker
        if current is None:
            break
        stakeholder = session.get(Stakeholder, current.stakeholder_id)
        if stakeholder is not None:
            codes.add(stakeholder.code)
        parent = current.escalated_from_id
        current = session.get(QueueEntry, parent) if parent is not None else None
    return codes


def escalate_overdue(runtime: Any, now: datetime | None = None) -> int:
    """The worker job: escalate what is overdue now; returns how many entries were opened."""
    from citoyen.db import write_session

    now = now or datetime.now(UTC)
    router = install(runtime)
    with write_session(runtime.engine) as session:
        opened = escalate_due(session, now=now, router=router)
    if opened:
        log.info("escalation: %d queue entr(y/ies) opened", len(opened))
    return len(opened)


def scheduled_jobs(runtime: Any) -> list[dict[str, Any]]:
    """APScheduler ``add_job`` keyword arguments for this module's jobs (the worker adds them).

    Escalation runs every 30 s: the shortest SLA (emergencies) is minutes, so an overdue entry
    escalates at most half a minute late.
    """
    install(runtime)
    return [
        {
            "func": escalate_overdue,
            "trigger": "interval",
            "seconds": 30,
            "args": [runtime],
            "id": "escalate_queues",
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": 30,
            "replace_existing": True,
        }
    ]
