"""Applying the engine's effects to the world, inside the conversation's transaction.

The engine only says what should happen (a report, a consent change...); this module does it with
the database rows at hand and returns the values the reply texts may need (``reference``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session, select

from citoyen.db import INSERT
from citoyen.engine.types import Effect
from citoyen.models import Contact, Conversation, Report, SurveyAnswer
from citoyen.prepared import Prepared, bound, session_connection
from citoyen.services.privacy import WITHHELD
from citoyen.services.queues.places import area_id as _area_id
from citoyen.services.queues.routes import event_row, route_and_record
from citoyen.services.refcodes import new_reference

log = logging.getLogger(__name__)


def _yes(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("yes", "true", "1"))


# A new report: one INSERT that skips a reference already taken (drawn again then) and returns
# the row, instead of a savepoint, a Report built field by field and a flush. Prepared once per
# dialect (:mod:`citoyen.prepared`), then the row joins the session as a persistent Report, as a
# query would load it: through the ORM (``from_statement``) the same INSERT cost 0.34 ms of CPU,
# prepared and attached 0.13 ms (bench note in docs/performance.md, sixth pass).
_REPORTS = Report.__table__  # type: ignore[attr-defined]
_INSERT_REPORT = {
    name: Prepared(
        insert(_REPORTS)
        .values(bound(_REPORTS, [column.name for column in _REPORTS.c if column.name != "id"]))
        .on_conflict_do_nothing(index_elements=["reference"])
        .returning(*_REPORTS.c)
    )
    for name, insert in INSERT.items()
}
_NEW_REPORT = sa.inspect(Report).class_manager.new_instance


def _persistent_report(session: Session, row: Any) -> Report:
    """``row`` (every column of a report just inserted) as a Report of ``session``, as if a
    query had loaded it: later changes to it are flushed as UPDATEs."""
    report = _NEW_REPORT()  # what the ORM's loading makes: no __init__, no validation
    report.__dict__.update(row._asdict())
    make_transient_to_detached(report)  # the identity key, from the id
    session.add(report)
    return report


def create_report(
    session: Session,
    data: dict[str, Any],
    *,
    contact: Contact,
    conversation: Conversation,
    flow: Any,
    channel: str,
    now: datetime,
    incomplete: bool = False,
) -> Report:
    """A new report with a unique reference and its first timeline event."""
    description = data.get("description")
    recording = None
    if isinstance(description, dict):
        recording = description.get("recording")
        description = None
    anonymous_value = data.get("anonymous")
    # A caller with a withheld number cannot be called or written back: anonymous, always.
    reachable = contact.channel != WITHHELD
    values = {
        "contact_id": contact.id,
        "conversation_id": conversation.id,
        "channel": channel,
        "language": contact.language,
        "category": data.get("category") if isinstance(data.get("category"), str) else None,
        "urgency": data.get("urgency") or "normal",
        "area_id": _area_id(session, data.get("place")),
        "description": description if isinstance(description, str) else None,
        "recording_url": recording,
        # Anonymous unless the citizen explicitly said we may call back.
        "anonymous": not reachable or not (anonymous_value == "no" or anonymous_value is False),
        "callback_ok": reachable and (anonymous_value == "no" or _yes(data.get("callback"))),
        "incomplete": incomplete,
        "status": "new",
        "answers": data.get("answers") or {},
        "flow_version": getattr(flow, "version", None),
        "created_at": now,
        "updated_at": now,
        "merged_into_id": None,
        "purged_at": None,
    }
    conn = session_connection(session)
    statement = _INSERT_REPORT[conn.dialect.name]
    for _ in range(10):
        values["reference"] = new_reference()
        rows = statement.execute(conn, values).rows
        if rows:
            break  # else the same random reference exists: draw another one
    else:
        raise RuntimeError("could not draw a unique report reference")
    report = _persistent_report(session, rows[0])
    created = event_row(
        report.id,
        "created",
        to_status="new",
        data={"channel": channel, "urgency": report.urgency, "incomplete": incomplete},
        created_at=now,
    )
    # Into the stakeholders' queues in this same transaction: a report exists if and only if it
    # is routed (emergencies alert the on-call addresses through the outbox). The created event
    # goes in with the routed ones, in one statement.
    route_and_record(session, report, now=now, events=[created])
    return report


PUBLIC_STATUSES = ("new", "acknowledged", "in_progress", "resolved", "closed")


def lookup_status(session: Session, reference: Any) -> str:
    """A report's status as a citizen may hear it: the status word only, nothing else.

    The reference is the capability: whoever holds it may learn the status, never who reported,
    where, or what the stakeholders wrote.
    """
    if not isinstance(reference, str):
        return "unknown"
    report = session.exec(select(Report).where(Report.reference == reference)).first()
    for _ in range(5):  # a merged report answers with the report it was merged into
        if report is None or report.merged_into_id is None:
            break
        report = session.get(Report, report.merged_into_id)
    if report is None:
        return "unknown"
    return report.status if report.status in PUBLIC_STATUSES else "in_progress"


# Effects that only set columns of the contact: no other row is read or written.
CONTACT_EFFECTS = frozenset({"set_language", "set_consent", "opt_out", "opt_in", "set_discreet"})


def contact_values(effect: Effect) -> dict[str, Any]:
    """The contact columns an effect of :data:`CONTACT_EFFECTS` sets, by name.

    Kept apart from :func:`apply` so a step computed before any row is locked
    (:mod:`citoyen.services.unlocked_step`) writes exactly what :func:`apply` would set.
    """
    data = effect.data
    if effect.kind == "set_language":
        return {"language": data["language"]}
    if effect.kind == "set_consent":
        return {"survey_consent": bool(data.get("consent"))}
    if effect.kind == "opt_out":
        return {"opted_out": True, "survey_consent": False}
    if effect.kind == "opt_in":
        return {"opted_out": False}
    if effect.kind == "set_discreet":
        return {"discreet": bool(data.get("discreet"))}
    raise ValueError(f"{effect.kind!r} is not a contact effect")


# Effects that read or write rows other than the contact's: reports, survey answers, lookups.
ROW_EFFECTS = frozenset({"create_report", "save_answers", "lookup_report"})


def report_place(session: Session, effect: Effect) -> int | None:
    """The area a ``create_report`` effect gives its contact (the report's place, when it is a
    known area); None when the effect leaves the contact's area as it was."""
    if effect.kind != "create_report" or not isinstance(effect.data.get("place"), str):
        return None
    return _area_id(session, effect.data["place"])


def apply(
    session: Session,
    effects: Sequence[Effect],
    *,
    contact: Contact,
    conversation: Conversation,
    flow: Any,
    channel: str,
    now: datetime,
    render: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """Apply effects in order; return values for the reply's placeholders.

    ``render(key)`` gives a text in the conversation's language, for values that are words
    (a report's status read back to the citizen).
    """
    params: dict[str, Any] = {}
    for effect in effects:
        data = effect.data
        if effect.kind in CONTACT_EFFECTS:
            for name, value in contact_values(effect).items():
                setattr(contact, name, value)
        elif effect.kind == "create_report":
            report = create_report(
                session,
                data,
                contact=contact,
                conversation=conversation,
                flow=flow,
                channel=channel,
                now=now,
            )
            params["reference"] = report.reference
            place = report_place(session, effect)
            if place is not None:
                contact.area_id = place
        elif effect.kind == "save_answers":
            area_id = contact.area_id
            answers = data.get("answers") or {}
            if isinstance(answers.get("place"), str):
                area_id = _area_id(session, answers["place"]) or area_id
            for question, answer in answers.items():
                if question == "language" or not isinstance(answer, str | int | float):
                    continue
                session.add(
                    SurveyAnswer(
                        conversation_id=conversation.id,
                        contact_id=contact.id,
                        flow_id=data.get("flow_id") or conversation.flow_id,
                        flow_version=data.get("flow_version") or conversation.flow_version,
                        question=question,
                        answer=str(answer),
                        area_id=area_id,
                        created_at=now,
                    )
                )
        elif effect.kind == "lookup_report":
            status = lookup_status(session, data.get("reference"))
            params["reference"] = data.get("reference") or ""
            key = f"report.status.{status}"
            params["report_status"] = render(key) if render else status
        else:
            raise ValueError(f"unknown effect {effect.kind!r}")
    return params
