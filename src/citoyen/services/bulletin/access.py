"""Who may download which kept bulletin: the areas a user's scope covers.

A bulletin lists the open cases of its area by reference, so it goes to the staff who work
them: administrators (every area), coordinators (their area and below, as for queues), agents
(their stakeholder's area and below, e.g. the mayor's office of a commune). Analysts see
aggregates only: no bulletin.
"""

from __future__ import annotations

from sqlmodel import Session, select

from citoyen.models import Area, Bulletin, Stakeholder
from citoyen.services.access import Staff, area_subtree, coordinator_area


def bulletin_areas(session: Session, staff: Staff) -> set[str] | None:
    """Codes of the areas whose bulletins ``staff`` may download; None means every area."""
    if staff.role == "admin":
        return None
    area_id: int | None = None
    if staff.role == "coordinator":
        area_id = coordinator_area(session, staff)
    elif staff.role == "agent" and staff.stakeholder_id is not None:
        stakeholder = session.get(Stakeholder, staff.stakeholder_id)
        area_id = stakeholder.area_id if stakeholder is not None else None
    if area_id is None:
        return set()
    ids = area_subtree(session, area_id)
    return set(session.exec(select(Area.code).where(Area.id.in_(sorted(ids)))).all())


def kept_bulletins(session: Session, staff: Staff) -> list[Bulletin]:
    """The bulletins made for the areas ``staff`` may see, newest month first."""
    areas = bulletin_areas(session, staff)
    stmt = select(Bulletin).where(Bulletin.status == "done")
    if areas is not None:
        stmt = stmt.where(Bulletin.area_code.in_(sorted(areas)))
    return list(session.exec(stmt.order_by(Bulletin.month.desc(), Bulletin.area_code)).all())


def kept_bulletin(session: Session, staff: Staff, bulletin_id: int) -> Bulletin | None:
    """One made bulletin, if ``staff`` may download it; None otherwise, as if it did not exist."""
    row = session.get(Bulletin, bulletin_id)
    if row is None or row.status != "done":
        return None
    areas = bulletin_areas(session, staff)
    return row if areas is None or row.area_code in areas else None
