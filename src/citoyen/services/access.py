"""Who may see and do what in the admin: the four roles and their scopes.

- **admin**: everything, including users and the audit log.
- **coordinator**: every queue of their area and the areas below it (the user's ``area_id``, else
  their stakeholder's area), plus their own stakeholder's queue.
- **agent**: their own stakeholder's queue only.
- **analyst**: aggregates and anonymised data only; no report page, no reporter alias.

A report is in a user's scope when one of its queue entries (in any state, so a stakeholder that
declined keeps its history) belongs to a stakeholder in the user's scope. Every admin route asks
these functions, never its own idea of the rules, so one sweep test covers them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from citoyen.models import Area, QueueEntry, Report, Stakeholder, User
from citoyen.services.trial import real_reports

# reviewer: corrects and approves the texts citizens read and hear (no report, no figure).
ROLES: tuple[str, ...] = ("admin", "coordinator", "agent", "analyst", "reviewer")
# Roles that see individual reports (the analyst sees aggregates only).
CASEWORK_ROLES = frozenset({"admin", "coordinator", "agent"})
# Roles that may ask to see a non-anonymous reporter's number (with a reason, audited). A
# deployment narrows or widens this with CITOYEN_REVEAL_ROLES.
DEFAULT_REVEAL_ROLES: tuple[str, ...] = ("admin", "coordinator")


class AccessDenied(PermissionError):
    """The user may not see or do this (the admin answers 403, or 404 for a report)."""


@dataclass(frozen=True)
class Staff:
    """The signed-in user as the services need them (detached from any session)."""

    id: int
    email: str
    role: str
    stakeholder_id: int | None = None
    area_id: int | None = None
    language: str | None = None

    @classmethod
    def of(cls, user: User) -> Staff:
        return cls(
            id=user.id or 0,
            email=user.email,
            role=user.role,
            stakeholder_id=user.stakeholder_id,
            area_id=user.area_id,
            language=user.language,
        )

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def does_casework(self) -> bool:
        return self.role in CASEWORK_ROLES


def area_subtree(session: Session, area_id: int) -> set[int]:
    """``area_id`` and every area below it (region > cercle > commune > quartier)."""
    children: dict[int | None, list[int]] = {}
    for aid, parent in session.exec(select(Area.id, Area.parent_id)).all():
        children.setdefault(parent, []).append(aid)
    found, todo = {area_id}, [area_id]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def coordinator_area(session: Session, staff: Staff) -> int | None:
    if staff.area_id is not None:
        return staff.area_id
    if staff.stakeholder_id is not None:
        stakeholder = session.get(Stakeholder, staff.stakeholder_id)
        return stakeholder.area_id if stakeholder is not None else None
    return None


def visible_stakeholders(session: Session, staff: Staff) -> set[int] | None:
    """Ids of the stakeholders whose queues ``staff`` sees; None means all of them."""
    if staff.role == "admin":
        return None
    if staff.role == "agent":
        return {staff.stakeholder_id} if staff.stakeholder_id is not None else set()
    if staff.role == "coordinator":
        ids: set[int] = {staff.stakeholder_id} if staff.stakeholder_id is not None else set()
        area = coordinator_area(session, staff)
        if area is not None:
            areas = area_subtree(session, area)
            ids |= {
                sid
                for sid, aid in session.exec(select(Stakeholder.id, Stakeholder.area_id)).all()
                if aid in areas
            }
        return ids
    return set()


def report_in_scope(session: Session, staff: Staff, report: Report | int) -> bool:
    """Whether ``staff`` may open this report (see the module docstring)."""
    if not staff.does_casework:
        return False
    scope = visible_stakeholders(session, staff)
    if scope is None:
        # Every report but those of staff's test conversations, which have no queue entry
        # (services/trial.py) and are seen in the simulator only.
        report_id = report if isinstance(report, int) else report.id
        return (
            session.exec(select(Report.id).where(Report.id == report_id, real_reports())).first()
            is not None
        )
    if not scope:
        return False
    report_id = report if isinstance(report, int) else report.id
    found = session.exec(
        select(QueueEntry.id)
        .where(QueueEntry.report_id == report_id, QueueEntry.stakeholder_id.in_(scope))
        .limit(1)
    ).first()
    return found is not None


def reports_in_scope(session: Session, staff: Staff, report_ids: list[int]) -> set[int]:
    """Which of ``report_ids`` ``staff`` may open, in one query (for lists of reports)."""
    if not staff.does_casework or not report_ids:
        return set()
    scope = visible_stakeholders(session, staff)
    if scope is None:
        return set(
            session.exec(select(Report.id).where(Report.id.in_(report_ids), real_reports())).all()
        )
    if not scope:
        return set()
    return set(
        session.exec(
            select(QueueEntry.report_id).where(
                QueueEntry.report_id.in_(report_ids), QueueEntry.stakeholder_id.in_(scope)
            )
        ).all()
    )


def require_report(session: Session, staff: Staff, report_id: int) -> Report:
    """The report, or :class:`AccessDenied` when it does not exist or is out of scope (the two
    look the same from outside, so ids cannot be probed)."""
    report = session.get(Report, report_id)
    if report is None or not report_in_scope(session, staff, report):
        raise AccessDenied(f"report {report_id} is not in your queues")
    return report


def acting_stakeholder(session: Session, staff: Staff, report: Report) -> int | None:
    """The stakeholder ``staff`` acts for on this report: their own when it holds an entry,
    else (admins, coordinators) None, meaning "for the service as a whole"."""
    if staff.stakeholder_id is None:
        return None
    held = session.exec(
        select(QueueEntry.id).where(
            QueueEntry.report_id == report.id, QueueEntry.stakeholder_id == staff.stakeholder_id
        )
    ).first()
    return staff.stakeholder_id if held is not None else None


def may_reveal(staff: Staff, reveal_roles: Any = DEFAULT_REVEAL_ROLES) -> bool:
    return staff.role in set(reveal_roles)
