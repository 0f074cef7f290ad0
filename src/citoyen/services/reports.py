"""Reading reports for staff: exports and listings (never with the reporter's address)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from sqlmodel import Session, select

from citoyen.models import Area, Attachment, Contact, QueueEntry, Report, Stakeholder
from citoyen.services.access import Staff, visible_stakeholders
from citoyen.services.areas.labels import area_path
from citoyen.services.privacy import alias_label
from citoyen.services.trial import real_reports

EXPORT_FIELDS = (
    "reference",
    "created_at",
    "channel",
    "language",
    "category",
    "urgency",
    "status",
    "area_code",
    "area_name",
    "description",
    "recording_url",
    "anonymous",
    "callback_ok",
    "incomplete",
    "reporter",
    "stakeholders",
)


def export_rows(
    session: Session, batch: int = 1000, scope: Collection[int] | None = None
) -> Iterator[dict[str, Any]]:
    """Every report as an administrator sees it: the reporter is an alias, never a number.

    ``scope`` (stakeholder ids) keeps the reports with an entry in one of those queues, as
    :func:`citoyen.services.access.visible_stakeholders` gives them; None keeps every report.
    """
    if scope is not None and not scope:
        return
    last_id = 0
    while True:
        stmt = (
            select(Report, Area, Contact)
            .join(Area, Area.id == Report.area_id, isouter=True)
            .join(Contact, Contact.id == Report.contact_id, isouter=True)
            .where(Report.id > last_id, real_reports())
            .order_by(Report.id)
            .limit(batch)
        )
        if scope is not None:
            in_queues = select(QueueEntry.report_id).where(
                QueueEntry.stakeholder_id.in_(sorted(scope))
            )
            stmt = stmt.where(Report.id.in_(in_queues))
        rows = session.exec(stmt).all()
        if not rows:
            return
        sent_to = _stakeholders_of(session, [report.id for report, _area, _contact in rows])
        for report, area, contact in rows:
            last_id = report.id
            yield {
                "reference": report.reference,
                "created_at": report.created_at.isoformat(),
                "channel": report.channel,
                "language": report.language,
                "category": report.category,
                "urgency": report.urgency,
                "status": report.status,
                "area_code": area.code if area else None,
                "area_name": area.name if area else None,
                "description": report.description,
                "recording_url": report.recording_url,
                "anonymous": report.anonymous,
                "callback_ok": report.callback_ok,
                "incomplete": report.incomplete,
                "reporter": alias_label(contact.alias) if contact else None,
                "stakeholders": sent_to.get(report.id, []),
            }


def _stakeholders_of(session: Session, report_ids: list[int]) -> dict[int, list[dict[str, str]]]:
    """Per report, each stakeholder it went to (in routing order) with its entry's status."""
    out: dict[int, list[dict[str, str]]] = {}
    stmt = (
        select(QueueEntry.report_id, Stakeholder.code, Stakeholder.name, QueueEntry.status)
        .join(Stakeholder, Stakeholder.id == QueueEntry.stakeholder_id)
        .where(QueueEntry.report_id.in_(report_ids))
        .order_by(QueueEntry.id)
    )
    for report_id, code, name, status in session.exec(stmt).all():
        out.setdefault(report_id, []).append({"code": code, "name": name, "status": status})
    return out


def csv_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row for CSV: the stakeholders in one cell, ``code (status)`` separated by ``; ``."""
    if isinstance(row.get("stakeholders"), list):
        cell = "; ".join(f"{s['code']} ({s['status']})" for s in row["stakeholders"])
        return {**row, "stakeholders": cell}
    return row


def write_export(rows: Iterator[dict[str, Any]], fmt: str, out: io.TextIOBase) -> int:
    """Write rows as CSV or JSON; returns how many were written."""
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow(csv_row(row))
            count += 1
    elif fmt == "json":
        out.write("[")
        for row in rows:
            out.write(("," if count else "") + "\n  " + json.dumps(row, ensure_ascii=False))
            count += 1
        out.write("\n]\n" if count else "]\n")
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return count


# --- the admin's export: what each role may take away -----------------------------------------

# The analyst's export: no reference (it leads back to the report and its reporter), no alias, no
# description or recording (free text and voices identify people), the day rather than the
# moment, and the place at the second level of the area tree (the cercle; in the Bamako
# district, whose communes have no cercle above them, the commune).
ANONYMISED_FIELDS = (
    "created_on",
    "channel",
    "language",
    "category",
    "urgency",
    "status",
    "area_code",
    "area_name",
    "incomplete",
)


def _second_level(session: Session, area_code: str | None, cache: dict[str, Any]) -> Any:
    if area_code is None:
        return None
    if area_code not in cache:
        area = session.exec(select(Area).where(Area.code == area_code)).first()
        cache[area_code] = area_path(session, area)[:2][-1] if area is not None else None
    return cache[area_code]


def anonymised_rows(session: Session, batch: int = 1000) -> Iterator[dict[str, Any]]:
    """Every report, reduced to :data:`ANONYMISED_FIELDS` (the analyst's export)."""
    cache: dict[str, Any] = {}
    for row in export_rows(session, batch):
        area = _second_level(session, row["area_code"], cache)
        yield {
            "created_on": row["created_at"][:10],
            "channel": row["channel"],
            "language": row["language"],
            "category": row["category"],
            "urgency": row["urgency"],
            "status": row["status"],
            "area_code": area.code if area is not None else None,
            "area_name": area.name if area is not None else None,
            "incomplete": row["incomplete"],
        }


def export_for(
    session: Session, staff: Staff, batch: int = 1000
) -> tuple[tuple[str, ...], Iterator[dict[str, Any]]]:
    """The columns and rows ``staff`` may export: administrators what ``citoyen reports export``
    gives, coordinators and agents the same columns for the reports of their queues, analysts
    the anonymised form."""
    if staff.role == "analyst":
        return ANONYMISED_FIELDS, anonymised_rows(session, batch)
    if staff.role == "admin":
        return EXPORT_FIELDS, export_rows(session, batch)
    scope = visible_stakeholders(session, staff) or set()
    return EXPORT_FIELDS, export_rows(session, batch, scope=scope)


def export_chunks(
    rows: Iterator[dict[str, Any]], fmt: str, fields: Sequence[str], per: int = 200
) -> Iterator[str]:
    """The export as text pieces of ``per`` rows, for streaming over HTTP (same output as
    :func:`write_export` for the same fields)."""
    if fmt not in ("csv", "json"):
        raise ValueError(f"unknown format {fmt!r}")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields)) if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    else:
        buffer.write("[")
    count = 0
    for row in rows:
        if writer is not None:
            writer.writerow(csv_row(row))
        else:
            buffer.write(("," if count else "") + "\n  " + json.dumps(row, ensure_ascii=False))
        count += 1
        if count % per == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if writer is None:
        buffer.write("\n]\n" if count else "]\n")
    yield buffer.getvalue()


def live_report(session: Session, report: Report, hops: int = 50) -> Report:
    """The report a merged report lives on in (the end of its merges); itself when not merged.

    A citizen following or adding to a merged report reaches the report it joined.
    """
    for _ in range(hops):
        if report.merged_into_id is None:
            break
        target = session.get(Report, report.merged_into_id)
        if target is None:
            break
        report = target
    return report


def report_by_reference(session: Session, reference: str) -> Report | None:
    """The report with this public reference (``482-1937``), whoever may see it."""
    return session.exec(select(Report).where(Report.reference == reference)).first()


def report_id_of_attachment(session: Session, attachment: Attachment) -> int | None:
    """The report an attachment belongs to: its own link, else its conversation's report."""
    if attachment.report_id is not None or attachment.conversation_id is None:
        return attachment.report_id
    return session.exec(
        select(Report.id).where(Report.conversation_id == attachment.conversation_id)
    ).first()
