"""Routing a report into queue entries, with its events and emergency alerts.

Each stakeholder the rules give gets its own entry (deadline = now + the urgency's SLA) and a
``routed`` event; an emergency alerts their on-call addresses through the outbox with the
reference, category, place and urgency only. Whatever happens, the report ends in at least one
queue (the fallback, moderation).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from citoyen.engine.schema import duration_seconds
from citoyen.models import Area, Outbox, QueueEntry, Report, ReportEvent, Stakeholder
from citoyen.routing import Route, RoutingConfig, database_area_tree, resolve, texts
from citoyen.routing.schema import DEFAULT_FALLBACK, DEFAULT_SLA
from citoyen.services.areas import AREA_RECHECK_SECONDS, area_label
from citoyen.services.outbox import enqueue
from citoyen.services.queues.config import Router, router_for
from citoyen.services.queues.stakeholders import stakeholder_row

log = logging.getLogger(__name__)

BAMAKO = ZoneInfo("Africa/Bamako")
OPEN_ENTRY = ("open", "acknowledged")  # entries of stakeholders still on a report


def area_code(session: Session, area_id: int | None) -> str | None:
    if area_id is None:
        return None
    area = session.get(Area, area_id)
    return area.code if area is not None else None


def _deadline(moment: datetime) -> str:
    """A deadline as on-call staff read it: local time in Mali (UTC+0, no DST)."""
    return moment.astimezone(BAMAKO).strftime("%d/%m %H:%M")


def add_entry(
    session: Session,
    report: Report,
    stakeholder: Stakeholder,
    config: RoutingConfig,
    *,
    via: str,
    now: datetime,
    rule_line: int | None = None,
    level: int = 0,
    chain: str | None = None,
    escalated_from: QueueEntry | None = None,
) -> QueueEntry | None:
    """A new open entry, or None when this stakeholder already has one for this report (a
    stakeholder that declined gets its entry back only as the last resort, the fallback)."""
    existing = session.exec(
        select(QueueEntry).where(
            QueueEntry.report_id == report.id, QueueEntry.stakeholder_id == stakeholder.id
        )
    ).first()
    due = now + timedelta(seconds=config.sla_seconds(report.urgency))
    if existing is not None:
        if existing.status == "declined" and via == "fallback":
            existing.status, existing.due_at, existing.escalated_at = "open", due, None
            existing.closed_at, existing.updated_at = None, now
            return existing
        return None
    entry = QueueEntry(
        report_id=report.id,
        stakeholder_id=stakeholder.id,
        status="open",
        via=via,
        rule_line=rule_line,
        chain=chain or config.chain_name(stakeholder.kind),
        escalation_level=level,
        escalated_from_id=escalated_from.id if escalated_from else None,
        due_at=due,
        created_at=now,
        updated_at=now,
        report_status=report.status,
        category=report.category,
        urgency=report.urgency,
        area_id=report.area_id,
        reported_at=report.created_at,
    )
    try:
        with session.begin_nested():
            session.add(entry)
            session.flush()
    except IntegrityError:  # the same entry was added concurrently
        return None
    return entry


def alert_on_call(
    session: Session,
    router: Router,
    report: Report,
    stakeholder: Stakeholder,
    *,
    key: str,
    purpose: str,
    due_at: datetime,
    now: datetime,
) -> int:
    """Queue one alert per on-call address of ``stakeholder``; returns how many were new.

    The text carries the report's reference, category, place and urgency: never the reporter's
    number, alias or words. The idempotency key makes one alert per address and purpose, even
    when several stakeholders share an on-call phone.
    """
    addresses = [
        item for item in stakeholder.on_call if isinstance(item, dict) and item.get("address_enc")
    ]
    if not addresses:
        return 0
    lang = router.language(stakeholder.language)
    category = ([texts.category_key(report.category)] if report.category else []) + [
        texts.ALERT_CATEGORY_UNKNOWN
    ]
    place = (
        area_label(session, report.area_id)
        if report.area_id is not None
        else router.text([texts.ALERT_PLACE_UNKNOWN], lang, {})
    )
    params = {
        **router.emergency,
        "reference": report.reference,
        "category": router.text(category, lang, {}),
        "place": place,
        "urgency": router.text([texts.urgency_key(report.urgency)], lang, {}),
        "deadline": _deadline(due_at),
        "stakeholder": stakeholder.name,
    }
    body = router.text([key], lang, params)
    created = 0
    for item in addresses:
        digest = item.get("hash") or hashlib.sha256(item["address_enc"].encode()).hexdigest()
        idempotency_key = f"alert:{report.id}:{purpose}:{digest[:32]}"
        exists = select(Outbox.id).where(Outbox.idempotency_key == idempotency_key)
        if session.exec(exists).first() is not None:
            continue  # this address already has this alert (another stakeholder shares it)
        enqueue(
            session,
            channel=item.get("channel") or "sms",
            idempotency_key=idempotency_key,
            body=body,
            payload={
                "report": report.reference,
                "stakeholder": stakeholder.code,
                "purpose": purpose,
            },
            address_enc=item["address_enc"],
            kind="alert",
            now=now,
        )
        created += 1
    return created


def _open_routes(
    session: Session,
    router: Router,
    report: Report,
    routes: Sequence[Route],
    *,
    now: datetime,
    via: str | None = None,
) -> list[QueueEntry]:
    """Entries, events and (for emergencies) alerts for ``routes``; the fallback queue when
    none of them could be opened, so the report always sits in at least one queue."""
    config = router.config
    opened: list[tuple[QueueEntry, Stakeholder, Route]] = []
    missing: list[str] = []
    for route in routes:
        stakeholder = stakeholder_row(session, config, route.stakeholder)
        if stakeholder is None:
            missing.append(route.stakeholder)
            continue
        entry = add_entry(
            session,
            report,
            stakeholder,
            config,
            via=via or route.via,
            rule_line=route.rule.line if route.rule else None,
            now=now,
        )
        if entry is not None:
            opened.append((entry, stakeholder, route))
    if not opened and not holders(session, report):
        fallback = stakeholder_row(session, config, config.fallback)
        assert fallback is not None  # _stakeholder always has the fallback
        route = Route(config.fallback, "fallback")
        entry = add_entry(session, report, fallback, config, via="fallback", now=now)
        if entry is not None:
            opened.append((entry, fallback, route))
    for entry, stakeholder, route in opened:
        alerts = alert_if_emergency(session, router, report, entry, stakeholder, now=now)
        data: dict[str, Any] = {
            "stakeholder": stakeholder.code,
            "via": entry.via,
            "due_at": entry.due_at.isoformat(),
            "alerts": alerts,
        }
        if route.rule is not None:
            data["rule_line"] = route.rule.line
        if missing:
            data["missing"] = missing  # configured but unknown: the operator must look
        session.add(
            ReportEvent(
                report_id=report.id,
                kind="routed",
                stakeholder_id=stakeholder.id,
                data=data,
                created_at=now,
            )
        )
    session.flush()
    return [entry for entry, _s, _r in opened]


def alert_if_emergency(
    session: Session,
    router: Router,
    report: Report,
    entry: QueueEntry,
    stakeholder: Stakeholder,
    *,
    now: datetime,
) -> int:
    """An emergency entering a stakeholder's queue alerts its on-call phones and chats at once."""
    if report.urgency != "emergency":
        return 0
    return alert_on_call(
        session,
        router,
        report,
        stakeholder,
        key=texts.ALERT_EMERGENCY,
        purpose="emergency",
        due_at=entry.due_at,
        now=now,
    )


def route_report(
    session: Session,
    report: Report,
    *,
    now: datetime,
    router: Router | None = None,
    exclude: Iterable[str] = (),
    via: str | None = None,
) -> list[QueueEntry]:
    """Open the queue entries the routing rules give for ``report`` (see routing/table.py)."""
    router = router or router_for(session)
    # Reports are routed as citizens complete them: the area tree may be as stale as the menus
    # they chose from (a few seconds after an edit in another process).
    tree = database_area_tree(session, max_age=AREA_RECHECK_SECONDS)
    resolution = resolve(
        router.config,
        tree,
        category=report.category,
        area=area_code(session, report.area_id),
        urgency=report.urgency,
        exclude=exclude,
    )
    return _open_routes(session, router, report, resolution.routes, now=now, via=via)


def route_new_report(session: Session, report: Report, *, now: datetime) -> list[QueueEntry]:
    """Route a report just created, in its transaction; never raises for a routing problem.

    A broken configuration or a bug must not lose a citizen's report: the report then goes to
    the moderation queue, with the error in the log.
    """
    try:
        with session.begin_nested():
            return route_report(session, report, now=now)
    except Exception:
        log.exception("routing report %s failed: it goes to the moderation queue", report.reference)
    try:
        router = router_for(session)
        config = router.config
    except Exception:
        config = RoutingConfig(
            stakeholders={},
            sla={u: duration_seconds(d) for u, d in DEFAULT_SLA.items()},
        )
    stakeholder = stakeholder_row(session, config, config.fallback or DEFAULT_FALLBACK)
    assert stakeholder is not None
    entry = add_entry(session, report, stakeholder, config, via="fallback", now=now)
    session.add(
        ReportEvent(
            report_id=report.id,
            kind="routed",
            stakeholder_id=stakeholder.id,
            note="routing failed: see the service log",
            data={"stakeholder": stakeholder.code, "via": "fallback"},
            created_at=now,
        )
    )
    session.flush()
    return [entry] if entry is not None else []


def holders(session: Session, report: Report) -> list[QueueEntry]:
    """Entries of stakeholders still on the report (open or acknowledged)."""
    return list(
        session.exec(
            select(QueueEntry).where(
                QueueEntry.report_id == report.id, QueueEntry.status.in_(OPEN_ENTRY)
            )
        ).all()
    )


def involved_codes(
    session: Session, report: Report, statuses: Iterable[str] | None = None
) -> set[str]:
    stmt = (
        select(Stakeholder.code)
        .join(QueueEntry, QueueEntry.stakeholder_id == Stakeholder.id)
        .where(QueueEntry.report_id == report.id)
    )
    if statuses is not None:
        stmt = stmt.where(QueueEntry.status.in_(tuple(statuses)))
    return set(session.exec(stmt).all())


def entries(session: Session, report: Report) -> list[tuple[QueueEntry, Stakeholder]]:
    """A report's queue entries with their stakeholders, oldest first (admin, tests)."""
    return list(
        session.exec(
            select(QueueEntry, Stakeholder)
            .join(Stakeholder, Stakeholder.id == QueueEntry.stakeholder_id)
            .where(QueueEntry.report_id == report.id)
            .order_by(QueueEntry.id)
        ).all()
    )


def queue(
    session: Session, stakeholder_id: int, statuses: Sequence[str] = OPEN_ENTRY
) -> list[tuple[QueueEntry, Report]]:
    """One stakeholder's queue: its entries in these statuses, the most urgent deadline first."""
    return list(
        session.exec(
            select(QueueEntry, Report)
            .join(Report, Report.id == QueueEntry.report_id)
            .where(QueueEntry.stakeholder_id == stakeholder_id, QueueEntry.status.in_(statuses))
            .order_by(QueueEntry.due_at, QueueEntry.id)
        ).all()
    )
