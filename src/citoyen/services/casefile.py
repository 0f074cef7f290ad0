"""Everything the admin's report page shows, gathered in one place for one user.

The transcript is rebuilt from the stored messages: what the citizen sent, and the reply the
service gave, rendered as the SMS text of the prompts it holds (the same words the citizen read
or heard). The reporter is an alias; their number is never part of a case file (revealing it is
a separate, audited action: :func:`citoyen.services.casework.reveal_identity`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from citoyen.messages.render import render_sms, stored_prompts
from citoyen.models import (
    Area,
    Attachment,
    Contact,
    Conversation,
    Message,
    QueueEntry,
    Report,
    ReportEvent,
    Stakeholder,
    User,
)
from citoyen.routing import texts
from citoyen.services.access import Staff, reports_in_scope
from citoyen.services.areas.labels import area_path
from citoyen.services.casework import staff_of
from citoyen.services.privacy import alias_label
from citoyen.services.queues.config import Router, router_for
from citoyen.services.queues.duplicates import suggest_duplicates
from citoyen.services.queues.status import TRANSITIONS


@dataclass
class TranscriptLine:
    at: datetime
    who: str  # "citizen" | "service"
    kind: str
    text: str


@dataclass
class EntryView:
    entry: QueueEntry
    stakeholder: Stakeholder
    assignee: str | None
    staff: list[tuple[int, str]]  # users the entry can be assigned to
    overdue: bool


@dataclass
class EventView:
    event: ReportEvent
    user: str | None
    stakeholder: str | None


@dataclass
class CaseFile:
    report: Report
    place: list[str]
    reporter: str
    contact: Contact | None
    transcript: list[TranscriptLine]
    attachments: list[Attachment]
    entries: list[EntryView]
    events: list[EventView]
    duplicates: list[Report]
    merged_into: Report | None
    merged: list[Report]
    transitions: tuple[str, ...]
    templates: dict[str, dict[str, str]] = field(default_factory=dict)
    stakeholders: list[Stakeholder] = field(default_factory=list)
    # "Forward to": the active stakeholders by kind, then by the area they cover (its name).
    stakeholder_groups: list[tuple[str, str | None, list[Stakeholder]]] = field(
        default_factory=list
    )
    stakeholder_names: dict[str, str] = field(default_factory=dict)  # code -> name
    reachable: bool = False


def transcript(
    session: Session, catalog: Any, report: Report, emergency: dict[str, Any]
) -> list[TranscriptLine]:
    """The conversations about the report, in order, as the citizen saw them: the one that made
    it, then those that added to it (information, answers to staff)."""
    later = select(Conversation.id).where(Conversation.report_id == report.id)
    about = col(Message.conversation_id).in_(later)
    if report.conversation_id is not None:
        about = about | (Message.conversation_id == report.conversation_id)
    lines: list[TranscriptLine] = []
    messages = session.exec(
        select(Message).where(about, Message.direction == "in").order_by(Message.id)
    ).all()
    for message in messages:
        if message.kind != "start":
            lines.append(
                TranscriptLine(message.created_at, "citizen", message.kind, message.body or "")
            )
        reply = message.reply or {}
        if reply.get("prompts"):
            lang = reply.get("language") or "fr"
            params = {**emergency, **(reply.get("params") or {})}
            try:
                text = render_sms(catalog, stored_prompts(reply), lang, params)
            except (KeyError, TypeError, ValueError):  # a text removed since: show the keys
                text = " / ".join(p.get("text") or p.get("node", "") for p in reply["prompts"])
            lines.append(TranscriptLine(message.created_at, "service", "reply", text))
    return lines


def build(
    session: Session,
    staff: Staff,
    report: Report,
    *,
    now: datetime,
    router: Router | None = None,
) -> CaseFile:
    router = router or router_for(session)
    catalog = router.catalog
    contact = session.get(Contact, report.contact_id) if report.contact_id else None
    users = {u.id: u.email for u in session.exec(select(User)).all()}
    stakeholders = {s.id: s for s in session.exec(select(Stakeholder)).all()}

    entries = []
    for entry in session.exec(
        select(QueueEntry).where(QueueEntry.report_id == report.id).order_by(QueueEntry.id)
    ).all():
        holder = stakeholders[entry.stakeholder_id]
        entries.append(
            EntryView(
                entry=entry,
                stakeholder=holder,
                assignee=users.get(entry.assigned_to) if entry.assigned_to else None,
                staff=[(u.id, u.email) for u in staff_of(session, holder.id)],  # type: ignore[misc]
                overdue=entry.status == "open" and entry.due_at < now,
            )
        )
    events = [
        EventView(
            event=e,
            user=users.get(e.user_id) if e.user_id else None,
            stakeholder=stakeholders[e.stakeholder_id].name
            if e.stakeholder_id in stakeholders
            else None,
        )
        for e in session.exec(
            select(ReportEvent)
            .where(ReportEvent.report_id == report.id)
            .order_by(ReportEvent.created_at, ReportEvent.id)
        ).all()
    ]
    suggested = suggest_duplicates(session, report, router=router)
    merged = list(session.exec(select(Report).where(Report.merged_into_id == report.id)).all())
    merged_into = session.get(Report, report.merged_into_id) if report.merged_into_id else None
    # Other reports are named only when they are in the user's queues too.
    related = [r.id for r in (*suggested, *merged, *([merged_into] if merged_into else []))]
    visible = reports_in_scope(session, staff, related)  # type: ignore[arg-type]
    duplicates = [r for r in suggested if r.id in visible]
    merged = [r for r in merged if r.id in visible]
    if merged_into is not None and merged_into.id not in visible:
        merged_into = None
    lang = staff.language if staff.language in catalog.languages else router.default_language
    transitions = TRANSITIONS.get(report.status, ()) if report.merged_into_id is None else ()
    return CaseFile(
        report=report,
        place=[a.name for a in area_path(session, report.area_id)] if report.area_id else [],
        reporter=alias_label(contact.alias) if contact else "",
        contact=contact,
        transcript=transcript(session, catalog, report, router.emergency),
        attachments=list(
            session.exec(
                select(Attachment)
                .where(
                    (Attachment.report_id == report.id)
                    | (
                        (Attachment.conversation_id == report.conversation_id)
                        & (Attachment.conversation_id.is_not(None))
                    )
                )
                .order_by(Attachment.id)
            ).all()
        ),
        entries=entries,
        events=events,
        duplicates=duplicates,
        merged_into=merged_into,
        merged=merged,
        transitions=transitions,
        templates={
            s: {
                name: catalog.render(
                    texts.template_key(s, name),
                    lang,
                    {**router.emergency, "reference": report.reference},
                )
                for name in texts.templates_for(catalog, s, lang)
            }
            for s in transitions
        },
        stakeholders=sorted(
            (s for s in stakeholders.values() if s.active), key=lambda s: (s.kind, s.name)
        ),
        stakeholder_groups=_stakeholder_groups(session, stakeholders.values()),
        stakeholder_names={s.code: s.name for s in stakeholders.values()},
        reachable=contact is not None
        and contact.channel != "withheld"
        and not contact.opted_out
        and not contact.blocked,
    )


def _stakeholder_groups(
    session: Session, stakeholders: Iterable[Stakeholder]
) -> list[tuple[str, str | None, list[Stakeholder]]]:
    """Active stakeholders grouped by (kind, name of the area they cover), in that order: a
    list of 55 is read by kind ("gendarmerie") and place ("Ségou"), not alphabetically."""
    active = [s for s in stakeholders if s.active]
    area_ids = {s.area_id for s in active if s.area_id is not None}
    names = (
        dict(session.exec(select(Area.id, Area.name).where(Area.id.in_(area_ids))).all())
        if area_ids
        else {}
    )
    groups: dict[tuple[str, str | None], list[Stakeholder]] = {}
    for holder in sorted(active, key=lambda s: (s.kind, names.get(s.area_id) or "", s.name)):
        groups.setdefault((holder.kind, names.get(holder.area_id)), []).append(holder)
    return [(kind, area, members) for (kind, area), members in groups.items()]
