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

import sqlalchemy as sa
from sqlmodel import Session, select

from citoyen.db import insert_or_skip
from citoyen.engine.schema import duration_seconds
from citoyen.models import QueueEntry, Report, ReportEvent, Stakeholder
from citoyen.routing import Route, RoutingConfig, resolve, texts
from citoyen.routing.schema import DEFAULT_FALLBACK, DEFAULT_SLA
from citoyen.services.areas.menus import AREA_RECHECK_SECONDS
from citoyen.services.areas.trees import database_area_tree
from citoyen.services.outbox import enqueue_many, queued_row
from citoyen.services.queues import places
from citoyen.services.queues.config import Router, router_for
from citoyen.services.queues.stakeholders import stakeholder_row
from citoyen.services.trial import is_test_report

log = logging.getLogger(__name__)

BAMAKO = ZoneInfo("Africa/Bamako")
OPEN_ENTRY = ("open", "acknowledged")  # entries of stakeholders still on a report


area_code = places.area_code  # the code of a report's area (from the cached copy of the areas)

_EVENT_TABLE = ReportEvent.__table__  # type: ignore[attr-defined]
_ENTRY_TABLE = QueueEntry.__table__  # type: ignore[attr-defined]


def _insert_rows(session: Session, table: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) in one executemany, after the session's own
    pending rows (a stakeholder made active again goes first)."""
    if rows:
        session.flush()
        session.execute(table.insert(), list(rows))


def event_row(
    report_id: int,
    kind: str,
    *,
    created_at: datetime,
    data: dict[str, Any],
    to_status: str | None = None,
    stakeholder_id: int | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """A ``report_events`` row for :func:`route_and_record` (every column: rows go in one
    executemany, which needs the same keys in each)."""
    return {
        "report_id": report_id,
        "kind": kind,
        "from_status": None,
        "to_status": to_status,
        "user_id": None,
        "stakeholder_id": stakeholder_id,
        "note": note,
        "data": data,
        "created_at": created_at,
    }


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
    stakeholder that declined gets its entry back only as the last resort, the fallback).

    One ``INSERT ... ON CONFLICT (report_id, stakeholder_id) DO NOTHING RETURNING`` when the
    entry is new (the usual case: escalation, forwarding, rerouting), instead of a lookup and an
    insert in a savepoint; the existing entry is read only when there is one.
    """
    due = now + timedelta(seconds=config.sla_seconds(report.urgency))
    row = _entry_row(
        report,
        stakeholder.id,
        via=via,
        rule_line=rule_line,
        chain=chain or config.chain_name(stakeholder.kind),
        level=level,
        escalated_from_id=escalated_from.id if escalated_from else None,
        due=due,
        now=now,
    )
    entry = session.scalars(
        insert_or_skip(session, QueueEntry, ["report_id", "stakeholder_id"])
        .values(**row)
        .returning(QueueEntry)
    ).first()
    if entry is not None:
        return entry
    # This stakeholder has an entry already (perhaps added by a concurrent transaction).
    existing = session.exec(
        select(QueueEntry).where(
            QueueEntry.report_id == report.id, QueueEntry.stakeholder_id == stakeholder.id
        )
    ).first()
    if existing is not None and existing.status == "declined" and via == "fallback":
        existing.status, existing.due_at, existing.escalated_at = "open", due, None
        existing.closed_at, existing.updated_at = None, now
        return existing
    return None


def _alert_rows(
    session: Session,
    router: Router,
    report: Report,
    stakeholder: Any,
    *,
    key: str,
    purpose: str,
    due_at: datetime,
    now: datetime,
) -> list[dict[str, Any]]:
    """The outbox rows alerting ``stakeholder``'s on-call addresses, one per idempotency key.

    ``stakeholder`` is a :class:`Stakeholder` or a row with its columns."""
    addresses = [
        item for item in stakeholder.on_call if isinstance(item, dict) and item.get("address_enc")
    ]
    if not addresses:
        return []
    lang = router.language(stakeholder.language)
    category = ([texts.category_key(report.category)] if report.category else []) + [
        texts.ALERT_CATEGORY_UNKNOWN
    ]
    place = (
        places.area_label(session, report.area_id)
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
    rows: dict[str, dict[str, Any]] = {}
    for item in addresses:
        digest = item.get("hash") or hashlib.sha256(item["address_enc"].encode()).hexdigest()
        idempotency_key = f"alert:{report.id}:{purpose}:{digest[:32]}"
        rows.setdefault(
            idempotency_key,
            queued_row(
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
            ),
        )
    return list(rows.values())


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
    when several stakeholders share an on-call phone (an address already alerted is skipped).
    """
    rows = _alert_rows(
        session, router, report, stakeholder, key=key, purpose=purpose, due_at=due_at, now=now
    )
    return len(enqueue_many(session, rows))


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
    route_and_record(session, report, now=now)
    return list(
        session.exec(
            select(QueueEntry).where(QueueEntry.report_id == report.id).order_by(QueueEntry.id)
        ).all()
    )


def route_and_record(
    session: Session,
    report: Report,
    *,
    now: datetime,
    events: Sequence[dict[str, Any]] = (),
) -> None:
    """:func:`route_new_report`, writing ``events`` (rows from :func:`event_row`: the report's
    own first events, ``created``) in the statement that writes its ``routed`` events.

    Everything that can fail for a routing reason (the configuration, the rules, the area tree,
    the stakeholders, the alert texts) is worked out first, writing nothing; then the report's
    entries, alerts and events are written in one statement each (the report is new: none of its
    stakeholders can have an entry yet). So no savepoint is needed to undo half a routing: a
    failure before the writes leaves nothing to undo, and the report goes to moderation.

    A report made in a test conversation (staff trying a flow, :mod:`citoyen.services.trial`)
    gets its events and no queue entry: no stakeholder ever sees it.
    """
    if is_test_report(session, report):
        _insert_rows(session, _EVENT_TABLE, list(events))
        return
    try:
        plan = _plan_new_report(session, report, now=now)
    except Exception:
        log.exception("routing report %s failed: it goes to the moderation queue", report.reference)
        _route_to_moderation(session, report, now=now, events=events)
        return
    opened, missing, due, alerts = plan
    _insert_rows(
        session,
        _ENTRY_TABLE,
        [
            _entry_row(
                report,
                stakeholder.id,
                via=route.via,
                rule_line=route.rule.line if route.rule else None,
                chain=chain,
                due=due,
                now=now,
            )
            for stakeholder, route, chain in opened
        ],
    )
    queued = enqueue_many(session, [row for rows in alerts for row in rows])
    rows = list(events)
    for (stakeholder, route, _chain), own in zip(opened, alerts, strict=True):
        data: dict[str, Any] = {
            "stakeholder": stakeholder.code,
            "via": route.via,
            "due_at": due.isoformat(),
            "alerts": sum(row["idempotency_key"] in queued for row in own),
        }
        if route.rule is not None:
            data["rule_line"] = route.rule.line
        if missing:
            data["missing"] = missing  # configured but unknown: the operator must look
        rows.append(
            event_row(report.id, "routed", stakeholder_id=stakeholder.id, data=data, created_at=now)
        )
    _insert_rows(session, _EVENT_TABLE, rows)


def _entry_row(
    report: Report,
    stakeholder_id: int,
    *,
    via: str,
    rule_line: int | None,
    chain: str,
    due: datetime,
    now: datetime,
    level: int = 0,
    escalated_from_id: int | None = None,
) -> dict[str, Any]:
    """A new open ``queue_entries`` row (every column: rows go in one executemany)."""
    return {
        "report_id": report.id,
        "stakeholder_id": stakeholder_id,
        "status": "open",
        "via": via,
        "rule_line": rule_line,
        "chain": chain,
        "escalation_level": level,
        "escalated_from_id": escalated_from_id,
        "due_at": due,
        "created_at": now,
        "updated_at": now,
        "report_status": report.status,
        "category": report.category,
        "urgency": report.urgency,
        "area_id": report.area_id,
        "reported_at": report.created_at,
    }


_Plan = tuple[
    list[tuple[Any, Route, str]],  # (stakeholder, route, escalation chain), one per stakeholder
    list[str],  # configured stakeholders the database does not know
    datetime,  # the entries' deadline
    list[list[dict[str, Any]]],  # each stakeholder's alerts (outbox rows)
]


def _plan_new_report(session: Session, report: Report, *, now: datetime) -> _Plan:
    """What routing a new report writes, worked out without writing (but for a configured
    stakeholder the database lacks, created as :func:`stakeholder_row` does)."""
    router = router_for(session)
    config = router.config
    # Reports are routed as citizens complete them: the area tree may be as stale as the menus
    # they chose from (a few seconds after an edit in another process).
    tree = database_area_tree(session, max_age=AREA_RECHECK_SECONDS)
    resolution = resolve(
        config,
        tree,
        category=report.category,
        area=area_code(session, report.area_id),
        urgency=report.urgency,
        exclude=(),
    )
    # The routes' stakeholders and the fallback, in one query.
    codes = list(dict.fromkeys([route.stakeholder for route in resolution.routes]))
    wanted = [*codes, config.fallback] if config.fallback not in codes else codes
    session.flush()
    found = session.execute(
        sa.select(
            Stakeholder.id,
            Stakeholder.code,
            Stakeholder.name,
            Stakeholder.kind,
            Stakeholder.language,
            Stakeholder.on_call,
            Stakeholder.active,
        ).where(Stakeholder.code.in_(wanted))
    )
    rows = {row.code: row for row in found}

    def stakeholder(code: str) -> Any:
        row = rows.get(code)
        configured = code in config.stakeholders or code == config.fallback
        if row is not None and (row.active or not configured):
            return row
        return stakeholder_row(session, config, code)  # to create, or to make active again

    opened: list[tuple[Any, Route, str]] = []
    missing: list[str] = []
    seen: set[int] = set()
    for route in resolution.routes:
        found = stakeholder(route.stakeholder)
        if found is None:
            missing.append(route.stakeholder)
        elif found.id not in seen:  # a stakeholder named twice gets one entry
            seen.add(found.id)
            opened.append((found, route, config.chain_name(found.kind)))
    if not opened:
        fallback = stakeholder(config.fallback)
        assert fallback is not None  # stakeholder_row always has the fallback
        opened.append(
            (fallback, Route(config.fallback, "fallback"), config.chain_name(fallback.kind))
        )
    due = now + timedelta(seconds=config.sla_seconds(report.urgency))
    alerts: list[list[dict[str, Any]]] = []
    keys: set[str] = set()
    for found, _route, _chain in opened:
        own: list[dict[str, Any]] = []
        if report.urgency == "emergency":
            for row in _alert_rows(
                session,
                router,
                report,
                found,
                key=texts.ALERT_EMERGENCY,
                purpose="emergency",
                due_at=due,
                now=now,
            ):
                if row["idempotency_key"] not in keys:  # an address two stakeholders share
                    keys.add(row["idempotency_key"])
                    own.append(row)
        alerts.append(own)
    return opened, missing, due, alerts


def _route_to_moderation(
    session: Session, report: Report, *, now: datetime, events: Sequence[dict[str, Any]]
) -> None:
    """The fallback queue for a report routing failed on (``events`` written first)."""
    _insert_rows(session, _EVENT_TABLE, events)
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
    add_entry(session, report, stakeholder, config, via="fallback", now=now)
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
