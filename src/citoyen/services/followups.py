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
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from citoyen.models import Contact, Conversation, QueueEntry, Report, ReportEvent
from citoyen.services.attachments import link_to_report
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
    session.add(
        ReportEvent(
            report_id=report.id,
            kind=kind,
            from_status=report.status,
            to_status=report.status,
            note=note,
            data=event_data,
            created_at=now,
        )
    )
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
    params["reference"] = report.reference
    params["addition_outcome"] = _say(
        render, "report.addition.answer" if kind == ANSWER else "report.addition.saved"
    )
    return params


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


def seen_by_staff(session: Session, report_id: int) -> None:
    """Staff acted on the report: its queue entries stop showing the citizen's latest addition."""
    session.execute(
        sa.update(QueueEntry)
        .where(QueueEntry.report_id == report_id, col(QueueEntry.citizen_update).is_not(None))
        .values(citizen_update=None, citizen_update_at=None)
        .execution_options(synchronize_session=False)
    )


def _say(render: Callable[[str], str] | None, key: str) -> str:
    return render(key) if render else key
