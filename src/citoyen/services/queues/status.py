"""Report life: status changes with who, when and why; rerouting; merging duplicates."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session, select

from citoyen.models import QueueEntry, Report, ReportEvent, Stakeholder, User
from citoyen.routing import CLOSE_REASONS, STATUSES
from citoyen.services import followups
from citoyen.services.queues.config import Router, router_for
from citoyen.services.queues.notify import followers, notify_citizens
from citoyen.services.queues.routes import (
    OPEN_ENTRY,
    entries,
    holders,
    involved_codes,
    route_report,
)
from citoyen.services.refusals import Refusal
from citoyen.services.reports import live_report

# Allowed moves of a report's status. "closed" is final (a concern closed by mistake is raised
# again as a new report, so the timeline never rewrites history); a resolved report can be
# reopened when the problem comes back.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("acknowledged", "in_progress", "resolved", "closed"),
    "acknowledged": ("in_progress", "resolved", "closed"),
    "in_progress": ("resolved", "closed"),
    "resolved": ("in_progress",),
    "closed": (),
}


class StatusError(Refusal):
    """A status change that is not allowed, with the reason (shown to the staff member)."""


def _actor(session: Session, user_id: int | None, stakeholder_id: int | None) -> int | None:
    """The stakeholder a change is made for: the one given, else the user's own."""
    if stakeholder_id is not None:
        return stakeholder_id
    if user_id is None:
        return None
    user = session.get(User, user_id)
    return user.stakeholder_id if user is not None else None


def _acknowledge_entries(
    session: Session, report: Report, actor: int | None, user_id: int | None, now: datetime
) -> int:
    """Mark the actor's entry (or, for staff acting for no stakeholder, every open entry)
    acknowledged: it stops escalating."""
    count = 0
    for entry in holders(session, report):
        if entry.status != "open" or (actor is not None and entry.stakeholder_id != actor):
            continue
        entry.status = "acknowledged"
        entry.acknowledged_at = now
        entry.acknowledged_by = user_id
        entry.updated_at = now
        count += 1
    return count


def _close_entries(session: Session, report: Report, now: datetime) -> None:
    for entry in holders(session, report):
        entry.status = "closed"
        entry.closed_at = now
        entry.updated_at = now


def _reopen_entries(session: Session, report: Report, now: datetime) -> None:
    rows = session.exec(
        select(QueueEntry).where(QueueEntry.report_id == report.id, QueueEntry.status == "closed")
    ).all()
    for entry in rows:
        entry.status = "acknowledged"
        entry.closed_at = None
        entry.updated_at = now


def change_status(
    session: Session,
    report: Report,
    to_status: str,
    *,
    user_id: int | None,
    reason: str | None = None,
    note: str | None = None,
    now: datetime | None = None,
    stakeholder_id: int | None = None,
    duplicate_of: Report | None = None,
    router: Router | None = None,
    template: str | None = None,
) -> ReportEvent:
    """Move a report to ``to_status``, record who, when and why, and tell the citizen.

    ``template`` names the response template the citizen gets (``notify.<status>.<template>``,
    see :func:`citoyen.routing.texts.templates_for`); by default the most specific text.

    ``reason`` is required when closing (one of ``CLOSE_REASONS``): ``not_responsible`` does not
    close but reroutes the report away from the stakeholder that declined
    (:func:`reroute`); ``duplicate`` merges it into ``duplicate_of`` (:func:`merge_reports`).
    ``stakeholder_id`` is the stakeholder acting (default: the user's own); acknowledging marks
    its queue entry taken in hand. Raises :class:`StatusError` for a change that is not allowed.
    """
    now = now or datetime.now(UTC)
    router = router or router_for(session)
    if to_status not in STATUSES:
        raise StatusError(
            f"unknown status '{to_status}' (one of: {', '.join(STATUSES)})",
            "unknown_status",
            status=to_status,
        )
    if report.merged_into_id is not None:
        target = session.get(Report, report.merged_into_id)
        raise StatusError(
            f"report {report.reference} was merged into "
            f"{target.reference if target else 'another report'}: change that one",
            "merged",
            reference=report.reference,
            target=target.reference if target else "",
        )
    if to_status == "closed":
        if reason not in CLOSE_REASONS:
            raise StatusError(
                f"closing needs a reason, one of: {', '.join(CLOSE_REASONS)}", "close_reason"
            )
    elif reason is not None:
        raise StatusError(
            "a reason is only given when closing (write it as a note)", "reason_not_closing"
        )
    actor = _actor(session, user_id, stakeholder_id)
    if reason == "not_responsible":
        if actor is None:
            raise StatusError(
                "'not responsible' must say which stakeholder declines", "decline_who"
            )
        return reroute(
            session,
            report,
            stakeholder_id=actor,
            user_id=user_id,
            note=note,
            now=now,
            router=router,
        )
    if reason == "duplicate":
        if duplicate_of is None:
            raise StatusError(
                "closing as a duplicate needs the report it duplicates", "duplicate_of"
            )
        return merge_reports(
            session, report, duplicate_of, user_id=user_id, note=note, now=now, router=router
        )
    if to_status not in TRANSITIONS.get(report.status, ()):
        raise StatusError(
            f"a report cannot go from '{report.status}' to '{to_status}'",
            "transition",
            before=report.status,
            after=to_status,
        )

    from_status = report.status
    if to_status in ("acknowledged", "in_progress"):
        if from_status == "resolved":
            _reopen_entries(session, report, now)
        _acknowledge_entries(session, report, actor, user_id, now)
    else:
        _close_entries(session, report, now)
    report.status = to_status
    report.updated_at = now
    followups.seen_by_staff(session, report.id)  # type: ignore[arg-type]
    event = ReportEvent(
        report_id=report.id,
        kind="status_changed",
        from_status=from_status,
        to_status=to_status,
        user_id=user_id,
        stakeholder_id=actor,
        note=note,
        data={
            **({"reason": reason} if reason else {}),
            **({"template": template} if template else {}),
        },
        created_at=now,
    )
    session.add(event)
    session.flush()
    notify_citizens(
        session,
        router,
        report,
        event,
        status=to_status,
        reason=reason,
        now=now,
        template=template,
    )
    return event


def acknowledge(
    session: Session,
    report: Report,
    *,
    user_id: int | None,
    stakeholder_id: int | None = None,
    note: str | None = None,
    now: datetime | None = None,
    router: Router | None = None,
) -> ReportEvent:
    """A stakeholder takes the report in hand: the report's status moves to acknowledged the
    first time (the citizen is told); later stakeholders only mark their own entry."""
    now = now or datetime.now(UTC)
    if report.status == "new":
        return change_status(
            session,
            report,
            "acknowledged",
            user_id=user_id,
            stakeholder_id=stakeholder_id,
            note=note,
            now=now,
            router=router,
        )
    actor = _actor(session, user_id, stakeholder_id)
    if report.status in ("resolved", "closed"):
        raise StatusError(
            f"report {report.reference} is already {report.status}",
            "already",
            reference=report.reference,
            status=report.status,
        )
    _acknowledge_entries(session, report, actor, user_id, now)
    event = ReportEvent(
        report_id=report.id,
        kind="acknowledged",
        user_id=user_id,
        stakeholder_id=actor,
        note=note,
        created_at=now,
    )
    session.add(event)
    session.flush()
    return event


def reroute(
    session: Session,
    report: Report,
    *,
    stakeholder_id: int,
    user_id: int | None,
    note: str | None = None,
    now: datetime | None = None,
    router: Router | None = None,
) -> ReportEvent:
    """A stakeholder says it is not responsible: its entry is declined and the report goes to
    the stakeholders the rules give without it (for ``{nearest: ...}``, the next one up).

    The report's status does not change and the citizen is not told: for them, the report is
    still being handled. When nobody else is on the report, it goes to the moderation queue.
    """
    now = now or datetime.now(UTC)
    router = router or router_for(session)
    entry = session.exec(
        select(QueueEntry).where(
            QueueEntry.report_id == report.id, QueueEntry.stakeholder_id == stakeholder_id
        )
    ).first()
    if entry is None or entry.status not in OPEN_ENTRY:
        raise StatusError("this stakeholder has no open entry for the report", "no_open_entry")
    if report.status in ("resolved", "closed"):
        raise StatusError(
            f"report {report.reference} is already {report.status}",
            "already",
            reference=report.reference,
            status=report.status,
        )
    entry.status = "declined"
    entry.closed_at = now
    entry.updated_at = now
    session.flush()
    # Stakeholders still on the report keep their entries (no second one is opened for them).
    declined = involved_codes(session, report, ("declined",))
    opened = route_report(session, report, now=now, router=router, exclude=declined, via="reroute")
    decliner = session.get(Stakeholder, stakeholder_id)
    opened_ids = {e.id for e in opened}
    new_codes = [s.code for e, s in entries(session, report) if e.id in opened_ids]
    event = ReportEvent(
        report_id=report.id,
        kind="rerouted",
        from_status=report.status,
        to_status=report.status,
        user_id=user_id,
        stakeholder_id=stakeholder_id,
        note=note,
        data={
            "reason": "not_responsible",
            "declined_by": decliner.code if decliner else None,
            "to": new_codes,
        },
        created_at=now,
    )
    session.add(event)
    session.flush()
    return event


def merge_reports(
    session: Session,
    duplicate: Report,
    target: Report,
    *,
    user_id: int | None,
    note: str | None = None,
    now: datetime | None = None,
    router: Router | None = None,
) -> ReportEvent:
    """Close ``duplicate`` as a duplicate of ``target`` and keep its reporters informed.

    Its open queue entries close (the target's stakeholders handle the event); its reporter is
    told it joined the target (``notify.closed.duplicate``, with the target's reference) and,
    from then on, hears of every status change of the target. Reports already merged into the
    duplicate follow the target too. Returns the duplicate's ``status_changed`` event.
    """
    now = now or datetime.now(UTC)
    router = router or router_for(session)
    root = live_report(session, target)  # follow earlier merges to the report still alive
    if root.id == duplicate.id:
        raise StatusError("a report cannot be merged into itself", "merge_itself")
    if duplicate.merged_into_id is not None:
        raise StatusError(
            f"report {duplicate.reference} is already merged",
            "already_merged",
            reference=duplicate.reference,
        )
    if duplicate.status == "closed":
        raise StatusError(
            f"report {duplicate.reference} is already closed",
            "already",
            reference=duplicate.reference,
            status="closed",
        )
    informed = followers(session, duplicate)
    for child in informed[1:]:
        child.merged_into_id = root.id
    from_status = duplicate.status
    _close_entries(session, duplicate, now)
    duplicate.merged_into_id = root.id
    duplicate.status = "closed"
    duplicate.updated_at = now
    actor = _actor(session, user_id, None)
    event = ReportEvent(
        report_id=duplicate.id,
        kind="status_changed",
        from_status=from_status,
        to_status="closed",
        user_id=user_id,
        stakeholder_id=actor,
        note=note,
        data={"reason": "duplicate", "merged_into": root.reference},
        created_at=now,
    )
    session.add(event)
    session.add(
        ReportEvent(
            report_id=root.id,
            kind="merged",
            user_id=user_id,
            stakeholder_id=actor,
            note=note,
            data={"merged": duplicate.reference},
            created_at=now,
        )
    )
    session.flush()
    notify_citizens(
        session,
        router,
        duplicate,
        event,
        status="closed",
        reason="duplicate",
        now=now,
        reports=informed,
        extra={"target_reference": root.reference},
    )
    return event
