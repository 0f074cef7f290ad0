"""Calls: one conversation turn per Twilio request, recordings, and what a hang-up keeps.

A call is a series of webhook requests, each numbered ``n`` (0 for the incoming call, then one
more per turn, carried in the action URLs). ``CallSid:n`` is the provider id the conversation
service dedupes on, so Twilio retrying a step gets the same answer and nothing is stored twice.

Callers hang up mid-flow, lose signal or go silent. What they said must not be lost: when a call
ends (Twilio's call status callback, or the engine giving up after silence or invalid keys) with a
category and a place given, the report is saved marked incomplete, with the recording if there
was one. Every path is idempotent: a repeated callback finds the work done and adds nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import Session, select

from citoyen.db import insert, write_session
from citoyen.engine.schema import ActionNode, PlaceNode
from citoyen.engine.textnorm import whole_number
from citoyen.engine.types import Input
from citoyen.messages.types import Inbound, Reply
from citoyen.models import Attachment, Contact, Conversation, Message, Report
from citoyen.services import effects
from citoyen.services.attachments import expire_attachments, link_to_report
from citoyen.services.conversations import OPEN_STATUSES
from citoyen.services.privacy import alias_label

log = logging.getLogger(__name__)

VOICE = "voice"
CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
RECORDING_SID = re.compile(r"RE[0-9a-fA-F]{32}")
# CallStatus values after which no more webhooks come for the call.
ENDED_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
# RecordingStatus values meaning there is nothing to fetch.
NO_RECORDING_STATUSES = frozenset({"absent", "failed"})
MAX_DURATION = 24 * 3600


@dataclass(frozen=True)
class Recording:
    """A recording Twilio made during a call (from a Record action or status callback)."""

    sid: str
    url: str | None = None
    duration: int | None = None


@dataclass(frozen=True)
class CallEnd:
    """What ending a call did: the conversation closed and the incomplete report, if any."""

    conversation_id: int
    report_id: int | None
    interrupted: bool


def provider_id(call_sid: str, n: int) -> str:
    return f"{call_sid}:{n}"


def parse_duration(value: str | None) -> int | None:
    """Twilio's RecordingDuration (whole seconds as text); None when absent or not a number."""
    seconds = whole_number(value)
    return seconds if seconds is not None and seconds <= MAX_DURATION else None


# --- one turn ------------------------------------------------------------------------------------


def voice_turn(
    runtime: Any,
    *,
    call_sid: str,
    n: int,
    address: str,
    inp: Input,
    recording: Recording | None = None,
    now: datetime | None = None,
) -> Reply:
    """Run one caller input through the conversation service (deduped on ``CallSid:n``).

    A recording is stored as a pending attachment of the conversation in the same transaction
    as the answer, and linked to the report as soon as one exists.
    """
    now = now or datetime.now(UTC)
    if n > 0 and _is_late(runtime, call_sid, n):
        return _late_input(runtime, call_sid, recording, now)

    def on_reply(session: Session, reply: Reply, contact_id: int) -> None:
        # A recording is kept, and joins the report if the conversation has one by now (one
        # made at this step or before; a report made later links it when it is created).
        if reply.conversation_id is None:
            return
        if recording is not None:
            _upsert_recording(session, recording, reply.conversation_id, contact_id)
            link_to_report(session, reply.conversation_id)
        if reply.status == "interrupted":
            # The engine gave up (silence twice, too many invalid keys): keep what was said.
            conversation = session.get(Conversation, reply.conversation_id)
            contact = session.get(Contact, contact_id)
            if conversation is not None and contact is not None:
                keep_unfinished(session, runtime, conversation, contact, now)

    inbound = Inbound(VOICE, address, inp, provider_id=provider_id(call_sid, n))
    return runtime.conversations.handle(inbound, now=now, on_reply=on_reply)


def _is_late(runtime: Any, call_sid: str, n: int) -> bool:
    """True for a new step of a call whose conversation already ended (hang-up seen first).

    The usual case (the call's conversation still open) costs one statement: the status of the
    conversation the call last spoke to. Only when it has ended is the step looked up, because
    a retry of a step already answered is not late.
    """
    with Session(runtime.engine) as session:
        status = session.exec(_call_status(call_sid)).first()
        if status is None or status in OPEN_STATUSES:
            return False
        seen = session.exec(
            select(Message.id).where(
                Message.channel == VOICE,
                Message.provider_id == provider_id(call_sid, n),
                Message.direction == "in",
            )
        ).first()
        return seen is None  # a retry: the conversation service answers it as the first time


def of_call(prefix: Any) -> Any:
    """The condition "this message is one of the call's": its provider id starts with
    ``prefix`` (``CallSid:``), compared as it is. Not ``LIKE``: SQLite's ``LIKE`` ignores case
    where PostgreSQL's does not, and a pattern given as a parameter cannot use an index."""
    return sa.func.substr(Message.provider_id, 1, sa.func.length(prefix)) == prefix


def _call_status(call_sid: str) -> Any:
    """The status of the conversation a call last spoke to (see call_conversation_id): its first
    message (``CallSid:0``) names the caller, whose messages of that call name the conversation."""
    first = aliased(Message)
    return (
        select(Conversation.status)
        .select_from(first)
        .join(
            Message,
            sa.and_(
                # The caller's messages (by contact), not the channel's: the call's prefix says
                # the channel, and an index on (channel, provider_id) would read every voice
                # message with the caller's.
                Message.contact_id == first.contact_id,
                Message.direction == "in",
                of_call(sa.literal(f"{call_sid}:")),
                Message.conversation_id.is_not(None),
            ),
        )
        .join(Conversation, Conversation.id == Message.conversation_id, isouter=True)
        .where(first.channel == VOICE, first.provider_id == provider_id(call_sid, 0))
        .order_by(Message.id.desc())
        .limit(1)
    )


def _late_input(runtime: Any, call_sid: str, recording: Recording | None, now: datetime) -> Reply:
    """A step that arrives after the call's conversation ended: keep a recording, say nothing.

    Twilio can deliver a Record action after the call status callback when the caller hangs up
    while recording; the conversation must not restart for it.
    """
    language = runtime.bundle.settings.languages.default
    with write_session(runtime.engine) as session:
        conversation_id = call_conversation_id(session, call_sid)
        conversation = session.get(Conversation, conversation_id) if conversation_id else None
        if conversation is not None:
            language = conversation.state.get("language") or language
            if recording is not None:
                _upsert_recording(session, recording, conversation.id, conversation.contact_id)
                link_to_report(session, conversation.id)
    return Reply(prompts=[], language=language, status="interrupted")


def call_conversation_id(session: Session, call_sid: str) -> int | None:
    """The conversation this call last spoke to, from the call's inbound messages.

    The call's first message (``CallSid:0``) is found by its unique key; the prefix search then
    only scans that caller's messages, never the whole table.
    """
    contact_id = session.exec(
        select(Message.contact_id).where(
            Message.channel == VOICE, Message.provider_id == provider_id(call_sid, 0)
        )
    ).first()
    if contact_id is None:
        return None
    return session.exec(
        select(Message.conversation_id)
        .where(
            Message.contact_id == contact_id,
            Message.channel == VOICE,
            Message.direction == "in",
            of_call(sa.literal(f"{call_sid}:")),
            Message.conversation_id.is_not(None),
        )
        .order_by(Message.id.desc())
    ).first()


# --- recordings ----------------------------------------------------------------------------------


def _upsert_recording(
    session: Session,
    recording: Recording,
    conversation_id: int | None,
    contact_id: int | None,
) -> int:
    """The id of a recording's attachment row, created once per RecordingSid (the unique key).

    The Record action and the recording-status callback may come in either order, or at once,
    and whichever comes second fills in what the first did not know (the conversation, the
    contact, the duration): one upsert, which also meets a concurrent one on the unique key.
    """
    table = Attachment.__table__  # type: ignore[attr-defined]
    upsert = insert(session, table).values(
        conversation_id=conversation_id,
        contact_id=contact_id,
        provider_ref=recording.sid,
        duration_seconds=recording.duration,
        created_at=datetime.now(UTC),
        channel=VOICE,
        kind="recording",
        status="pending",
        attempts=0,
    )
    attachment_id = session.execute(
        upsert.on_conflict_do_update(
            index_elements=["channel", "provider_ref"],
            set_={
                "conversation_id": sa.func.coalesce(
                    table.c.conversation_id, upsert.excluded.conversation_id
                ),
                "contact_id": sa.func.coalesce(table.c.contact_id, upsert.excluded.contact_id),
                "duration_seconds": sa.func.coalesce(
                    upsert.excluded.duration_seconds, table.c.duration_seconds
                ),
            },
        ).returning(table.c.id)
    ).scalar_one()
    expire_attachments(session)
    return attachment_id


def record_recording_status(runtime: Any, form: Mapping[str, str]) -> Attachment | None:
    """Apply a recordingStatusCallback: duration, and failure when Twilio has nothing to give.

    The callback may come before or after the Record action; whichever comes first creates the
    attachment, the other completes it.
    """
    sid = form.get("RecordingSid") or ""
    call_sid = form.get("CallSid") or ""
    if not RECORDING_SID.fullmatch(sid) or not CALL_SID.fullmatch(call_sid):
        return None
    status = form.get("RecordingStatus") or ""
    recording = Recording(sid=sid, duration=parse_duration(form.get("RecordingDuration")))
    # No retry on a race with the Record action: both meet in the same upsert of the row.
    with write_session(runtime.engine) as session:
        conversation_id = call_conversation_id(session, call_sid)
        existing = session.exec(
            select(Attachment.id).where(Attachment.channel == VOICE, Attachment.provider_ref == sid)
        ).first()
        if existing is None and conversation_id is None:
            log.info("voice: recording status for a call we never answered, ignored")
            return None
        conversation = session.get(Conversation, conversation_id) if conversation_id else None
        attachment = session.get_one(
            Attachment,
            _upsert_recording(
                session,
                recording,
                conversation_id,
                conversation.contact_id if conversation else None,
            ),
        )
        if status in NO_RECORDING_STATUSES and attachment.status == "pending":
            attachment.status = "failed"
            code = form.get("ErrorCode")
            attachment.error = f"Twilio recording {status}" + (
                f" (error {code})" if code and code != "0" else ""
            )
        if attachment.conversation_id is not None:
            link_to_report(session, attachment.conversation_id)
            session.refresh(attachment)  # its report, read back: the caller gets the row as is
        return attachment


# --- the end of a call ---------------------------------------------------------------------------


def handle_call_status(
    runtime: Any, form: Mapping[str, str], now: datetime | None = None
) -> CallEnd | None:
    """Apply a call status callback (POST /twilio/status with CallSid and CallStatus).

    For a call that has ended while its conversation is still open: save an incomplete report
    when a category and a place were given, and mark the conversation interrupted. Messages and
    answers stay. Returns None when there is nothing to do (call still going, call we never
    answered, callback already applied).
    """
    call_sid = form.get("CallSid") or ""
    status = form.get("CallStatus") or ""
    if not CALL_SID.fullmatch(call_sid) or status not in ENDED_STATUSES:
        return None
    now = now or datetime.now(UTC)
    for _attempt in range(3):
        try:
            with write_session(runtime.engine) as session:
                return _end_call(session, runtime, call_sid, status, now)
        except IntegrityError:
            continue  # a copy of this callback committed first: the next attempt sees it
    return None


def _end_call(
    session: Session, runtime: Any, call_sid: str, status: str, now: datetime
) -> CallEnd | None:
    end_id = f"{call_sid}:end"
    done = session.exec(
        select(Message.id).where(Message.channel == VOICE, Message.provider_id == end_id)
    ).first()
    if done is not None:
        return None
    conversation_id = call_conversation_id(session, call_sid)
    if conversation_id is None:
        return None
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        return None
    # Same lock order as the conversation service (contact first), so a late step of this call
    # and this callback are applied one after the other.
    contact = session.exec(
        select(Contact).where(Contact.id == conversation.contact_id).with_for_update()
    ).one()
    session.refresh(conversation)
    # The end of the call is a row with a unique provider id: two copies of the callback cannot
    # both pass this flush.
    session.add(
        Message(
            contact_id=contact.id,
            conversation_id=conversation.id,
            channel=VOICE,
            direction="in",
            provider_id=end_id,
            kind="hangup",
            body=status,
            created_at=now,
        )
    )
    session.flush()
    if conversation.status not in OPEN_STATUSES:
        return CallEnd(conversation.id, None, interrupted=False)
    report = keep_unfinished(session, runtime, conversation, contact, now)
    conversation.status = "interrupted"
    conversation.state = {**conversation.state, "status": "interrupted"}
    conversation.expires_at = None
    conversation.updated_at = now
    log.info(
        "voice: call of %s ended (%s) mid-flow at node %s%s",
        alias_label(contact.alias),
        status,
        conversation.node,
        f"; incomplete report {report.reference} kept" if report else "",
    )
    return CallEnd(conversation.id, report.id if report else None, interrupted=True)


def keep_unfinished(
    session: Session,
    runtime: Any,
    conversation: Conversation,
    contact: Contact,
    now: datetime,
) -> Report | None:
    """Save an unfinished conversation's answers as an incomplete report, when they say enough.

    Enough means a category and a place (a place partly chosen counts: the deepest area picked
    before the call ended, as "I don't know" at the next level would). The answer names come
    from the flow's own ``create_report`` action, so any flow that makes reports is covered.
    Nothing is done when the conversation already has a report.
    """
    has_report = session.exec(
        select(Report.id).where(Report.conversation_id == conversation.id)
    ).first()
    if has_report is not None:
        return None
    flow = runtime.conversations.flows.get(session, conversation.flow_id, conversation.flow_version)
    if flow is None:
        return None
    mapping = _report_mapping(flow)
    if mapping is None:
        return None
    answers: dict[str, Any] = dict(conversation.state.get("answers") or {})

    def get(name: str | None) -> Any:
        return answers.get(name) if name else None

    place = get(mapping.place) or _partial_place(flow, conversation, mapping.place)
    category = get(mapping.category)
    if not (isinstance(category, str) and category and isinstance(place, str) and place):
        return None
    data = {
        "category": category,
        "place": place,
        "description": get(mapping.description),
        "urgency": "emergency" if get(mapping.urgency_from) == "yes" else "normal",
        "anonymous": get(mapping.anonymous),
        "callback": get(mapping.callback),
        "answers": answers,
    }
    report = effects.create_report(
        session,
        data,
        contact=contact,
        conversation=conversation,
        flow=flow,
        channel=VOICE,
        now=now,
        incomplete=True,
    )
    if report.area_id is not None:
        contact.area_id = contact.area_id or report.area_id
    return report


def _report_mapping(flow: Any) -> Any:
    """The first ``create_report`` action of a flow (answer names of the report's fields)."""
    for node in flow.nodes.values():
        if isinstance(node, ActionNode):
            for action in node.do:
                if action.create_report is not None:
                    return action.create_report
    return None


def _partial_place(flow: Any, conversation: Conversation, answer: str | None) -> str | None:
    """The deepest area chosen so far when the call ended inside the place menus."""
    node = flow.nodes.get(conversation.node)
    if not isinstance(node, PlaceNode) or not answer or node.save != answer:
        return None
    path = (conversation.state.get("scratch") or {}).get("path") or []
    return path[-1] if path and isinstance(path[-1], str) else None
