"""A call-back call once placed: its answer runs the report IVR, its status callbacks move the
request on (requested -> placed -> answered, retried, or failed; :mod:`citoyen.services.callbacks`
says why each rule). A call Twilio says a machine answered (``AnsweredBy``: a voicemail, a fax)
is hung up on and is no answer: the request is called again within the rules.

Apart from :mod:`citoyen.services.callbacks` because it drives the voice conversation
(:mod:`citoyen.services.calls`), which itself applies the effects that make requests.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import select

from citoyen.db import write_session
from citoyen.engine.loader import CALLBACK_INTRO
from citoyen.engine.types import Input, Prompt
from citoyen.messages.types import Reply
from citoyen.models import CallbackRequest, Contact
from citoyen.services import calls
from citoyen.services.callbacks import MACHINE, RETRY, RINGING, CallbackPolicy, stopped_since
from citoyen.services.privacy import alias_label
from citoyen.services.quiet_hours import next_allowed

log = logging.getLogger(__name__)

CALL_INTRO = CALLBACK_INTRO


def answered(
    runtime: Any,
    request_id: int,
    call_sid: str,
    now: datetime | None = None,
    answered_by: str | None = None,
) -> Any | None:
    """The answered call-back's first turn: the report IVR, as for an incoming call.

    None when the request is unknown or the call is not the one placed for it. The call opens
    with ``callback.call_intro`` ("you asked us to call you"), then the flow an incoming call
    gets; the following turns go through ``/twilio/voice/step`` like any call's.

    ``answered_by``: Twilio's ``AnsweredBy`` (machine detection). A machine or a fax gets a
    reply with nothing to say (``<Hangup/>``), and the request is called again later, or
    fails when its calls are spent (reason ``machine``), as for a call nobody answered.
    """
    now = now or datetime.now(UTC)
    with write_session(runtime.engine) as session:
        row = session.exec(
            select(CallbackRequest).where(CallbackRequest.id == request_id).with_for_update()
        ).first()
        if row is None or row.call_sid is None or row.call_sid != call_sid:
            return None
        contact = session.get(Contact, row.contact_id)
        if contact is None:
            return None
        if answered_by in MACHINE:
            if row.status in ("placed", "answered") and row.conversation_id is None:
                policy = CallbackPolicy.from_settings(runtime.settings)
                row.call_status, row.answered_at = "machine", None
                outcome = try_again(session, row, "machine", now, policy)
                log.info(
                    "call-back %d to %s: a machine answered; %s",
                    request_id,
                    alias_label(contact.alias),
                    "called again later" if outcome == "retry" else "no call left",
                )
            language = contact.language or runtime.bundle.settings.languages.default
            return Reply(prompts=[], language=language, status="completed")
        address = runtime.vault.decrypt(contact.address_enc)
        if row.status == "placed":
            row.status = "answered"
            row.answered_at = now
            row.reason = None
        if row.ended_at is None:  # not a retry of this request after the call ended
            row.call_status = "in-progress"
    reply = calls.voice_turn(runtime, call_sid=call_sid, n=0, address=address, inp=Input("start"))
    if reply.conversation_id is not None:
        with write_session(runtime.engine) as session:
            session.execute(
                sa.update(CallbackRequest)
                .where(CallbackRequest.id == request_id)
                .values(conversation_id=reply.conversation_id)
            )
    intro = Prompt(kind="message", text=CALL_INTRO, node="callback")
    reply.prompts = [intro, *reply.prompts]
    return reply


def call_status(
    runtime: Any, request_id: int, form: Mapping[str, str], now: datetime | None = None
) -> str | None:
    """Apply a status callback of a call-back call; returns what changed (None: nothing)."""
    now = now or datetime.now(UTC)
    sid = form.get("CallSid") or ""
    status = form.get("CallStatus") or ""
    policy = CallbackPolicy.from_settings(runtime.settings)
    result: str | None = None
    with write_session(runtime.engine) as session:
        row = session.exec(
            select(CallbackRequest).where(CallbackRequest.id == request_id).with_for_update()
        ).first()
        if row is None or row.call_sid != sid or row.status not in ("placed", "answered"):
            return None  # an earlier attempt's late callback, or not ours
        if status in RINGING:
            if row.status == "placed":
                row.call_status = status
            return status
        machine = form.get("AnsweredBy") in MACHINE and row.conversation_id is None
        if status in ("in-progress", "answered"):
            if machine:
                return None  # the answer request hangs up on it (answered above)
            if row.status == "placed":
                row.status, row.answered_at, row.reason = "answered", now, None
            row.call_status = "in-progress"
            return "answered"
        if status == "completed" and machine:
            # A machine's call ended before its answer request was heard of: no answer.
            row.call_status, row.answered_at = "machine", None
            return try_again(session, row, "machine", now, policy)
        if status == "completed":
            row.call_status = "completed"
            row.ended_at = now
            if row.status == "placed":
                # Twilio never asked for the call's first TwiML: nobody we could talk to.
                row.status, row.reason = "failed", "completed"
            result = "completed"
        elif status in RETRY:
            row.call_status = status
            if row.status == "answered":
                row.ended_at = now
                result = "completed"
            else:
                return try_again(session, row, status, now, policy)
        else:
            return None
    # The conversation of a call hung up mid-report closes as for any call (an incomplete
    # report is kept when a category and a place were given).
    calls.handle_call_status(runtime, form, now)
    return result


def try_again(
    session: Any, row: CallbackRequest, reason: str, now: datetime, policy: CallbackPolicy
) -> str:
    """Nobody we could talk to (busy, no answer, a machine...): the request is called again
    ``retry_delay`` later within the hours (``retry``), or ``failed`` when its calls are spent
    or its contact stopped or was blocked since. ``reason`` is what staff see."""
    contact = session.get(Contact, row.contact_id)
    stopped = contact is None or contact.blocked or stopped_since(row, contact)
    if stopped or row.attempts >= policy.max_attempts:
        row.status, row.reason, row.ended_at = "failed", reason, now
        return "failed"
    row.status, row.reason = "requested", reason
    row.due_at = next_allowed(now + policy.retry_delay, policy.window, policy.zone)
    return "retry"
