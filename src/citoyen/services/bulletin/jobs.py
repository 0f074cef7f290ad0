"""The worker's monthly bulletins: on the first days of each month, for the month before.

The job fires every hour of days 1 to 3 (Africa/Bamako). Each firing makes the bulletins still
missing for the previous month, one per region, cercle and commune that had a report in it.
An area's bulletin is made once even with two workers (or a firing repeated after a crash):
the worker first inserts the ``bulletins`` row of (area, month), whose key is unique, and only
the one whose insert succeeds makes the PDF; it is kept in ``<instance>/bulletins/<month>/``.
A row left ``making`` by a worker that died is retaken after :data:`STALE_AFTER`.
"""

from __future__ import annotations

import logging
import smtplib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.models import Area, Bulletin, Report
from citoyen.services.bulletin import contents, mail, render
from citoyen.services.publication.areas import UNSTATED
from citoyen.services.publication.figures import compute

log = logging.getLogger(__name__)
STALE_AFTER = timedelta(hours=1)


def previous_month(now: datetime) -> str:
    now = now.astimezone(UTC)
    return f"{now.year - 1:04d}-12" if now.month == 1 else f"{now.year:04d}-{now.month - 1:02d}"


def folder(runtime: Any, month: str) -> Path:
    return runtime.settings.ensure_instance_dir() / "bulletins" / month


def _claim(runtime: Any, code: str, month: str, now: datetime) -> int | None:
    """The id of the row this worker now holds for (code, month), or None if another has it."""
    try:
        with write_session(runtime.engine) as session:
            row = Bulletin(area_code=code, month=month, created_at=now)
            session.add(row)
            session.flush()
            return row.id
    except IntegrityError:
        pass
    with write_session(runtime.engine) as session:
        row = session.exec(
            select(Bulletin).where(Bulletin.area_code == code, Bulletin.month == month)
        ).one()
        if row.status == "making" and row.created_at < now - STALE_AFTER:
            row.created_at = now  # retaken: its maker died
            return row.id
    return None


def areas_with_reports(session: Session, fig: Any, month: str) -> list[str]:
    """Regions, cercles and communes with at least one report in ``month``."""
    start, end = contents.month_bounds(month)
    dims = fig.reports.dims[0]
    codes: set[str] = set()
    for area_id in session.exec(
        select(Report.area_id).where(Report.created_at >= start, Report.created_at < end)
    ).all():
        for code in dims.chain(fig.tree.leaf(area_id)):
            if not code.endswith(UNSTATED) and fig.tree.areas[code].level != "national":
                codes.add(code)
    return sorted(codes)


def make_monthly(runtime: Any, now: datetime | None = None) -> dict[str, int]:
    """Make the previous month's missing bulletins; returns how many were made, skipped (made or
    being made by another worker) and failed."""
    now = now or datetime.now(UTC)
    month = previous_month(now)
    outcome = {"made": 0, "skipped": 0, "failed": 0}
    with Session(runtime.engine) as session:
        fig = compute(session, runtime, now)
        codes = areas_with_reports(session, fig, month)
    for code in codes:
        row_id = _claim(runtime, code, month, now)
        if row_id is None:
            outcome["skipped"] += 1
            continue
        try:
            with Session(runtime.engine) as session:
                bulletin = contents.build(session, fig, code, month)
            data = render.pdf(render.html(bulletin, runtime.bundle.catalog, "fr"))
            target = folder(runtime, month) / f"{code}.pdf"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        except Exception as exc:  # one area's failure must not stop the others
            log.exception("bulletin %s %s failed", code, month)
            with write_session(runtime.engine) as session:
                row = session.get(Bulletin, row_id)
                row.status, row.error = "failed", str(exc)[:500]
            outcome["failed"] += 1
            continue
        with write_session(runtime.engine) as session:
            row = session.get(Bulletin, row_id)
            row.status, row.made_at = "done", datetime.now(UTC)
            row.file_name = f"{month}/{code}.pdf"
            row.size_bytes = len(data)
        outcome["made"] += 1
    if runtime.settings.smtp_host:
        outcome["emailed"] = mail_pending(runtime, month)
    if codes:
        log.info("bulletins of %s: %s", month, outcome)
    return outcome


def mail_pending(runtime: Any, month: str) -> int:
    """E-mail the made bulletins of ``month`` not sent yet; returns how many were sent. A
    bulletin whose area has no CCS account is marked sent to nobody (and not tried again)."""
    sent = 0
    with Session(runtime.engine) as session:
        rows = session.exec(
            select(Bulletin).where(
                Bulletin.month == month, Bulletin.status == "done", Bulletin.emailed_at.is_(None)
            )
        ).all()
        names = dict(session.exec(select(Area.code, Area.name)).all())
        todo = [
            (r.id, r.area_code, r.file_name, mail.recipients(session, r.area_code)) for r in rows
        ]
    for row_id, code, file_name, to in todo:
        if to:
            pdf = (runtime.settings.instance_dir / "bulletins" / (file_name or "")).read_bytes()
            try:
                mail.send(
                    runtime.settings, runtime.bundle.catalog, to, names.get(code, code), month, pdf
                )
            except (OSError, smtplib.SMTPException):
                log.exception("bulletin %s %s: e-mail failed, tried again later", code, month)
                continue
            sent += 1
        with write_session(runtime.engine) as session:
            session.get(Bulletin, row_id).emailed_at = datetime.now(UTC)
    return sent


def scheduled_jobs(runtime: Any) -> list[dict[str, Any]]:
    """Every hour of days 1-3 of the month, at minute 40 (Africa/Bamako)."""
    return [
        {
            "func": make_monthly,
            "trigger": "cron",
            "day": "1-3",
            "minute": 40,
            "args": [runtime],
            "id": "monthly_bulletins",
            "misfire_grace_time": 3600,
        }
    ]
