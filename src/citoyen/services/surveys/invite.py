"""Inviting a run's drawn contacts: a batch of thousands in a few statements.

One invitation is: the contact re-checked under a row lock (consent may have been withdrawn
since the draw), the ``survey_invitations`` row (unique per run and contact: the guarantee that
nobody is invited twice), a conversation started on the survey's flow with its "start" message,
and the first prompts queued in the outbox under ``survey:{invitation}:invite:{i}``.

Done one contact at a time that is some ten statements and ORM flushes per contact (100,000
contacts took ten minutes). :func:`invite_batch` does the same for a whole batch of text
invitations in a fixed number of statements:

- the contacts are read and locked (``FOR UPDATE`` on PostgreSQL, so a STOP arriving meanwhile
  waits for this transaction and the dispatcher then skips the queued rows) in one query; the
  invitations already made in this run and the open conversations in two more;
- the flow's first step is computed once per language and channel: the engine is pure and sees
  a contact only through its language (:meth:`ConversationService.opening`), so every contact of
  a group gets the same conversation state, menu, message and texts;
- invitations, conversations, messages and outbox rows are inserted in bulk, the invitations and
  outbox rows with ``ON CONFLICT DO NOTHING``: a second firing or another worker inviting the same
  contacts concurrently inserts nothing for them, and they count as "already" invited.

A flow whose first step has effects (it writes, per contact), and voice invitations (a call is
placed later by the voice dispatcher), take :func:`invite_one`, the per-contact path. Both write
the same rows with the same values.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from citoyen.models import Contact, Conversation, Message, Outbox, SurveyInvitation
from citoyen.services.conversations import OPEN_STATUSES, Opening
from citoyen.services.outbox import enqueue
from citoyen.services.privacy import alias_label
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
        from citoyen.channels.render import render_sms
        from citoyen.channels.sms import split_sms

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


def _outbox_row(
    survey: SurveyDef,
    channel: str,
    invitation_id: int,
    contact_id: int,
    index: int,
    message: tuple[str, dict[str, Any]],
    now: datetime,
    send_at: datetime,
) -> dict[str, Any]:
    """The columns of one queued invitation message (as :func:`enqueue` writes them)."""
    text, payload = message
    return {
        "idempotency_key": f"survey:{invitation_id}:invite:{index}",
        "kind": "survey",
        "channel": channel,
        "contact_id": contact_id,
        "address_enc": None,
        "body": text,
        "payload": {**payload, "survey": survey.id, "invitation": invitation_id},
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": send_at,
        "created_at": now,
    }


# --- one contact -------------------------------------------------------------------------------


class _Skip(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def invite_one(
    session: Session,
    runtime: Any,
    survey: SurveyDef,
    run_id: int,
    candidate: Candidate,
    now: datetime,
    send_at: datetime,
) -> str:
    """Invite one contact in a savepoint: 'invited', 'already', or why it was skipped."""
    exists = session.exec(
        select(SurveyInvitation.id).where(
            SurveyInvitation.run_id == run_id, SurveyInvitation.contact_id == candidate.contact_id
        )
    ).first()
    if exists is not None:
        return "already"
    try:
        with session.begin_nested():
            contact = session.exec(
                select(Contact).where(Contact.id == candidate.contact_id).with_for_update()
            ).one()
            if not _consents(contact):
                return "no_consent"  # changed since the draw
            invitation = SurveyInvitation(
                **_invitation_row(survey, run_id, candidate, now, send_at)
            )
            session.add(invitation)
            session.flush()  # a concurrent invitation of this contact in this run fails here
            if candidate.channel != "voice":
                conversations = runtime.conversations
                if conversations.open_conversation(session, contact, now) is not None:
                    raise _Skip("busy")
                reply, conversation = conversations.start(
                    session,
                    contact,
                    survey.flow,
                    candidate.channel,
                    now,
                    expires_at=invitation.expires_at,
                )
                invitation.conversation_id = conversation.id
                messages = invitation_messages(runtime.bundle.catalog, reply, candidate.channel)
                for i, (text, payload) in enumerate(messages):
                    row = enqueue(
                        session,
                        channel=candidate.channel,
                        idempotency_key=f"survey:{invitation.id}:invite:{i}",
                        body=text,
                        payload={**payload, "survey": survey.id, "invitation": invitation.id},
                        contact_id=contact.id,
                        kind="survey",
                        now=now,
                    )
                    row.next_attempt_at = send_at
            log.debug(
                "survey %s: %s invited by %s",
                survey.id,
                alias_label(contact.alias),
                candidate.channel,
            )
            return "invited"
    except _Skip as skip:
        return skip.reason
    except IntegrityError:
        return "already"


# --- a batch -----------------------------------------------------------------------------------


def _insert(conn: sa.Connection, table: sa.Table, conflict: Iterable[str] | None = None) -> Any:
    """An INSERT of ``table`` that skips rows violating the unique ``conflict`` columns."""
    if conflict is None:
        return table.insert()
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing(index_elements=list(conflict))


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
        .where(among(session.connection(), Contact.id, ids))
        .order_by(Contact.id)  # one lock order for every worker: no deadlock between two
        .with_for_update()
    )
    return {row.id: row for row in session.exec(stmt).all()}


def _already_invited(session: Session, run_id: int, ids: list[int]) -> set[int]:
    stmt = select(SurveyInvitation.contact_id).where(
        SurveyInvitation.run_id == run_id,
        among(session.connection(), SurveyInvitation.contact_id, ids),
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
            among(session.connection(), Conversation.contact_id, ids),
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
    was skipped ('no_consent', 'busy'), the same outcomes and rows as :func:`invite_one`."""
    outcomes: dict[int, str] = {}
    text = [c for c in batch if c.channel != "voice"]
    ids = [c.contact_id for c in text]
    contacts = _locked_contacts(session, ids) if ids else {}
    already = _already_invited(session, run_id, ids) if ids else set()
    conversations = runtime.conversations
    openings: dict[tuple[str | None, str], Opening] = {}
    bulk: list[Candidate] = []
    one_by_one = [c for c in batch if c.channel == "voice"]
    for candidate in text:
        cid = candidate.contact_id
        contact = contacts.get(cid)
        if cid in already:
            outcomes[cid] = "already"
        elif contact is None or not _consents(contact):
            outcomes[cid] = "no_consent"
        else:
            key = (contact.language, candidate.channel)
            if key not in openings:
                openings[key] = conversations.opening(
                    session, survey.flow, candidate.channel, contact.language
                )
            # A first step with effects writes per contact: that contact takes the slow path.
            (one_by_one if openings[key].result.effects else bulk).append(candidate)
    busy, stale = _open_conversations(session, [c.contact_id for c in bulk], now)
    for cid in busy:
        outcomes[cid] = "busy"
    free = [c for c in bulk if c.contact_id not in busy]
    invited = _write(session, runtime, survey, run_id, free, contacts, openings, now, send_at)
    for candidate in free:
        outcomes[candidate.contact_id] = "invited" if candidate.contact_id in invited else "already"
    _close_expired(session, [stale[cid] for cid in invited if cid in stale], now)
    for candidate in one_by_one:
        outcomes[candidate.contact_id] = invite_one(
            session, runtime, survey, run_id, candidate, now, send_at
        )
    return outcomes


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


def among(conn: sa.Connection, column: Any, ids: list[int]) -> Any:
    """``column IN ids``; on PostgreSQL one array parameter (``= ANY``) instead of thousands of
    placeholders, which psycopg would parse for every statement."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.literal(ids, ARRAY(sa.Integer)))
    return column.in_(ids)


def _as_text(expr: Any) -> Any:
    return sa.cast(expr, sa.String)


def _json_with_id(conn: sa.Connection, value: dict[str, Any], key: str, id_column: Any) -> Any:
    """SQL for the JSON of ``{**value, key: <id_column>}``, the very text json.dumps gives."""
    marker = 0
    dumped = json.dumps({**value, key: marker})
    tail = f"{marker}}}"
    assert dumped.endswith(f'"{key}": {tail}')
    expr = sa.literal(dumped[: -len(tail)]) + _as_text(id_column) + sa.literal("}")
    if conn.dialect.name == "postgresql":
        return sa.cast(expr, Outbox.__table__.c.payload.type)
    return expr  # SQLite stores JSON as its text


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
    conn = session.connection()
    expires_at = send_at + survey.expiry_delta
    catalog = runtime.bundle.catalog
    conversations = Conversation.__table__
    invited: set[int] = set()
    for key, ids in _by(candidates, lambda c: (contacts[c.contact_id].language, c.channel)).items():
        opening, channel = openings[key], key[1]
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
        _queue_texts(conn, survey, channel, messages, list(invitations.values()), now, send_at)
        invited.update(invitations)
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
        _insert(conn, table, ("run_id", "contact_id"))
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


def _queue_texts(
    conn: sa.Connection,
    survey: SurveyDef,
    channel: str,
    messages: list[tuple[str, dict[str, Any]]],
    invitation_ids: list[int],
    now: datetime,
    send_at: datetime,
) -> None:
    """The outbox rows of these invitations, as :func:`enqueue` writes them: one statement per
    message of the invitation (an SMS cut in two: two), keys and payloads built in SQL."""
    table = Outbox.__table__
    invitations = SurveyInvitation.__table__
    for index, (text, payload) in enumerate(messages):
        values = {
            "kind": "survey",
            "channel": channel,
            "body": text,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": send_at,
            "created_at": now,
        }
        key = sa.literal("survey:") + _as_text(invitations.c.id) + f":invite:{index}"
        payload_sql = _json_with_id(
            conn, {**payload, "survey": survey.id}, "invitation", invitations.c.id
        )
        rows = sa.select(
            key.label("idempotency_key"),
            invitations.c.contact_id,
            payload_sql.label("payload"),
            *_constants(table, values),
        ).where(among(conn, invitations.c.id, invitation_ids))
        stmt = _insert(conn, table, ("idempotency_key",)).from_select(
            ["idempotency_key", "contact_id", "payload", *values], rows
        )
        conn.execute(stmt)
