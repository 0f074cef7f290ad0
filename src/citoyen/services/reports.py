"""Reading reports for staff: exports and listings (never with the reporter's address)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from sqlmodel import Session, select

from citoyen.models import Area, Contact, Report
from citoyen.services.privacy import alias_label

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
)


def export_rows(session: Session, batch: int = 1000) -> Iterator[dict[str, Any]]:
    """Every report as an administrator sees it: the reporter is an alias, never a number."""
    last_id = 0
    while True:
        rows = session.exec(
            select(Report, Area, Contact)
            .join(Area, Area.id == Report.area_id, isouter=True)
            .join(Contact, Contact.id == Report.contact_id, isouter=True)
            .where(Report.id > last_id)
            .order_by(Report.id)
            .limit(batch)
        ).all()
        if not rows:
            return
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
            }


def write_export(rows: Iterator[dict[str, Any]], fmt: str, out: io.TextIOBase) -> int:
    """Write rows as CSV or JSON; returns how many were written."""
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
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
