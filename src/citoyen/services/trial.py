"""Test conversations: staff try a flow in the admin as a citizen would see it on a channel.

A test conversation goes through the same conversation service as the real channels (the same
engine step, effects and storage), so what staff see is what a citizen would get. It is marked
where it enters: its contact has an address of the kind ``test:`` (:data:`privacy.TEST`), which
no provider ever sends, so the contact's ``channel`` is ``test``. From there:

- a report it makes is never routed to a stakeholder's queue (:func:`is_test_report`, checked by
  ``services.queues.routes``) and never counted or listed (:func:`real_reports`: dashboard,
  exports, scopes, duplicates);
- it never gets a survey invitation (survey audiences take phone and Telegram contacts only), so
  its answers never reach an indicator, which counts invited answers only;
- :func:`purge` (a worker job, hourly) removes test contacts older than a day with everything
  they made.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from citoyen.db import write_session
from citoyen.engine import sms
from citoyen.engine.types import Input, Prompt
from citoyen.messages.addresses import TEST, TEST_ADDRESS
from citoyen.messages.render import render_sms, render_telegram, render_voice, stored_prompts
from citoyen.models import (
    Attachment,
    Contact,
    Conversation,
    InboundThrottle,
    Message,
    Outbox,
    QueueEntry,
    Report,
    ReportEvent,
    SurveyAnswer,
    SurveyInvitation,
)
from citoyen.services.contacts import find_contact, new_contact
from citoyen.services.refusals import Refusal

log = logging.getLogger(__name__)

CHANNELS = ("sms", "telegram", "voice")
MAX_AGE = timedelta(days=1)
AudioUrl = Callable[[str, str], str | None]  # (text key, language) -> URL of its recording


class TrialError(Refusal):
    """A test conversation that cannot be started or continued: the English reason, and a code
    the admin words in the staff's language (``trial_channel``, ``trial_language``,
    ``trial_flow``, ``trial_address``)."""


def is_test_address(address: str | None) -> bool:
    return bool(address) and TEST_ADDRESS.fullmatch(address or "") is not None


def real_reports() -> sa.ColumnElement[bool]:
    """Reports that did not come from a test conversation (for ``WHERE``; the contact is
    aliased so that a query already joining contacts keeps its own)."""
    tester = aliased(Contact)
    return ~sa.exists(
        select(tester.id)
        .where(tester.id == Report.contact_id, tester.channel == TEST)
        .correlate(Report)
    )


def is_test_report(session: Session, report: Report) -> bool:
    if report.contact_id is None:
        return False
    # The reporter is in the session already when a step makes the report: no query then.
    contact = session.get(Contact, report.contact_id)
    return contact is not None and contact.channel == TEST


@dataclass
class Turn:
    """One line of a test conversation as the chosen channel shows it."""

    who: str  # "citizen" | "service"
    text: str = ""
    buttons: list[tuple[str, str]] = field(default_factory=list)  # Telegram: (label, key)
    share_phone: str | None = None  # Telegram: the button that shares the citizen's number
    voice: list[tuple[str, str | None]] = field(default_factory=list)  # (said, recording URL)
    gather: str | None = None  # voice: "key", "digits", "record"; None: the call ends
    segments: int = 0  # SMS parts


def start(
    runtime: Any, *, channel: str, language: str, flow_id: str, now: datetime | None = None
) -> str:
    """A new test contact speaking ``language`` on a conversation of ``flow_id``; its address."""
    bundle = runtime.bundle
    if channel not in CHANNELS:
        raise TrialError(f"unknown channel '{channel}'", "trial_channel", channel=channel)
    if language not in bundle.settings.languages.enabled:
        raise TrialError(
            f"language '{language}' is not enabled", "trial_language", language=language
        )
    if flow_id not in bundle.flows:
        raise TrialError(f"no flow '{flow_id}'", "trial_flow", flow=flow_id)
    now = now or datetime.now(UTC)
    address = f"{TEST}:{secrets.token_hex(16)}"
    with write_session(runtime.engine) as session:
        contact = new_contact(session, runtime.vault, address, now)
        contact.language = language
        session.add(contact)
    first = Input("start") if channel == "voice" else Input("text", "")
    send(runtime, address, channel, first, flow_id=flow_id)
    return address


def send(
    runtime: Any, address: str, channel: str, inp: Input, *, flow_id: str | None = None
) -> Any:
    """One input of a test conversation, through the conversation service; its reply."""
    from citoyen.messages.types import Inbound

    if not is_test_address(address):
        raise TrialError("not a test conversation", "trial_address")
    inbound = Inbound(
        channel, address, inp, provider_id=f"trial-{secrets.token_hex(12)}", flow_id=flow_id
    )
    return runtime.conversations.handle(inbound)


def contact_of(runtime: Any, address: str) -> Contact | None:
    if not is_test_address(address):
        return None
    with Session(runtime.engine, expire_on_commit=False) as session:
        return find_contact(session, runtime.vault, address)


def transcript(runtime: Any, address: str, channel: str, audio: AudioUrl) -> list[Turn]:
    """The test conversation so far, each reply rendered as ``channel`` shows it."""
    contact = contact_of(runtime, address)
    if contact is None:
        return []
    bundle = runtime.bundle
    catalog = bundle.catalog
    emergency = dict(bundle.settings.emergency_numbers)
    with Session(runtime.engine) as session:
        messages = session.exec(
            select(Message)
            .where(Message.contact_id == contact.id, Message.direction == "in")
            .order_by(col(Message.id))
        ).all()
    turns: list[Turn] = []
    for message in messages:
        if message.kind not in ("start",) and (message.body or message.kind != "text"):
            said = _said(message)
            if message.kind == "choice" and turns:  # a button pressed shows its label
                said = dict((k, label) for label, k in turns[-1].buttons).get(said, said)
            turns.append(Turn("citizen", said))
        reply = message.reply or {}
        if not reply.get("prompts"):
            continue
        lang = reply.get("language") or bundle.settings.languages.default
        params = {**emergency, **(reply.get("params") or {})}
        turns.append(_render(catalog, stored_prompts(reply), lang, params, channel, audio))
    return turns


def _said(message: Message) -> str:
    if message.kind == "recording":
        return f"({message.body or 'recording'})"
    if message.kind == "timeout":
        return "(no answer)"
    return message.body or message.kind


def _render(
    catalog: Any,
    prompts: list[Prompt],
    lang: str,
    params: dict[str, Any],
    channel: str,
    audio: AudioUrl,
) -> Turn:
    if channel == "sms":
        text = render_sms(catalog, prompts, lang, params)
        return Turn("service", text, segments=sms.segments(text))
    if channel == "telegram":
        messages = render_telegram(catalog, prompts, lang, params)
        return Turn(
            "service",
            "\n\n".join(m.text for m in messages),
            buttons=[b for m in messages for b in m.buttons],
            share_phone=next((m.share_phone for m in messages if m.share_phone), None),
        )
    turn = render_voice(catalog, prompts, lang, params, audio=audio)
    gather = None
    if turn.gather is not None:
        if turn.gather["input"] == "record":
            gather = "record"
        else:
            gather = "digits" if turn.gather.get("finish_on_key") else "key"
    voice = [(s.text, str(s.audio) if s.audio else None) for s in turn.segments]
    return Turn("service", voice=voice, gather=gather)


def purge(engine: Any, now: datetime | None = None, max_age: timedelta = MAX_AGE) -> int:
    """Remove test contacts first seen more than ``max_age`` ago, with all they made; how many."""
    now = now or datetime.now(UTC)
    with write_session(engine) as session:
        ids = list(
            session.exec(
                select(Contact.id).where(
                    Contact.channel == TEST, Contact.created_at < now - max_age
                )
            ).all()
        )
        if not ids:
            return 0
        reports = select(Report.id).where(col(Report.contact_id).in_(ids))
        conversations = select(Conversation.id).where(col(Conversation.contact_id).in_(ids))
        for statement in (
            sa.delete(ReportEvent).where(col(ReportEvent.report_id).in_(reports)),
            sa.delete(QueueEntry).where(col(QueueEntry.report_id).in_(reports)),
            sa.delete(Attachment).where(
                sa.or_(col(Attachment.report_id).in_(reports), col(Attachment.contact_id).in_(ids))
            ),
            sa.delete(Outbox).where(col(Outbox.contact_id).in_(ids)),
            sa.delete(SurveyAnswer).where(col(SurveyAnswer.contact_id).in_(ids)),
            sa.delete(SurveyInvitation).where(col(SurveyInvitation.contact_id).in_(ids)),
            sa.delete(InboundThrottle).where(col(InboundThrottle.contact_id).in_(ids)),
            sa.delete(Message).where(col(Message.contact_id).in_(ids)),
            sa.delete(Report).where(col(Report.contact_id).in_(ids)),
            sa.delete(Message).where(col(Message.conversation_id).in_(conversations)),
            sa.delete(Conversation).where(col(Conversation.contact_id).in_(ids)),
            sa.delete(Contact).where(col(Contact.id).in_(ids)),
        ):
            session.execute(statement)
    log.info("removed %d test conversation contact(s) older than %s", len(ids), max_age)
    return len(ids)


def scheduled_jobs(runtime: Any) -> list[dict[str, Any]]:
    """The worker's hourly removal of test conversations older than a day."""
    return [
        {
            "func": purge,
            "trigger": "interval",
            "hours": 1,
            "args": [runtime.engine],
            "id": "purge_test_conversations",
            "name": "remove test conversations older than a day",
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": 600,
        }
    ]
