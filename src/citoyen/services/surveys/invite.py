"""Inviting a run's drawn contacts: a batch of thousands in a few statements.

One invitation is: the contact re-checked under a row lock (consent may have been withdrawn
since the draw), the ``survey_invitations`` row (unique per run and contact: the guarantee that
nobody is invited twice) and, for a text invitation, a conversation started on the survey's flow
with its "start" message and the first prompts queued in the outbox under
``survey:{invitation}:invite:{i}``. A voice invitation is the row alone: the call is placed later
by the survey calls job (:mod:`.voice`, docs/surveys.md says why calls do not go through the
outbox).

:func:`invite_batch` is the one way to invite, for a batch of any size:

- the contacts are read and locked in one query (``FOR UPDATE`` on PostgreSQL, so a STOP arriving
  meanwhile waits for this transaction and the dispatcher then skips the queued rows); the
  invitations already made in this run and the open conversations in two more;
- the flow's first step is computed once per language and channel: the engine is pure and sees
  a contact only through its language (:meth:`ConversationService.opening`), so every contact of
  a group gets the same conversation state, menu, message and texts. A first step with effects
  writes per contact (:meth:`ConversationService.start` for each);
- invitations, conversations and messages are inserted in bulk, the invitations with
  ``ON CONFLICT DO NOTHING``: a second firing or another worker inviting the same contacts
  concurrently inserts nothing for them, and they count as "already" invited; the outbox rows
  go through :func:`~citoyen.services.outbox.enqueue_many`, as every other queued message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from citoyen.db import among, insert_or_skip
from citoyen.models import Contact, Conversation, Message, SurveyInvitation
from citoyen.services.conversations import OPEN_STATUSES, Opening
from citoyen.services.outbox import enqueue_many, queued_row
from citoyen.services.surveys.definitions import SurveyDef

log = logging.getLogger(__name__)

STOP_NOTICE = "survey.stop_notice"


@dataclass(slots=True)
class Candidate:
    contact_id: int
    channel: str  # sms | telegram | voice


def with_notice(catalog: Any, text: str, lang: str) -> str:
    """``text`` followed by the stop notice in ``lang`` (every message we originate ends so)."""
    notice = catalog.render(STOP_NOTICE, lang, {})
    return f"{text}\n\n{notice}" if text else notice


def invitation_messages(catalog: Any, reply: Any, channel: str) -> list[tuple[str, dict[str, Any]]]:
    """(text, payload) per outbox row for a conversation's first prompts, stop notice included."""
    if channel == "sms":
        from citoyen.channels.sms import split_sms
        from citoyen.messages.render import render_sms

        text = render_sms(catalog, reply.prompts, reply.language, reply.params)
        return [(part, {}) for part in split_sms(with_notice(catalog, text, reply.language))]
    if channel == "telegram":
        from citoyen.channels.telegram_updates import reply_payloads

        messages = reply_payloads(catalog, reply)
        if not messages:
            return [(with_notice(catalog, "", reply.language), {"buttons": []})]
        text, payload = messages[-1]
        messages[-1] = (with_notice(catalog, text, reply.language), payload)
        return messages
    raise ValueError(f"no text invitation on channel {channel!r}")


def _consents(contact: Any) -> bool:
    return not contact.opted_out and not contact.blocked and bool(contact.survey_consent)


def _invitation_row(
    survey: SurveyDef, run_id: int, candidate: Candidate, now: datetime, send_at: datetime
) -> dict[str, Any]:
    """The columns of a new invitation (the conversation is set once started)."""
    return {
        "run_id": run_id,
        "survey": survey.id,
        "contact_id": candidate.contact_id,
        "channel": candidate.channel,
        "status": "calling" if candidate.channel == "voice" else "invited",
        "invited_at": now,
        "send_at": send_at,
        "expires_at": send_at + survey.expiry_delta,
        "call_attempts": 0,
    }


def _queued_rows(
    survey: SurveyDef,
    channel: str,
    invitations: dict[int, int],
    messages: list[tuple[str, dict[str, Any]]],
    now: datetime,
    send_at: datetime,
) -> list[dict[str, Any]]:
    """The outbox rows of these invitations (contact id -> invitation id), one per message of
    the invitation (an SMS cut in two: two), to be sent from ``send_at`` and only within the
    survey's quiet hours (the dispatcher holds them at night: a wave can last days)."""
    return [
        queued_row(
            channel=channel,
            idempotency_key=f"survey:{invitation_id}:invite:{index}",
            body=text,
            payload={**payload, "survey": survey.id, "invitation": invitation_id},
            contact_id=contact_id,
            kind="survey",
            now=now,
            send_at=send_at,
            quiet_hours=survey.quiet_spec,
        )
        for contact_id, invitation_id in invitations.items()
        for index, (text, payload) in enumerate(messages)
    ]


# --- a batch -----------------------------------------------------------------------------------


def _locked_contacts(session: Session, ids: list[int]) -> dict[int, Any]:
    """The contacts' consent and language now, their rows locked until the batch commits."""
    stmt = (
        select(
            Contact.id,
            Contact.language,
            Contact.survey_consent,
            Contact.opted_out,
            Contact.blocked,
        )
        .where(among(session, Contact.id, ids))
        .order_by(Contact.id)  # one lock order for every worker: no deadlock between two
        .with_for_update()
    )
    return {row.id: row for row in session.exec(stmt).all()}


def _already_invited(session: Session, run_id: int, ids: list[int]) -> set[int]:
    stmt = select(SurveyInvitation.contact_id).where(
        SurveyInvitation.run_id == run_id,
        among(session, SurveyInvitation.contact_id, ids),
    )
    return set(session.exec(stmt).all())


def _open_conversations(
    session: Session, ids: list[int], now: datetime
) -> tuple[set[int], dict[int, int]]:
    """Who is in the middle of a conversation, and each other contact's latest open but expired
    conversation (closed when the contact is invited), as ``open_conversation`` decides."""
    stmt = (
        select(Conversation.id, Conversation.contact_id, Conversation.expires_at)
        .where(
            among(session, Conversation.contact_id, ids),
            Conversation.status.in_(OPEN_STATUSES),
        )
        .order_by(Conversation.id)
    )
    latest = {row.contact_id: row for row in session.exec(stmt).all()}
    busy = {cid for cid, row in latest.items() if row.expires_at is None or row.expires_at > now}
    stale = {cid: row.id for cid, row in latest.items() if cid not in busy}
    return busy, stale


def _close_expired(session: Session, conversation_ids: list[int], now: datetime) -> None:
    """Mark these open but expired conversations expired (what ``open_conversation`` does)."""
    if not conversation_ids:
        return
    rows = session.exec(
        select(Conversation.id, Conversation.state).where(Conversation.id.in_(conversation_ids))
    ).all()
    table = Conversation.__table__
    session.connection().execute(
        table.update()
        .where(table.c.id == sa.bindparam("b_id"))
        .values(status="expired", state=sa.bindparam("b_state"), updated_at=now),
        [{"b_id": cid, "b_state": {**state, "status": "expired"}} for cid, state in rows],
    )


def invite_batch(
    session: Session,
    runtime: Any,
    survey: SurveyDef,
    run_id: int,
    batch: list[Candidate],
    now: datetime,
    send_at: datetime,
) -> dict[int, str]:
    """Invite a batch in the session's transaction: contact id -> 'invited', 'already', or why it
    was skipped ('no_consent', 'busy')."""
    outcomes: dict[int, str] = {}
    ids = [c.contact_id for c in batch]
    contacts = _locked_contacts(session, ids) if ids else {}
    already = _already_invited(session, run_id, ids) if ids else set()
    conversations = runtime.conversations
    openings: dict[tuple[str | None, str], Opening] = {}
    calls: list[Candidate] = []
    texts: list[Candidate] = []
    for candidate in batch:
        cid = candidate.contact_id
        contact = contacts.get(cid)
        if cid in already:
            outcomes[cid] = "already"
        elif contact is None or not _consents(contact):
            outcomes[cid] = "no_consent"
        elif candidate.channel == "voice":
            calls.append(candidate)
        else:
            key = (contact.language, candidate.channel)
            if key not in openings:
                openings[key] = conversations.opening(
                    session, survey.flow, candidate.channel, contact.language
                )
            texts.append(candidate)
    invited = _insert_calls(session, survey, run_id, calls, now, send_at)
    busy, stale = _open_conversations(session, [c.contact_id for c in texts], now)
    for cid in busy:
        outcomes[cid] = "busy"
    free = [c for c in texts if c.contact_id not in busy]
    started = _write(session, runtime, survey, run_id, free, contacts, openings, now, send_at)
    _close_expired(session, [stale[cid] for cid in started if cid in stale], now)
    invited |= started
    for candidate in [*calls, *free]:
        outcomes[candidate.contact_id] = "invited" if candidate.contact_id in invited else "already"
    return outcomes


def _insert_calls(
    session: Session,
    survey: SurveyDef,
    run_id: int,
    candidates: list[Candidate],
    now: datetime,
    send_at: datetime,
) -> set[int]:
    """The invitations of these voice candidates (the call is placed later); who was invited
    (not meanwhile by another firing)."""
    if not candidates:
        return set()
    table = SurveyInvitation.__table__  # type: ignore[attr-defined]
    rows = [_invitation_row(survey, run_id, c, now, send_at) for c in candidates]
    stmt = insert_or_skip(session, table, ["run_id", "contact_id"]).returning(table.c.contact_id)
    return set(session.execute(stmt, rows).scalars())


def _by(candidates: list[Candidate], key: Any) -> dict[Any, list[int]]:
    """The candidates' contact ids grouped by ``key(candidate)``."""
    groups: dict[Any, list[int]] = {}
    for candidate in candidates:
        groups.setdefault(key(candidate), []).append(candidate.contact_id)
    return groups


def _constants(table: sa.Table, values: dict[str, Any]) -> list[Any]:
    """``values`` as bound parameters of their column's type, for a SELECT feeding an INSERT:
    converted once for the thousands of rows of the statement."""
    return [sa.literal(value, table.c[name].type).label(name) for name, value in values.items()]


def _write(
    session: Session,
    runtime: Any,
    survey: SurveyDef,
    run_id: int,
    candidates: list[Candidate],
    contacts: dict[int, Any],
    openings: dict[tuple[str | None, str], Opening],
    now: datetime,
    send_at: datetime,
) -> set[int]:
    """Invite these contacts (consenting, free): a few statements per language and channel,
    the group's values computed once. Returns who was invited (not meanwhile by another).

    The conversations are inserted first, so each invitation is inserted with its conversation
    (no update of thousands of rows after); a contact whose invitation another firing inserted
    meanwhile loses the conversation just started for them, in this same transaction.
    """
    session.flush()  # rows the session holds go before the statements below
    conn = session.connection()
    expires_at = send_at + survey.expiry_delta
    catalog = runtime.bundle.catalog
    conversations = Conversation.__table__
    invited: set[int] = set()
    for key, ids in _by(candidates, lambda c: (contacts[c.contact_id].language, c.channel)).items():
        opening, channel = openings[key], key[1]
        if opening.result.effects:
            # A first step that writes per contact (its effects): each contact's own start.
            invited |= _start_each(session, runtime, survey, run_id, channel, ids, now, send_at)
            continue
        started = _insert_conversations(conn, opening, channel, ids, now, expires_at)
        invitations = _insert_invitations(
            conn, survey, run_id, channel, list(started.values()), now, send_at
        )
        lost = [conv for cid, conv in started.items() if cid not in invitations]
        if lost:
            conn.execute(conversations.delete().where(among(conn, conversations.c.id, lost)))
        if not invitations:
            continue
        _insert_start_messages(conn, opening, channel, [started[c] for c in invitations], now)
        messages = invitation_messages(catalog, opening.reply, channel)
        enqueue_many(session, _queued_rows(survey, channel, invitations, messages, now, send_at))
        invited.update(invitations)
    return invited


def _start_each(
    session: Session,
    runtime: Any,
    survey: SurveyDef,
    run_id: int,
    channel: str,
    contact_ids: list[int],
    now: datetime,
    send_at: datetime,
) -> set[int]:
    """Invite these contacts one at a time, each conversation started by
    :meth:`ConversationService.start` (which applies the first step's effects to the contact):
    the same rows as the bulk path. Returns who was invited (not meanwhile by another)."""
    table = SurveyInvitation.__table__  # type: ignore[attr-defined]
    catalog = runtime.bundle.catalog
    invited: set[int] = set()
    for contact_id in contact_ids:
        row = _invitation_row(survey, run_id, Candidate(contact_id, channel), now, send_at)
        invitation_id = session.execute(
            insert_or_skip(session, table, ["run_id", "contact_id"])
            .values(**row)
            .returning(table.c.id)
        ).scalar()
        if invitation_id is None:
            continue
        contact = session.get_one(Contact, contact_id)
        reply, conversation = runtime.conversations.start(
            session, contact, survey.flow, channel, now, expires_at=row["expires_at"]
        )
        session.execute(
            sa.update(table)
            .where(table.c.id == invitation_id)
            .values(conversation_id=conversation.id)
        )
        messages = invitation_messages(catalog, reply, channel)
        enqueue_many(
            session,
            _queued_rows(survey, channel, {contact_id: invitation_id}, messages, now, send_at),
        )
        invited.add(contact_id)
    return invited


def _insert_invitations(
    conn: sa.Connection,
    survey: SurveyDef,
    run_id: int,
    channel: str,
    conversation_ids: list[int],
    now: datetime,
    send_at: datetime,
) -> dict[int, int]:
    """Contact id -> invitation id, for the contacts of these new conversations whom no one
    invited in this run meanwhile (the unique (run, contact) skips the others)."""
    table = SurveyInvitation.__table__
    conversations = Conversation.__table__
    row = _invitation_row(survey, run_id, Candidate(0, channel), now, send_at)
    del row["contact_id"]
    rows = sa.select(conversations.c.contact_id, conversations.c.id, *_constants(table, row)).where(
        among(conn, conversations.c.id, conversation_ids)
    )
    stmt = (
        insert_or_skip(conn, table, ["run_id", "contact_id"])
        .from_select(["contact_id", "conversation_id", *row], rows)
        .returning(table.c.contact_id, table.c.id)
    )
    return dict(conn.execute(stmt).all())


def _insert_conversations(
    conn: sa.Connection,
    opening: Opening,
    channel: str,
    contact_ids: list[int],
    now: datetime,
    expires_at: datetime,
) -> dict[int, int]:
    """Contact id -> the conversation started for them."""
    table = Conversation.__table__
    contacts = Contact.__table__
    values = {
        "channel": channel,
        "flow_id": opening.flow.id,
        "flow_version": opening.flow.version,
        "menu": opening.menu,
        "started_at": now,
        **opening.conversation_values(now, expires_at),
    }
    rows = sa.select(contacts.c.id, *_constants(table, values)).where(
        among(conn, contacts.c.id, contact_ids)
    )
    stmt = (
        table.insert()
        .from_select(["contact_id", *values], rows)
        .returning(table.c.contact_id, table.c.id)
    )
    return dict(conn.execute(stmt).all())


def _insert_start_messages(
    conn: sa.Connection, opening: Opening, channel: str, conversation_ids: list[int], now: datetime
) -> None:
    """The "start" message of each conversation (what :meth:`ConversationService.start` adds)."""
    table = Message.__table__
    conversations = Conversation.__table__
    values = {
        "channel": channel,
        "direction": "out",
        "kind": "start",
        "reply": opening.message_reply,
        "created_at": now,
    }
    rows = sa.select(
        conversations.c.contact_id, conversations.c.id, *_constants(table, values)
    ).where(among(conn, conversations.c.id, conversation_ids))
    conn.execute(table.insert().from_select(["contact_id", "conversation_id", *values], rows))
