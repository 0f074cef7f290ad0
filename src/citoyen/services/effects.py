"""Applying the engine's effects to the world, inside the conversation's transaction.

The engine only says what should happen (a report, a consent change...); this module does it with
the database rows at hand and returns the values the reply texts may need (``reference``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from citoyen.db import insert_or_skip
from citoyen.engine.types import Effect
from citoyen.messages.addresses import WITHHELD
from citoyen.models import Contact, Conversation, Report, SurveyAnswer
from citoyen.services import followups
from citoyen.services.attachments import link_to_report
from citoyen.services.queues.places import area_id as _area_id
from citoyen.services.queues.routes import event_row, route_and_record
from citoyen.services.refcodes import new_reference
from citoyen.services.reports import live_report

log = logging.getLogger(__name__)


def _yes(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("yes", "true", "1"))


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
    # A reference drawn at random may exist already: the INSERT skips it and another is drawn.
    insert = insert_or_skip(session, Report, ["reference"])
    for _ in range(10):
        report = session.scalars(
            insert.values(**values, reference=new_reference()).returning(Report)
        ).first()
        if report is not None:
            break
    else:
        raise RuntimeError("could not draw a unique report reference")
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
    # What the citizen sent before the report (a recording, a voice note, a photo) joins it.
    link_to_report(session, conversation.id)
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
    if report is None:
        return "unknown"
    report = live_report(session, report)  # a merged report answers with the one it joined
    return report.status if report.status in PUBLIC_STATUSES else "in_progress"


# Effects that only set columns of the contact: no other row is read or written.
CONTACT_EFFECTS = frozenset({"set_language", "set_consent", "opt_out", "opt_in", "set_discreet"})


def contact_values(effect: Effect) -> dict[str, Any]:
    """The contact columns an effect of :data:`CONTACT_EFFECTS` sets, by name."""
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
    answer_window: timedelta = timedelta(hours=72),
    vault: Any = None,
) -> dict[str, Any]:
    """Apply effects in order; return values for the reply's placeholders.

    ``render(key)`` gives a text in the conversation's language, for values that are words
    (a report's status read back to the citizen). ``answer_window``: how long a staff message
    awaits the citizen's answer (settings ``after_report.answer_window``). ``vault``: the data
    key, for a phone number a ``phone`` question saved encrypted.
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
            if isinstance(data.get("place"), str):
                place = _area_id(session, data["place"])
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
            params.update(
                followups.staff_message_params(
                    session, contact, data.get("reference"), now, answer_window, render
                )
            )
        elif effect.kind == "add_to_report":
            params.update(
                followups.add_to_report(
                    session,
                    data,
                    contact=contact,
                    conversation=conversation,
                    channel=channel,
                    now=now,
                    answer_window=answer_window,
                    render=render,
                )
            )
        elif effect.kind == "request_callback":
            params["callback_answer"] = request_callback(
                session,
                contact=contact,
                conversation=conversation,
                channel=channel,
                now=now,
                render=render,
                phone=data.get("phone"),
                vault=vault,
            )
        else:
            raise ValueError(f"unknown effect {effect.kind!r}")
    return params


def request_callback(
    session: Session,
    *,
    contact: Contact,
    conversation: Conversation,
    channel: str,
    now: datetime,
    render: Callable[[str], str] | None = None,
    phone: Any = None,
    vault: Any = None,
) -> str:
    """Record a call-back request (citoyen.services.callbacks) and return what the citizen is
    told: the text ``callback.<outcome>`` in the conversation's language, with the time of the
    call filled in (``render`` leaves placeholders as they are).

    ``phone``: the number a ``phone`` question saved (encrypted; a Telegram citizen's own): the
    request is that number's, as if it had texted APPEL (the same hours, daily limit and
    budget), and the call's report is that number's too.
    """
    from citoyen.i18n import render_template
    from citoyen.services import callbacks

    policy = callbacks.policy_for(session)
    outcome = callbacks.request(
        session,
        contact=contact,
        key=callbacks.conversation_key(conversation),
        source=channel,
        now=now,
        policy=policy,
        phone=phone if isinstance(phone, str) else None,
        vault=vault,
    )
    key = f"callback.{outcome.kind}"
    text = render(key) if render else outcome.kind
    return render_template(text, callbacks.answer_params(outcome, policy))
