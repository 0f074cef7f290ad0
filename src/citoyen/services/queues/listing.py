"""The queue pages of the admin: filtered, most pressing first, keyset-paginated.

One row per queue entry a user may see (:func:`citoyen.services.access.visible_stakeholders`).
Rows are ordered by deadline (``due_at``, then id): entries past their SLA come first, and since
an emergency's SLA is the shortest, open emergencies rise to the top within minutes; the page
also shows every open emergency in its own box. Pagination is by keyset on ``(due_at, id)``,
never OFFSET, so page 1,000 costs what page 1 costs (indexes ``ix_queue_entries_page`` and
``ix_queue_entries_stakeholder_page``). Filters apply to the entries' copies of the report's
status, category, urgency, area and date (``QueueEntry.report_status``...), so filtering, sorting
and counting read one table; reports, areas and contacts are joined for the shown rows only.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, func, select

from citoyen.models import Area, Contact, QueueEntry, Report, Stakeholder
from citoyen.routing import STATUSES, URGENCIES
from citoyen.services.access import Staff, area_subtree, visible_stakeholders
from citoyen.services.privacy import alias_label

PAGE_SIZE = 50
OPEN_STATUSES: tuple[str, ...] = ("new", "acknowledged", "in_progress")
OPEN_ENTRY_STATUSES: tuple[str, ...] = ("open", "acknowledged")
# Age filter choices: name -> (min age, max age)
AGES: dict[str, tuple[timedelta | None, timedelta | None]] = {
    "24h": (None, timedelta(hours=24)),
    "7d": (None, timedelta(days=7)),
    "older7d": (timedelta(days=7), None),
    "older30d": (timedelta(days=30), None),
}


class FilterError(ValueError):
    """A filter value that is not one of the choices (the page says which)."""


@dataclass(frozen=True)
class QueueFilter:
    statuses: tuple[str, ...] = OPEN_STATUSES
    category: str | None = None
    urgency: str | None = None
    area_id: int | None = None
    age: str | None = None
    stakeholder_id: int | None = None
    overdue: bool = False

    def validate(self, categories: tuple[str, ...]) -> QueueFilter:
        for status in self.statuses:
            if status not in STATUSES:
                raise FilterError(f"unknown status {status!r}")
        if self.category is not None and self.category not in categories:
            raise FilterError(f"unknown category {self.category!r}")
        if self.urgency is not None and self.urgency not in URGENCIES:
            raise FilterError(f"unknown urgency {self.urgency!r}")
        if self.age is not None and self.age not in AGES:
            raise FilterError(f"unknown age {self.age!r}")
        return self


@dataclass
class QueueRow:
    entry_id: int
    report_id: int
    reference: str
    status: str
    entry_status: str
    category: str | None
    urgency: str
    area: str
    stakeholder: str
    reporter: str
    channel: str
    created_at: datetime
    due_at: datetime
    overdue: bool
    assigned: bool
    description: str
    # What the citizen last added ("answer" to staff, "addition"), until staff act on it.
    citizen_update: str | None = None


@dataclass
class QueuePage:
    rows: list[QueueRow]
    next_cursor: str | None
    counts: dict[str, int] = field(default_factory=dict)  # entry state -> entries to handle
    overdue: int = 0
    emergencies: list[QueueRow] = field(default_factory=list)


def encode_cursor(due_at: datetime, entry_id: int) -> str:
    raw = f"{due_at.astimezone(UTC).isoformat()}|{entry_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode()).decode()
        stamp, entry_id = raw.split("|")
        moment = datetime.fromisoformat(stamp)
        if moment.tzinfo is None:
            raise ValueError("naive")
        return moment, int(entry_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise FilterError("this page link is damaged: start again from the first page") from exc


def _scoped(stmt, session: Session, scope: set[int] | None, flt: QueueFilter, now: datetime):  # type: ignore[no-untyped-def]
    """``stmt`` limited to the stakeholders of ``scope`` (None: all) and to the filter."""
    if scope is not None:
        stmt = stmt.where(QueueEntry.stakeholder_id.in_(sorted(scope) or [-1]))
    if flt.stakeholder_id is not None:
        stmt = stmt.where(QueueEntry.stakeholder_id == flt.stakeholder_id)
    stmt = stmt.where(QueueEntry.status != "declined")
    if flt.category:
        stmt = stmt.where(QueueEntry.category == flt.category)
    if flt.urgency:
        stmt = stmt.where(QueueEntry.urgency == flt.urgency)
    if flt.area_id is not None:
        stmt = stmt.where(QueueEntry.area_id.in_(sorted(area_subtree(session, flt.area_id))))
    if flt.age:
        low, high = AGES[flt.age]
        if high is not None:
            stmt = stmt.where(QueueEntry.reported_at >= now - high)
        if low is not None:
            stmt = stmt.where(QueueEntry.reported_at < now - low)
    if flt.overdue:
        stmt = stmt.where(QueueEntry.status == "open", QueueEntry.due_at < now)
    return stmt


def _rows(session: Session, stmt, now: datetime) -> list[QueueRow]:  # type: ignore[no-untyped-def]
    rows = []
    for entry, report, stakeholder, area, contact in session.exec(stmt).all():
        rows.append(
            QueueRow(
                entry_id=entry.id,
                report_id=report.id,
                reference=report.reference,
                status=report.status,
                entry_status=entry.status,
                category=report.category,
                urgency=report.urgency,
                area=area.name if area else "",
                stakeholder=stakeholder.name,
                reporter=alias_label(contact.alias) if contact else "",
                channel=report.channel,
                created_at=report.created_at,
                due_at=entry.due_at,
                overdue=entry.status == "open" and entry.due_at < now,
                assigned=entry.assigned_to is not None,
                citizen_update=entry.citizen_update,
                description=(report.description or "")[:160],
            )
        )
    return rows


def _base():  # type: ignore[no-untyped-def]
    return (
        select(QueueEntry, Report, Stakeholder, Area, Contact)
        .join(Report, Report.id == QueueEntry.report_id)
        .join(Stakeholder, Stakeholder.id == QueueEntry.stakeholder_id)
        .join(Area, Area.id == Report.area_id, isouter=True)
        .join(Contact, Contact.id == Report.contact_id, isouter=True)
    )


def queue_page(
    session: Session,
    staff: Staff,
    flt: QueueFilter,
    *,
    cursor: str | None = None,
    now: datetime | None = None,
    limit: int = PAGE_SIZE,
) -> QueuePage:
    """One page of the queues ``staff`` sees, with counts per status and the open emergencies."""
    now = now or datetime.now(UTC)
    if not staff.does_casework:
        return QueuePage(rows=[], next_cursor=None)
    scope = visible_stakeholders(session, staff)  # once per page: it reads the area tree
    # Each state of entry is one ordered range of the covering (status, due_at, id, ...) index:
    # the page takes the first rows of each range (filters are checked inside the index), merges
    # them by deadline, and only then reads the few reports, areas and contacts it shows.
    entry_states = (
        OPEN_ENTRY_STATUSES
        if set(flt.statuses) <= set(OPEN_STATUSES)
        else (*OPEN_ENTRY_STATUSES, "closed")
    )
    after = decode_cursor(cursor) if cursor else None
    keys: list[tuple[datetime, int]] = []
    for state in entry_states:
        ids = _scoped(
            select(QueueEntry.due_at, QueueEntry.id).select_from(QueueEntry),
            session,
            scope,
            flt,
            now,
        ).where(QueueEntry.status == state, QueueEntry.report_status.in_(flt.statuses))
        if after is not None:
            ids = ids.where(
                sa.or_(
                    QueueEntry.due_at > after[0],
                    sa.and_(QueueEntry.due_at == after[0], QueueEntry.id > after[1]),
                )
            )
        keys += session.exec(ids.order_by(QueueEntry.due_at, QueueEntry.id).limit(limit + 1)).all()
    keys = sorted(keys)[: limit + 1]
    rows = (
        _rows(
            session,
            _base()
            .where(QueueEntry.id.in_([entry_id for _due, entry_id in keys]))
            .order_by(QueueEntry.due_at, QueueEntry.id),
            now,
        )
        if keys
        else []
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(last.due_at, last.entry_id)

    # Counts are of queue entries still to handle, by their state (waiting / taken in hand), and
    # late ones: one table, on the (stakeholder, status, due_at) indexes, never the closed rows.
    def counting(columns):  # type: ignore[no-untyped-def]
        stmt = select(*columns).select_from(QueueEntry)
        return _scoped(stmt, session, scope, flt, now).where(
            QueueEntry.status.in_(OPEN_ENTRY_STATUSES)
        )

    counts = {status: 0 for status in OPEN_ENTRY_STATUSES}
    counts.update(
        dict(
            session.exec(
                counting((QueueEntry.status, func.count())).group_by(QueueEntry.status)
            ).all()
        )
    )
    overdue = session.exec(
        counting((func.count(),)).where(QueueEntry.status == "open", QueueEntry.due_at < now)
    ).one()
    emergencies = _rows(
        session,
        _scoped(_base(), session, scope, QueueFilter(stakeholder_id=flt.stakeholder_id), now)
        .where(
            QueueEntry.urgency == "emergency",
            QueueEntry.report_status.in_(OPEN_STATUSES),
            QueueEntry.status == "open",
        )
        .order_by(QueueEntry.due_at, QueueEntry.id)
        .limit(20),
        now,
    )
    return QueuePage(
        rows=rows, next_cursor=next_cursor, counts=counts, overdue=overdue, emergencies=emergencies
    )
