"""Voice by call-back: the citizen asks to be called, the worker calls, the call is the report IVR.

In Mali a call to a Twilio number is an international call, when it connects at all; a call
from it costs the citizen nothing. So a citizen sends APPEL (CALL, WELE) by SMS or WhatsApp
(``flows/callback.yaml``, its ``request_callback`` action applied by :func:`request`), and the
worker's ``callbacks`` job (:func:`place_due_calls`) calls the number back through the runtime's
:class:`~citoyen.channels.base.CallPlacer`. The answered call asks Twilio for
``/twilio/voice/callback?request=ID``, which runs the same report IVR as an incoming call
(:func:`answered`); the call's status callbacks (:func:`call_status`) move the request on.

A request (a ``callbacks`` row) goes requested -> placed -> answered, or back to requested for a
retry, or failed, or cancelled. Why each rule:

- **Once.** The row is written in the transaction of the conversation step that made it, and
  keyed on that step's conversation (``request_key``, unique): a redelivered SMS is answered
  from its stored reply and writes nothing, and concurrent copies roll back on the message's own
  unique key. A contact with a request still open gets "already requested", not a second call.
- **Call-back hours** (``CITOYEN_CALLBACK_HOURS``, the same window as a survey's
  ``quiet_hours``, in Africa/Bamako): a request outside them is called at the next opening, and
  the citizen is told when.
- **A per-number daily limit** (``CITOYEN_CALLBACK_DAILY_LIMIT``): calls cost the deployment,
  and a number asking again and again is refused, with a message, until the next local day.
- **A daily budget** (``CITOYEN_CALLBACK_DAILY_BUDGET``): at most so many calls (retries
  included) per local day, counted in ``callback_days``; beyond it requests wait for the next
  day, never vanish. A request not called within :data:`EXPIRY` is cancelled, and so is one
  whose contact sent STOP after asking (a request made after STOP is called: the citizen asked
  for it) or was blocked.
- **Retries**: busy, no answer and failed calls are tried again ``CITOYEN_CALLBACK_RETRY_MINUTES``
  later (within the hours), up to ``CITOYEN_CALLBACK_MAX_ATTEMPTS`` calls; at most
  ``CITOYEN_CALLBACK_MAX_CONCURRENT`` are in flight at once.
- **Answering machines** (``CITOYEN_CALLBACK_MACHINE_DETECTION``, on by default): Twilio says
  who picked up; a voicemail or a fax is hung up on and counts as no answer (a retry), so the
  request is not spent on a machine that would have heard the menu.

The policy comes from the runtime's settings, registered per database by :func:`install`
(the effect is applied deep inside a conversation step, which knows the session, not the
runtime: as for routing, :func:`citoyen.services.queues.config.install`).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, select

from citoyen.channels.base import CallPlacer, PermanentSendError, TransientSendError
from citoyen.db import insert_or_skip, write_session
from citoyen.engine.loader import CALLBACK_OUTCOMES
from citoyen.models import CallbackDay, CallbackRequest, Contact, Conversation
from citoyen.services.privacy import alias_label
from citoyen.services.quiet_hours import is_allowed, next_allowed

log = logging.getLogger(__name__)

TIMEZONE = ZoneInfo("Africa/Bamako")
OPEN = ("requested", "placed")
STATUSES = ("requested", "placed", "answered", "failed", "cancelled")
RETRY = frozenset({"busy", "no-answer", "failed", "canceled"})
# Twilio's AnsweredBy values for what is not a person ("Enable" gives machine_start and fax;
# the machine_end_* values come with "DetectMessageEnd"). human and unknown go on: a person who
# says nothing is "unknown", and is better talked to than hung up on.
MACHINE = frozenset(
    {"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"}
)
RINGING = frozenset({"queued", "initiated", "ringing"})
# A request the budget or the hours kept from being called for this long is cancelled: a call
# a day late is no answer to "call me".
EXPIRY = timedelta(hours=24)
# A call we placed but never heard of again (a crash between the API call and the commit, a
# lost callback) stops counting as in flight after this long.
STALE_CALL = timedelta(hours=1)
# What the citizen is told (``callback.<outcome>`` in locales/), in the reply's
# ``callback_answer``.
OUTCOMES = CALLBACK_OUTCOMES


@dataclass(frozen=True)
class CallbackPolicy:
    """The call-back rules of one deployment (its ``CITOYEN_CALLBACK_*`` settings)."""

    window: tuple[time, time]
    daily_limit: int
    daily_budget: int
    max_attempts: int
    retry_delay: timedelta
    max_concurrent: int
    can_call: bool  # Twilio credentials and a caller number are configured
    from_number: str = ""  # the number the call comes from (the citizen is told it)
    machine_detection: bool = True  # ask Twilio who answers (CITOYEN_CALLBACK_MACHINE_DETECTION)
    zone: ZoneInfo = TIMEZONE

    @classmethod
    def from_settings(cls, settings: Any) -> CallbackPolicy:
        start, end = settings.callback_window
        return cls(
            window=(time.fromisoformat(start), time.fromisoformat(end)),
            daily_limit=settings.callback_daily_limit,
            daily_budget=settings.callback_daily_budget,
            max_attempts=settings.callback_max_attempts,
            retry_delay=timedelta(minutes=settings.callback_retry_minutes),
            max_concurrent=settings.callback_max_concurrent,
            can_call=bool(settings.twilio_enabled and settings.twilio_from_number),
            from_number=settings.twilio_from_number or "",
            machine_detection=settings.callback_machine_detection,
        )

    def local_day(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()

    def day_start(self, moment: datetime) -> datetime:
        """Midnight local time of ``moment``'s day, in UTC."""
        local = datetime.combine(self.local_day(moment), time(0), tzinfo=self.zone)
        return local.astimezone(UTC)


_policies: dict[str, CallbackPolicy] = {}
_policies_lock = threading.Lock()


def install(runtime: Any) -> CallbackPolicy:
    """Use ``runtime``'s settings for call-backs requested in its database."""
    policy = CallbackPolicy.from_settings(runtime.settings)
    with _policies_lock:
        _policies[str(runtime.engine.url)] = policy
    return policy


def policy_for(session: Session) -> CallbackPolicy:
    """The policy of the database this session works on (else the process's settings)."""
    url = str(session.get_bind().engine.url)
    with _policies_lock:
        policy = _policies.get(url)
    if policy is not None:
        return policy
    from citoyen.config import get_settings

    return CallbackPolicy.from_settings(get_settings())


# --- the request ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What became of a request: ``kind`` (one of :data:`OUTCOMES`) and, when a call is coming,
    from when (``due_at``)."""

    kind: str
    due_at: datetime | None = None
    request_id: int | None = None


def request(
    session: Session,
    *,
    contact: Contact,
    key: str,
    source: str,
    now: datetime,
    policy: CallbackPolicy | None = None,
) -> Outcome:
    """Record a call-back request of ``contact`` (in the caller's transaction), or say why not.

    ``key`` names what made the request (``conversation:<id>``, a missed call's event): a
    second request with the same key finds the first. Runs under the contact's lock (the
    conversation step holds it), so one contact's requests are decided one after the other.
    """
    policy = policy or policy_for(session)
    if contact.channel != "tel":
        return Outcome("no_phone")  # Telegram, a withheld number, the admin's simulator
    existing = session.exec(
        select(CallbackRequest).where(CallbackRequest.request_key == key)
    ).first()
    if existing is not None:
        return Outcome("pending", existing.due_at, existing.id)
    if not policy.can_call or policy.daily_budget == 0:
        log.warning(
            "call-back asked by %s, but calls cannot be placed (Twilio not configured, or "
            "CITOYEN_CALLBACK_DAILY_BUDGET=0)",
            alias_label(contact.alias),
        )
        return Outcome("unavailable")
    open_one = session.exec(
        select(CallbackRequest).where(
            CallbackRequest.contact_id == contact.id, CallbackRequest.status.in_(OPEN)
        )
    ).first()
    if open_one is not None:
        return Outcome("pending", open_one.due_at, open_one.id)
    today = session.exec(
        select(sa.func.count(CallbackRequest.id)).where(
            CallbackRequest.contact_id == contact.id,
            CallbackRequest.requested_at >= policy.day_start(now),
        )
    ).one()
    if today >= policy.daily_limit:
        log.info("call-back refused to %s: daily limit reached", alias_label(contact.alias))
        return Outcome("limit")
    due_at = first_slot(session, policy, now)
    row = CallbackRequest(
        request_key=key,
        contact_id=contact.id,  # type: ignore[arg-type]
        source=source,
        status="requested",
        due_at=due_at,
        requested_at=now,
        asked_while_stopped=contact.opted_out,
    )
    session.add(row)
    session.flush()
    log.info("call-back %d requested by %s by %s", row.id, alias_label(contact.alias), source)
    return Outcome("requested" if due_at <= now else "later", due_at, row.id)


def stopped_since(row: CallbackRequest, contact: Contact) -> bool:
    """The contact sent STOP after asking (a request made while stopped is still called)."""
    return contact.opted_out and not row.asked_while_stopped


def first_slot(session: Session, policy: CallbackPolicy, now: datetime) -> datetime:
    """When a new request may first be called: now, or the next opening of the call-back hours
    on a day whose budget is not spent (requests already waiting count against it)."""
    due = next_allowed(now, policy.window, policy.zone)
    for _day in range(7):
        used = _calls_on(session, policy.local_day(due))
        # Requests not called yet; those being called are in the day's count already.
        waiting = session.exec(
            select(sa.func.count(CallbackRequest.id)).where(
                CallbackRequest.status == "requested",
                CallbackRequest.due_at < policy.day_start(due) + timedelta(days=1),
            )
        ).one()
        if used + waiting < policy.daily_budget:
            return due
        tomorrow = policy.day_start(due) + timedelta(days=1)
        due = next_allowed(tomorrow, policy.window, policy.zone)
    return due


def _calls_on(session: Session, day: date) -> int:
    row = session.get(CallbackDay, day.isoformat())
    return row.calls if row is not None else 0


def answer_params(outcome: Outcome, policy: CallbackPolicy) -> dict[str, str]:
    """The values of the ``callback.*`` texts: ``callback_time``, the local time of the call,
    and ``callback_from``, the number it comes from (a citizen does not pick up an unknown
    foreign number: they are told which one to expect)."""
    due = outcome.due_at
    return {
        "callback_time": due.astimezone(policy.zone).strftime("%H:%M") if due else "",
        "callback_from": policy.from_number,
    }


# --- placing the calls -----------------------------------------------------------------------------


def _urls(runtime: Any, request_id: int) -> tuple[str, str]:
    base = runtime.settings.public_url.rstrip("/")
    return (
        f"{base}/twilio/voice/callback?request={request_id}",
        f"{base}/twilio/voice/callback-status?request={request_id}",
    )


def place_due_calls(
    runtime: Any, now: datetime | None = None, placer: CallPlacer | None = None
) -> Counter[str]:
    """Place the calls that are due, within the hours, the budget and the concurrency."""
    now = now or datetime.now(UTC)
    placer = placer if placer is not None else runtime.call_placer
    policy = CallbackPolicy.from_settings(runtime.settings)
    done: Counter[str] = Counter()
    for request_id, attempt, address_enc, alias in _claim(runtime, policy, now, done):
        _place(runtime, placer, policy, request_id, attempt, address_enc, alias, now, done)
    return done


def _claim(
    runtime: Any, policy: CallbackPolicy, now: datetime, done: Counter[str]
) -> list[tuple[int, int, str, int]]:
    with write_session(runtime.engine) as session:
        # A request nobody could call for a day is no longer an answer to "call me".
        expired = session.execute(
            sa.update(CallbackRequest)
            .where(
                CallbackRequest.status == "requested",
                CallbackRequest.requested_at <= now - EXPIRY,
            )
            .values(status="cancelled", reason="expired", ended_at=now)
        ).rowcount
        if expired:
            done["expired"] += expired
        # A call we never heard of again: no longer in flight, and not answered.
        lost = session.execute(
            sa.update(CallbackRequest)
            .where(
                CallbackRequest.status == "placed", CallbackRequest.placed_at <= now - STALE_CALL
            )
            .values(status="failed", reason="lost", ended_at=now)
        ).rowcount
        if lost:
            done["lost"] += lost
        if not is_allowed(now, policy.window, policy.zone):
            return []
        in_flight = session.exec(
            select(sa.func.count(CallbackRequest.id)).where(CallbackRequest.status == "placed")
        ).one()
        day = _day_row(session, policy.local_day(now))
        free = min(policy.max_concurrent - in_flight, policy.daily_budget - day.calls)
        if free <= 0:
            return []
        rows = session.exec(
            select(CallbackRequest, Contact)
            .join(Contact, Contact.id == CallbackRequest.contact_id)
            .where(CallbackRequest.status == "requested", CallbackRequest.due_at <= now)
            .order_by(CallbackRequest.due_at, CallbackRequest.id)
            .limit(free)
            .with_for_update(skip_locked=True, of=CallbackRequest)
        ).all()
        claims = []
        for row, contact in rows:
            if contact.blocked or stopped_since(row, contact):
                reason = "blocked" if contact.blocked else "stopped"
                row.status, row.reason, row.ended_at = "cancelled", reason, now
                done["cancelled"] += 1
                continue
            row.status = "placed"
            row.attempts += 1
            row.call_sid = None
            row.call_status = "placing"
            row.placed_at = now
            day.calls += 1
            claims.append((row.id, row.attempts, contact.address_enc, contact.alias))
        return claims  # type: ignore[return-value]


def _day_row(session: Session, day: date) -> CallbackDay:
    """The day's budget counter, locked (two workers never spend the same call twice)."""
    key = day.isoformat()
    session.execute(insert_or_skip(session, CallbackDay, ["day"]).values(day=key, calls=0))
    return session.exec(select(CallbackDay).where(CallbackDay.day == key).with_for_update()).one()


def _place(
    runtime: Any,
    placer: CallPlacer | None,
    policy: CallbackPolicy,
    request_id: int,
    attempt: int,
    address_enc: str,
    alias: int,
    now: datetime,
    done: Counter[str],
) -> None:
    values: dict[str, Any]
    refund = False
    if placer is None:
        log.warning(
            "call-back %d to %s not placed: Twilio is not configured (TWILIO_ACCOUNT_SID, "
            "TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER)",
            request_id,
            alias_label(alias),
        )
        values = {"status": "failed", "reason": "no_provider", "ended_at": now}
        done["no_provider"] += 1
        refund = True
    else:
        url, status_callback = _urls(runtime, request_id)
        try:
            from citoyen.channels.sms import phone_number

            to = phone_number(runtime.vault.decrypt(address_enc))
            sid = placer.create(
                to, url, status_callback, machine_detection=policy.machine_detection
            )
            values = {"call_sid": sid, "call_status": "queued"}
            done["placed"] += 1
            log.info("call-back %d to %s placed (call %d)", request_id, alias_label(alias), attempt)
        except TransientSendError as exc:
            # The call did not happen: put it back for a later pass, and give the budget back.
            log.warning("call-back %d: %s; trying again later", request_id, exc)
            values = {
                "status": "requested",
                "call_status": None,
                "attempts": attempt - 1,
                "due_at": now + timedelta(seconds=max(60.0, exc.retry_after or 0)),
            }
            done["deferred"] += 1
            refund = True
        except PermanentSendError as exc:
            log.warning("call-back %d to %s failed: %s", request_id, alias_label(alias), exc)
            values = {"status": "failed", "reason": "error", "call_status": None, "ended_at": now}
            done["failed"] += 1
            refund = True
    with write_session(runtime.engine) as session:
        changed = session.execute(
            sa.update(CallbackRequest)
            .where(
                CallbackRequest.id == request_id,
                CallbackRequest.attempts == attempt,
                CallbackRequest.call_status == "placing",
            )
            .values(**values)
        ).rowcount
        if refund and changed:
            day = _day_row(session, policy.local_day(now))
            day.calls = max(0, day.calls - 1)


def scheduled_jobs(runtime: Any) -> list[dict[str, Any]]:
    """The worker's ``callbacks`` job: place due call-backs every 15 seconds. Always there, also
    without Twilio: requests made before the credentials were removed then fail visibly
    (``no_provider``) instead of waiting for ever."""
    return [
        {
            "func": place_due_calls,
            "trigger": "interval",
            "seconds": 15,
            "args": [runtime],
            "id": "callbacks",
            "name": "place the call-backs citizens asked for",
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": 15,
        }
    ]


# --- what staff see ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallbackRow:
    """One request as the outbox monitor shows it: the contact by alias, never a number."""

    id: int
    alias: str
    source: str
    status: str
    reason: str | None
    attempts: int
    requested_at: datetime
    due_at: datetime
    answered_at: datetime | None
    report_id: int | None
    report_reference: str | None


@dataclass(frozen=True)
class CallbackSummary:
    counts: dict[str, int]  # per status, every request kept
    today: dict[str, int]  # per status, requested since local midnight
    calls_today: int
    budget: int
    latest: list[CallbackRow]


def summary(
    session: Session, settings: Any, now: datetime | None = None, limit: int = 20
) -> CallbackSummary:
    """Counts per status (all, and requested today), today's calls against the budget, and the
    latest requests with the report their call made, if any."""
    from citoyen.models import Report

    now = now or datetime.now(UTC)
    policy = CallbackPolicy.from_settings(settings)
    counts = dict(
        session.exec(
            select(CallbackRequest.status, sa.func.count(CallbackRequest.id)).group_by(
                CallbackRequest.status
            )
        ).all()
    )
    today = dict(
        session.exec(
            select(CallbackRequest.status, sa.func.count(CallbackRequest.id))
            .where(CallbackRequest.requested_at >= policy.day_start(now))
            .group_by(CallbackRequest.status)
        ).all()
    )
    rows = session.exec(
        select(CallbackRequest, Contact.alias, Report.id, Report.reference)
        .join(Contact, Contact.id == CallbackRequest.contact_id)
        .join(
            Report,
            Report.conversation_id == CallbackRequest.conversation_id,
            isouter=True,
        )
        .order_by(CallbackRequest.id.desc())
        .limit(limit)
    ).all()
    latest = [
        CallbackRow(
            id=row.id,  # type: ignore[arg-type]
            alias=alias_label(alias),
            source=row.source,
            status=row.status,
            reason=row.reason,
            attempts=row.attempts,
            requested_at=row.requested_at,
            due_at=row.due_at,
            answered_at=row.answered_at,
            report_id=report_id,
            report_reference=reference,
        )
        for row, alias, report_id, reference in rows
    ]
    return CallbackSummary(
        counts=counts,
        today=today,
        calls_today=_calls_on(session, policy.local_day(now)),
        budget=policy.daily_budget,
        latest=latest,
    )


def conversation_key(conversation: Conversation) -> str:
    """The request key of a request made in a conversation step (one request per conversation:
    the conversation is the one the request message started or continued)."""
    return f"conversation:{conversation.id}"
