"""What a citizen sends about a report they already filed: thanks, more information, answers.

After a report, a citizen writes again: "merci", a detail they forgot, a photo, the answer to a
moderator's question. None of these is a new report (docs/flows.md, "After a report"). The
conversation service asks this module what a message is about before it picks a flow:

- the last staff message to the contact, when it was sent within the answer window: the message
  is the answer to it (the flow with the ``report_addition`` trigger);
- the contact's last report, when it was made within the acknowledgement window: a voice note or
  a photo is added to it (``report_addition`` again); a text gets a short acknowledgement that
  says how to follow up and add information (the flow with the ``after_report`` trigger);
- the contact's last report, for "SUIVI" or "AJOUT" sent without a reference.

The ``add_to_report`` effect keeps what the citizen adds with the report: a timeline event (with
the staff message it answers), the conversation linked to the report (its messages and
attachments show on the report page) and a mark on each queue entry until staff act.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlmodel import Session, col, select

from citoyen.engine.schema import AfterReport
from citoyen.engine.types import Input
from citoyen.models import Contact, Conversation, QueueEntry, Report, ReportEvent, Stakeholder
from citoyen.routing import texts
from citoyen.services.attachments import link_to_report
from citoyen.services.queues.config import router_for
from citoyen.services.queues.routes import OPEN_ENTRY, alert_on_call
from citoyen.services.reports import live_report

# Timeline kinds of what a citizen adds (the admin labels them).
ANSWER = "citizen_answer"
ADDITION = "citizen_addition"
# The staff event a citizen may answer: a message written to them from the admin.
STAFF_MESSAGE = "reply"


@dataclass(frozen=True)
class StaffQuestion:
    """The last staff message to a contact that still awaits an answer."""

    report: Report
    event: ReportEvent


@dataclass(frozen=True)
class About:
    """A message about a recent report: the trigger of the flow to run, and its answers."""

    trigger: Literal["report_addition", "after_report"]
    given: dict[str, Any]


def about_a_report(
    session: Session, contact_id: int, inp: Input, now: datetime, after: AfterReport
) -> About | None:
    """What a message that is neither a keyword nor part of a conversation says about the
    contact's reports, if anything (``after``: settings ``after_report``).

    Within the answer window of the last staff message, anything the citizen sends is the
    answer to it. Within the acknowledgement window of their last report, a voice note or a
    photo is more about it, and a text ("merci", "ok") is acknowledged.
    """
    if inp.kind not in ("text", "recording", "photo") or not inp.value:
        return None
    message: Any = inp.value if inp.kind == "text" else {inp.kind: inp.value}
    window = timedelta(seconds=after.answer_seconds)
    pending = staff_question(session, contact_id, now, window)
    if pending is not None:
        return About("report_addition", {"reference": pending.report.reference, "message": message})
    since = now - timedelta(seconds=after.acknowledge_seconds)
    last = last_report(session, contact_id, since=since)
    if last is None:
        return None
    if inp.kind != "text":
        return About("report_addition", {"reference": last.reference, "message": message})
    return About("after_report", {"reference": last.reference})


def last_report(session: Session, contact_id: int, since: datetime | None = None) -> Report | None:
    """The contact's latest report (made after ``since`` when given), not purged."""
    stmt = select(Report).where(Report.contact_id == contact_id, col(Report.purged_at).is_(None))
    if since is not None:
        stmt = stmt.where(Report.created_at >= since)
    return session.exec(stmt.order_by(col(Report.id).desc()).limit(1)).first()


def staff_question(
    session: Session, contact_id: int, now: datetime, window: timedelta
) -> StaffQuestion | None:
    """The last staff message written to the contact within ``window``, with its report."""
    row = session.exec(
        select(ReportEvent, Report)
        .join(Report, col(Report.id) == ReportEvent.report_id)
        .where(
            Report.contact_id == contact_id,
            ReportEvent.kind == STAFF_MESSAGE,
            ReportEvent.created_at >= now - window,
        )
        .order_by(col(ReportEvent.id).desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    event, report = row
    return StaffQuestion(report, event)


def own_report(session: Session, contact: Contact, reference: Any) -> Report | None:
    """The report of this reference when the contact made it (or the one it was merged into).

    Only the reporter may add to a report: the reference alone lets anyone learn its status,
    never write into it.
    """
    if not isinstance(reference, str):
        return None
    report = session.exec(select(Report).where(Report.reference == reference)).first()
    if report is None or report.contact_id != contact.id or report.purged_at is not None:
        return None
    return live_report(session, report)  # what is added to a merged report joins its target


def last_staff_message(session: Session, report: Report, since: datetime) -> ReportEvent | None:
    """The last staff message on ``report`` sent after ``since``."""
    return session.exec(
        select(ReportEvent)
        .where(
            ReportEvent.report_id == report.id,
            ReportEvent.kind == STAFF_MESSAGE,
            ReportEvent.created_at >= since,
        )
        .order_by(col(ReportEvent.id).desc())
        .limit(1)
    ).first()


def add_to_report(
    session: Session,
    data: dict[str, Any],
    *,
    contact: Contact,
    conversation: Conversation,
    channel: str,
    now: datetime,
    answer_window: timedelta,
    render: Callable[[str], str] | None,
) -> dict[str, Any]:
    """Keep what the citizen adds with their report; the values the reply's texts use.

    ``reference`` and ``addition_outcome`` (a sentence in the conversation's language: added,
    or no report of theirs by that reference). Text is the event's note; a recording (a call,
    a voice note) is an attachment of the conversation, which now joins the report.
    """
    reference = data.get("reference")
    report = own_report(session, contact, reference)
    params: dict[str, Any] = {"reference": reference if isinstance(reference, str) else ""}
    if report is None:
        params["addition_outcome"] = _say(render, "report.addition.unknown")
        return params
    content = data.get("content")
    question = last_staff_message(session, report, now - answer_window)
    kind = ANSWER if question is not None else ADDITION
    event_data: dict[str, Any] = {"conversation_id": conversation.id, "channel": channel}
    if question is not None:
        event_data["answers_event_id"] = question.id
        event_data["question"] = question.note
    if isinstance(content, dict) and (content.get("recording") or content.get("photo")):
        for media in ("recording", "photo"):
            if content.get(media):
                event_data[media] = str(content[media])
        note = None
    else:
        note = str(content) if content is not None else None
    event = ReportEvent(
        report_id=report.id,
        kind=kind,
        from_status=report.status,
        to_status=report.status,
        note=note,
        data=event_data,
        created_at=now,
    )
    session.add(event)
    conversation.report_id = report.id
    session.flush()
    link_to_report(session, conversation.id)  # type: ignore[arg-type]
    session.execute(
        sa.update(QueueEntry)
        .where(QueueEntry.report_id == report.id, col(QueueEntry.status) != "closed")
        .values(citizen_update="answer" if kind == ANSWER else "addition", citizen_update_at=now)
        .execution_options(synchronize_session=False)
    )
    report.updated_at = now
    _alert_on_call(session, report, event_key=str(event.id), now=now)
    params["reference"] = report.reference
    params["addition_outcome"] = _say(
        render, "report.addition.answer" if kind == ANSWER else "report.addition.saved"
    )
    return params


def _alert_on_call(session: Session, report: Report, *, event_key: str, now: datetime) -> None:
    """An urgent report's stakeholders still working it hear at once that the reporter answered
    or added something (their on-call phones and chats: the reference, never the words)."""
    if report.urgency != "emergency":
        return
    router = router_for(session)
    working = session.exec(
        select(QueueEntry, Stakeholder)
        .join(Stakeholder, col(Stakeholder.id) == QueueEntry.stakeholder_id)
        .where(QueueEntry.report_id == report.id, col(QueueEntry.status).in_(OPEN_ENTRY))
    ).all()
    for entry, stakeholder in working:
        alert_on_call(
            session,
            router,
            report,
            stakeholder,
            key=texts.ALERT_CITIZEN_UPDATE,
            purpose=f"update:{event_key}",
            due_at=entry.due_at,
            now=now,
        )


def staff_message_params(
    session: Session,
    contact: Contact,
    reference: Any,
    now: datetime,
    answer_window: timedelta,
    render: Callable[[str], str] | None,
) -> dict[str, Any]:
    """``staff_message``: the last staff message to the reporter within the answer window,
    read back on a call after they key their reference; empty for anyone else."""
    report = own_report(session, contact, reference)
    event = last_staff_message(session, report, now - answer_window) if report else None
    if event is None or not event.note:
        return {"staff_message": ""}
    said = _say(render, "report.staff_said")
    return {"staff_message": f"{said} {event.note}".strip()}


def _say(render: Callable[[str], str] | None, key: str) -> str:
    return render(key) if render else key
