"""Outbound survey calls: placing them (Twilio ``calls.create``), retries, at most N at once.

A voice invitation is ``calling`` until the call is answered and the survey runs on the keypad,
through the same voice step machinery as incoming calls (the answered call's first request goes to
``/twilio/voice/survey?invitation=ID``, the following ones to ``/twilio/voice/step``). Why:

- **Concurrency.** At most ``voice.max_concurrent`` calls of a survey are in flight (placing,
  queued, ringing, in progress): each pass of the worker's ``survey_calls`` job places only as
  many as are free, claiming the rows first (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write
  lock on SQLite) so two passes never call one person twice.
- **Retries.** Busy, no answer and failed calls are tried again ``voice.retry_delay`` later, up
  to ``voice.max_attempts`` calls in all; then the invitation is ``failed``.
- **Answering machines** (``voice.machine_detection``, on by default): Twilio says who picked up
  (``AnsweredBy``); a voicemail or a fax is hung up on without a word and counts as no answer,
  so the contact is called again rather than the survey being spent on a machine.
- **Quiet hours.** A call (first or retry) due outside the window waits for its opening.
- **Stop.** A contact who opted out (STOP by SMS, the operator's opt-out) is never called again;
  each call opens with how to stop, in the contact's language.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from citoyen.channels.base import CallPlacer, PermanentSendError, TransientSendError
from citoyen.db import write_session
from citoyen.engine.schema import duration_seconds
from citoyen.engine.types import Input, Prompt
from citoyen.models import Contact, SurveyInvitation, SurveyRun
from citoyen.services.callbacks import MACHINE
from citoyen.services.privacy import alias_label
from citoyen.services.surveys.definitions import SurveyDef
from citoyen.services.surveys.quiet import is_allowed, next_allowed

log = logging.getLogger(__name__)

IN_FLIGHT = ("placing", "queued", "initiated", "ringing", "in-progress", "answered")
RETRY = ("busy", "no-answer", "failed")
MACHINE_ANSWER = "machine"  # the call_status of a call a machine answered: called again
STOP_NOTICE_VOICE = "survey.stop_notice_voice"
# A call we placed but never heard of again (a crash between the API call and the commit, a lost
# callback) stops counting as in flight after this long.
STALE_CALL = timedelta(hours=1)


def _urls(runtime: Any, invitation_id: int) -> tuple[str, str]:
    base = runtime.settings.public_url.rstrip("/")
    return (
        f"{base}/twilio/voice/survey?invitation={invitation_id}",
        f"{base}/twilio/voice/survey-status?invitation={invitation_id}",
    )


def place_due_calls(
    runtime: Any,
    surveys: Mapping[str, SurveyDef],
    now: datetime | None = None,
    placer: CallPlacer | None = None,
) -> Counter[str]:
    """Place the calls that are due, within each survey's concurrency and quiet hours."""
    now = now or datetime.now(UTC)
    placer = placer if placer is not None else runtime.call_placer
    done: Counter[str] = Counter()
    for survey in surveys.values():
        if "voice" not in survey.channels:
            continue
        claims = _claim(runtime, survey, now, done)
        detect = survey.voice.machine_detection
        for invitation_id, attempt, address_enc, alias in claims:
            _place(runtime, placer, invitation_id, attempt, address_enc, alias, now, done, detect)
    return done


def _claim(
    runtime: Any, survey: SurveyDef, now: datetime, done: Counter[str]
) -> list[tuple[int, int, str, int]]:
    window, zone = survey.quiet_hours.window(), survey.timezone
    with write_session(runtime.engine) as session:
        in_flight = session.exec(
            select(sa.func.count(SurveyInvitation.id)).where(
                SurveyInvitation.survey == survey.id,
                SurveyInvitation.status == "calling",
                SurveyInvitation.call_status.in_(IN_FLIGHT),
                SurveyInvitation.send_at > now - STALE_CALL,
            )
        ).one()
        free = survey.voice.max_concurrent - in_flight
        if free <= 0:
            return []
        if not is_allowed(now, window, zone):
            return []  # the rows wait; their send_at already says when the window opens
        rows = session.exec(
            select(SurveyInvitation, Contact)
            .join(Contact, Contact.id == SurveyInvitation.contact_id)
            .where(
                SurveyInvitation.survey == survey.id,
                SurveyInvitation.status == "calling",
                SurveyInvitation.send_at <= now,
                sa.or_(
                    SurveyInvitation.call_status.is_(None),
                    SurveyInvitation.call_status.in_((*RETRY, MACHINE_ANSWER)),
                    sa.and_(
                        SurveyInvitation.call_status.in_(IN_FLIGHT),
                        SurveyInvitation.send_at <= now - STALE_CALL,
                    ),
                ),
                Contact.opted_out.is_(False),
                Contact.blocked.is_(False),
            )
            .order_by(SurveyInvitation.send_at, SurveyInvitation.id)
            .limit(free)
            .with_for_update(skip_locked=True, of=SurveyInvitation)
        ).all()
        claims = []
        for invitation, contact in rows:
            if invitation.call_attempts >= survey.voice.max_attempts:
                invitation.status = "failed"
                done["failed"] += 1
                continue
            invitation.call_attempts += 1
            invitation.call_status = "placing"
            invitation.call_sid = None
            invitation.send_at = now
            claims.append(
                (invitation.id, invitation.call_attempts, contact.address_enc, contact.alias)
            )
        return claims  # type: ignore[return-value]


def _place(
    runtime: Any,
    placer: CallPlacer | None,
    invitation_id: int,
    attempt: int,
    address_enc: str,
    alias: int,
    now: datetime,
    done: Counter[str],
    machine_detection: bool,
) -> None:
    values: dict[str, Any]
    if placer is None:
        # Never silently nowhere: the operator reads why nobody was called.
        log.warning(
            "survey call to %s not placed: Twilio is not configured (TWILIO_ACCOUNT_SID, "
            "TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER)",
            alias_label(alias),
        )
        values = {"status": "failed", "call_status": "no_provider"}
        done["no_provider"] += 1
    else:
        url, status_callback = _urls(runtime, invitation_id)
        try:
            from citoyen.channels.sms import phone_number

            to = phone_number(runtime.vault.decrypt(address_enc))
            sid = placer.create(to, url, status_callback, machine_detection=machine_detection)
            values = {"call_sid": sid, "call_status": "queued"}
            done["placed"] += 1
            log.info(
                "survey call %d to %s placed (attempt %d)",
                invitation_id,
                alias_label(alias),
                attempt,
            )
        except TransientSendError as exc:
            # The attempt did not happen: put it back for a later pass.
            log.warning("survey call %d: %s; trying again later", invitation_id, exc)
            values = {
                "call_status": None,
                "call_attempts": attempt - 1,
                "send_at": now + timedelta(seconds=max(60.0, exc.retry_after or 0)),
            }
            done["deferred"] += 1
        except (PermanentSendError, ValueError) as exc:
            log.warning("survey call %d to %s failed: %s", invitation_id, alias_label(alias), exc)
            values = {"status": "failed", "call_status": "error"}
            done["failed"] += 1
    with write_session(runtime.engine) as session:
        session.execute(
            sa.update(SurveyInvitation)
            .where(
                SurveyInvitation.id == invitation_id,
                SurveyInvitation.call_attempts == attempt,
                SurveyInvitation.call_status == "placing",
            )
            .values(**values)
        )


def call_status(
    runtime: Any,
    surveys: Mapping[str, SurveyDef],
    invitation_id: int,
    form: Mapping[str, str],
    now: datetime | None = None,
) -> str | None:
    """Apply a status callback of a survey call; returns what changed (None: nothing)."""
    now = now or datetime.now(UTC)
    sid = form.get("CallSid") or ""
    status = form.get("CallStatus") or ""
    with write_session(runtime.engine) as session:
        invitation = session.exec(
            select(SurveyInvitation).where(SurveyInvitation.id == invitation_id).with_for_update()
        ).first()
        if invitation is None or invitation.call_sid != sid or invitation.status != "calling":
            return None  # an earlier attempt's late callback, or not ours
        if invitation.call_status == MACHINE_ANSWER:
            return None  # a machine answered (below): already waiting for the next call
        survey = surveys.get(invitation.survey)
        machine = form.get("AnsweredBy") in MACHINE and invitation.conversation_id is None
        if status in RETRY:
            return _again_or_failed(session, invitation, survey, status, now)
        if machine and status in ("in-progress", "answered"):
            return None  # the answer request hangs up on it (answered below)
        if machine and status == "completed":
            # A machine's call ended before its answer request was heard of: no answer.
            return _again_or_failed(session, invitation, survey, MACHINE_ANSWER, now)
        if status == "completed":
            invitation.call_status = "completed"
            if invitation.conversation_id is None:
                invitation.status = "failed"  # answered by nobody we could talk to
        elif status in IN_FLIGHT:
            invitation.call_status = status
        else:
            return None
    if status == "completed":
        # The conversation of a call hung up mid-survey closes as for any call.
        from citoyen.services.calls import handle_call_status

        handle_call_status(runtime, form, now)
    return status


def _again_or_failed(
    session: Session,
    invitation: SurveyInvitation,
    survey: SurveyDef | None,
    call_status: str,
    now: datetime,
) -> str:
    """Nobody we could talk to (busy, no answer, a machine...): called again
    ``voice.retry_delay`` later within quiet hours, or ``failed`` when its calls are spent or
    the contact stopped meanwhile."""
    invitation.call_status = call_status
    contact = session.get(Contact, invitation.contact_id)
    stopped = contact is None or contact.opted_out or contact.blocked
    if survey is None or stopped or invitation.call_attempts >= survey.voice.max_attempts:
        invitation.status = "failed"
        return "failed"
    delay = timedelta(seconds=duration_seconds(survey.voice.retry_delay))
    invitation.send_at = next_allowed(now + delay, survey.quiet_hours.window(), survey.timezone)
    return "retry"


def _machine_answered(
    runtime: Any, session: Session, invitation: SurveyInvitation, now: datetime
) -> None:
    """A machine took the call: called again within the survey's rules. Survey files broken
    since the worker started leave the row due now, so the call is placed again once they are
    mended (the worker places nothing meanwhile) instead of failing the invitation."""
    from citoyen.services.surveys import SurveyConfigError, surveys_for

    try:
        survey = surveys_for(runtime).get(invitation.survey)
    except SurveyConfigError:
        log.error("survey definitions are broken: run `citoyen flows check`")
        invitation.call_status = MACHINE_ANSWER
        return
    outcome = _again_or_failed(session, invitation, survey, MACHINE_ANSWER, now)
    log.info(
        "survey call %d: a machine answered; %s",
        invitation.id,
        "called again later" if outcome == "retry" else "no call left",
    )


def answered(
    runtime: Any,
    invitation_id: int,
    call_sid: str,
    now: datetime | None = None,
    *,
    answered_by: str | None = None,
) -> Any | None:
    """The answered survey call's first turn: start the survey flow (deduped on CallSid:0).

    None when the invitation is unknown or the call is not the one we placed for it.
    ``answered_by``: Twilio's ``AnsweredBy``. A machine or a fax gets nothing to hear
    (``<Hangup/>``) and the contact is called again later, as when nobody answers.
    """
    from citoyen.messages.types import Inbound, Reply
    from citoyen.services.calls import provider_id

    now = now or datetime.now(UTC)
    if answered_by in MACHINE:
        with write_session(runtime.engine) as session:
            invitation = session.exec(
                select(SurveyInvitation)
                .where(SurveyInvitation.id == invitation_id)
                .with_for_update()
            ).first()
            if invitation is None or invitation.call_sid != call_sid:
                return None
            contact = session.get(Contact, invitation.contact_id)
            first_word = invitation.call_status != MACHINE_ANSWER  # not Twilio's retry
            if invitation.status == "calling" and invitation.conversation_id is None and first_word:
                _machine_answered(runtime, session, invitation, now)
            language = (contact.language if contact else None) or (
                runtime.bundle.settings.languages.default
            )
            return Reply(prompts=[], language=language, status="completed")
    with Session(runtime.engine) as session:
        invitation = session.get(SurveyInvitation, invitation_id)
        if invitation is None or invitation.call_sid != call_sid:
            return None
        run = session.get(SurveyRun, invitation.run_id)
        contact = session.get(Contact, invitation.contact_id)
        if run is None or contact is None:
            return None
        address = runtime.vault.decrypt(contact.address_enc)
        flow_id = run.flow_id
        if contact.opted_out or contact.blocked:
            # STOP arrived while the phone was ringing: say nothing more, hang up.
            language = contact.language or runtime.bundle.settings.languages.default
            return Reply(prompts=[], language=language, status="completed")

    def on_reply(session: Session, reply: Any, _contact_id: int) -> None:
        row = session.get(SurveyInvitation, invitation_id)
        if row is not None and reply.conversation_id is not None:
            row.conversation_id = reply.conversation_id
            row.call_status = "in-progress"

    inbound = Inbound(
        "voice", address, Input("start"), provider_id=provider_id(call_sid, 0), flow_id=flow_id
    )
    reply = runtime.conversations.handle(inbound, now=now, on_reply=on_reply)
    notice = Prompt(kind="message", text=STOP_NOTICE_VOICE, node="survey")
    reply.prompts = [notice, *reply.prompts]
    return reply
