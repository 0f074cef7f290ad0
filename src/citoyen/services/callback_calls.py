"""A call-back call once placed: its answer runs the report IVR, its status callbacks move the
request on (requested -> placed -> answered, retried, or failed; :mod:`citoyen.services.callbacks`
says why each rule).

Apart from :mod:`citoyen.services.callbacks` because it drives the voice conversation
(:mod:`citoyen.services.calls`), which itself applies the effects that make requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import select

from citoyen.db import write_session
from citoyen.engine.loader import CALLBACK_INTRO
from citoyen.engine.types import Input, Prompt
from citoyen.models import CallbackRequest, Contact
from citoyen.services import calls
from citoyen.services.callbacks import RETRY, RINGING, CallbackPolicy, stopped_since
from citoyen.services.quiet_hours import next_allowed

CALL_INTRO = CALLBACK_INTRO


def answered(
    runtime: Any, request_id: int, call_sid: str, now: datetime | None = None
) -> Any | None:
    """The answered call-back's first turn: the report IVR, as for an incoming call.

    None when the request is unknown or the call is not the one placed for it. The call opens
    with ``callback.call_intro`` ("you asked us to call you"), then the flow an incoming call
    gets; the following turns go through ``/twilio/voice/step`` like any call's.
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
        if status in ("in-progress", "answered"):
            if row.status == "placed":
                row.status, row.answered_at, row.reason = "answered", now, None
            row.call_status = "in-progress"
            return "answered"
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
                contact = session.get(Contact, row.contact_id)
                stopped = contact is None or contact.blocked or stopped_since(row, contact)
                if stopped or row.attempts >= policy.max_attempts:
                    row.status, row.reason, row.ended_at = "failed", status, now
                    return "failed"
                row.status, row.reason = "requested", status
                row.due_at = next_allowed(now + policy.retry_delay, policy.window, policy.zone)
                return "retry"
        else:
            return None
    # The conversation of a call hung up mid-report closes as for any call (an incomplete
    # report is kept when a category and a place were given).
    calls.handle_call_status(runtime, form, now)
    return result
