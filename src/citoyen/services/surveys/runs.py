"""Survey runs: who is eligible, who is drawn, and inviting each of them exactly once.

A run is one firing of a survey (its ``key``: the scheduled time, or ``manual:<time>``). Why it is
shaped like this:

- **Invited once per run.** ``survey_invitations`` has a unique (run, contact) constraint and each
  invitation is written in the same transaction as its conversation and outbox rows (a batch of
  thousands per transaction, in bulk: :mod:`.invite`), so the job firing twice, or two workers
  by mistake, cannot invite anyone twice: the second insert skips that contact. The run row
  itself is unique per (survey, key).
- **The same draw every time.** The sample is drawn with a random generator seeded by the survey
  and the run key, from the contacts eligible *ignoring this run's own invitations*, so a run that
  is resumed (a crash, a second firing) draws the same people and only invites those not yet done.
- **Quiet hours defer, never drop.** Outside the window the rows are queued with
  ``next_attempt_at`` at the next opening (:mod:`.quiet`), and every row carries the window
  (``outbox.quiet_hours``): a wave that does not fit in one window is held by the dispatcher at
  the window's end and goes on at the next opening (:mod:`citoyen.services.dispatch`).
- **Consent first.** Only contacts who said yes to surveys, not opted out, not blocked, with an
  address we can write to. A contact in the middle of another conversation (a report) is not
  interrupted: they are skipped for this run and counted.
- **How to stop, every time.** Every message we originate (invitation, reminder) ends with the
  stop notice in the contact's language; STOP in the middle of a survey opts the contact out at
  once, and the dispatcher then skips every survey row still queued for them.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from citoyen.db import among, write_session
from citoyen.engine.sms import segments
from citoyen.models import Area, Contact, Conversation, SurveyAnswer, SurveyInvitation, SurveyRun
from citoyen.services.outbox import enqueue
from citoyen.services.sendtime import ChannelEstimate, estimate
from citoyen.services.surveys.definitions import SurveyDef
from citoyen.services.surveys.invite import (  # noqa: F401  (invitation_messages: re-exported)
    STOP_NOTICE,
    Candidate,
    invitation_messages,
    invite_batch,
    with_notice,
)
from citoyen.services.surveys.quiet import next_allowed

log = logging.getLogger(__name__)

REMINDER = "survey.reminder"
OPEN_INVITATION = ("invited", "calling")
# Invitations per transaction: thousands take a few statements (see :mod:`.invite`) and well
# under a second, short enough for the webhooks waiting on SQLite's write lock.
BATCH = 2_000
# Ids per ``IN (...)`` list: PostgreSQL (psycopg) refuses more than 65,535 parameters in one
# statement and older SQLite builds 32,766, while a wave may draw 100,000 contacts.
IN_CHUNK = 10_000

Progress = Callable[[int, int], None]


@dataclass
class Plan:
    """Who a run would invite: the eligible count and the drawn contacts with their channel."""

    survey: str
    key: str
    eligible: int
    drawn: list[Candidate]

    @property
    def per_channel(self) -> Counter[str]:
        return Counter(c.channel for c in self.drawn)


@dataclass
class DryRun:
    """What a run started now would do, without doing it (``citoyen survey run --dry-run``)."""

    plan: Plan
    segments: int  # about how many SMS segments the SMS invitations' first messages take
    # Per channel: when the queue (what waits now, and these invitations from the first
    # allowed moment, within the survey's quiet hours day after day) would be sent at the
    # configured rates and phones.
    queues: list[ChannelEstimate] = field(default_factory=list)


@dataclass
class RunResult:
    run_id: int
    key: str
    eligible: int
    sampled: int
    invited: int = 0
    already: int = 0  # invited earlier in this run (a second firing, another worker)
    skipped: Counter[str] = field(default_factory=Counter)
    per_channel: Counter[str] = field(default_factory=Counter)
    send_at: datetime | None = None  # when the messages and calls may go out (quiet hours)


# --- audience ----------------------------------------------------------------------------------


def _area_ids(session: Session, codes: Iterable[str]) -> set[int]:
    """The areas with these codes and every area below them."""
    rows = session.exec(select(Area.id, Area.code, Area.parent_id)).all()
    children: dict[int | None, list[int]] = {}
    by_code = {}
    for area_id, code, parent_id in rows:
        children.setdefault(parent_id, []).append(area_id)
        by_code[code] = area_id
    found: set[int] = set()
    frontier = [by_code[c] for c in codes if c in by_code]
    while frontier:
        area_id = frontier.pop()
        if area_id in found:
            continue
        found.add(area_id)
        frontier += children.get(area_id, [])
    return found


def _reachable_kinds(survey: SurveyDef) -> list[str]:
    kinds = []
    if "telegram" in survey.channels:
        kinds.append("telegram")
    if "sms" in survey.channels or "voice" in survey.channels:
        kinds.append("tel")
    return kinds


def eligible_ids(
    session: Session, survey: SurveyDef, now: datetime, *, exclude_run: int | None = None
) -> list[int]:
    """Contact ids the audience allows now, sorted (invitations of ``exclude_run`` ignored).

    Consent, not opted out, not blocked, an address the survey's channels reach (a withheld
    caller never is), the area and language filters, nobody surveyed within
    ``skip_surveyed_within``, nobody over the frequency cap.
    """
    stmt = select(Contact.id).where(
        Contact.survey_consent.is_(True),
        Contact.opted_out.is_(False),
        Contact.blocked.is_(False),
        Contact.channel.in_(_reachable_kinds(survey)),
    )
    audience = survey.audience
    if audience.areas:
        stmt = stmt.where(Contact.area_id.in_(sorted(_area_ids(session, audience.areas))))
    if audience.languages:
        stmt = stmt.where(Contact.language.in_(audience.languages))

    def recent(since: datetime) -> Any:
        q = select(SurveyInvitation.contact_id).where(SurveyInvitation.invited_at >= since)
        if exclude_run is not None:
            q = q.where(SurveyInvitation.run_id != exclude_run)
        return q

    if survey.skip_delta > timedelta(0):
        stmt = stmt.where(Contact.id.not_in(recent(now - survey.skip_delta)))
    cap = survey.frequency_cap
    if cap is not None:
        from citoyen.engine.schema import duration_seconds

        since = now - timedelta(seconds=duration_seconds(cap.per))
        over = (
            recent(since)
            .group_by(SurveyInvitation.contact_id)
            .having(sa.func.count(SurveyInvitation.id) >= cap.max)
        )
        stmt = stmt.where(Contact.id.not_in(over))
    return sorted(session.exec(stmt).all())


def draw(ids: list[int], survey: SurveyDef, key: str) -> list[int]:
    """The sample: reproducible for one survey and run key (see the module docstring)."""
    sample = survey.audience.sample
    if sample is None or not ids:
        return list(ids)
    k = sample.size if sample.size is not None else math.ceil(sample.share * len(ids))
    k = min(len(ids), k)
    rng = random.Random(f"{survey.id}:{key}")
    return sorted(rng.sample(ids, k))


def channel_for(contact: Any, last_channel: str | None, survey: SurveyDef) -> str | None:
    """Where to invite a contact: Telegram users on Telegram; a phone contact on the channel they
    last used with us (callers are called: many do not read) when the survey lists it, else the
    first phone channel the survey lists. ``contact``: anything with the contact's ``channel``
    (address kind), a :class:`Contact` or a selected row."""
    if contact.channel == "telegram":
        return "telegram" if "telegram" in survey.channels else None
    if contact.channel != "tel":
        return None
    if last_channel in ("sms", "voice") and last_channel in survey.channels:
        return last_channel
    return next((c for c in survey.channels if c in ("sms", "voice")), None)


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), IN_CHUNK):
        yield ids[start : start + IN_CHUNK]


def _last_channels(session: Session, ids: list[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for chunk in _chunks(ids):
        latest = (
            select(sa.func.max(Conversation.id))
            .where(among(session, Conversation.contact_id, chunk))
            .group_by(Conversation.contact_id)
        )
        rows = session.exec(
            select(Conversation.contact_id, Conversation.channel).where(Conversation.id.in_(latest))
        ).all()
        out.update(rows)
    return out


def plan(
    session: Session, survey: SurveyDef, key: str, now: datetime, run_id: int | None = None
) -> Plan:
    """Who this run draws, each with the channel they would be invited on."""
    ids = eligible_ids(session, survey, now, exclude_run=run_id)
    drawn = draw(ids, survey, key)
    # The address kind alone, not Contact objects: a wave of 100,000 loaded as ORM objects
    # took a few hundred MB.
    contacts: dict[int, Any] = {}
    for chunk in _chunks(drawn):
        contacts.update(
            (row.id, row)
            for row in session.exec(
                select(Contact.id, Contact.channel).where(among(session, Contact.id, chunk))
            ).all()
        )
    last = _last_channels(session, drawn)
    out = []
    for cid in drawn:
        channel = channel_for(contacts[cid], last.get(cid), survey)
        if channel is not None:
            out.append(Candidate(cid, channel))
    return Plan(survey.id, key, len(ids), out)


def dry_run(runtime: Any, survey: SurveyDef, now: datetime) -> DryRun:
    """Whom a run of ``survey`` would invite now, per channel, and the SMS segments of the SMS
    invitations; nothing is written (the plan's key is its own, ``dry-run:<now>``)."""
    bundle = runtime.bundle
    with Session(runtime.engine) as session:
        the_plan = plan(session, survey, f"dry-run:{now.isoformat()}", now)
        languages: dict[str, list[str | None]] = {}
        for channel in ("sms", "telegram"):
            ids = [c.contact_id for c in the_plan.drawn if c.channel == channel]
            languages[channel] = []
            for chunk in _chunks(ids):
                languages[channel] += session.exec(
                    select(Contact.language).where(among(session, Contact.id, chunk))
                ).all()
        rows = {
            channel: estimated_rows(bundle.catalog, bundle, survey, channel, langs)
            for channel, langs in languages.items()
        }
        send_at = next_allowed(now, survey.quiet_hours.window(), survey.timezone)
        queues = estimate(
            session,
            runtime.settings,
            now,
            extra=rows,
            extra_at=send_at,
            extra_quiet_hours=survey.quiet_spec,
        )
    segments = estimated_segments(bundle.catalog, bundle, survey, languages["sms"])
    return DryRun(the_plan, segments, queues)


# --- messages ----------------------------------------------------------------------------------


def estimated_segments(
    catalog: Any, bundle: Any, survey: SurveyDef, languages: Iterable[str | None]
) -> int:
    """SMS segments the invitations of these contacts' languages would take (first message)."""
    texts = _invitation_texts(catalog, bundle, survey, "sms")
    return sum(segments(text) for lang in languages for text in texts(lang))


def estimated_rows(
    catalog: Any, bundle: Any, survey: SurveyDef, channel: str, languages: Iterable[str | None]
) -> int:
    """Outbox rows the invitations of these contacts' languages would queue on ``channel`` (an
    SMS cut in two is two rows, as :func:`~.invite.invitation_messages` cuts it)."""
    texts = _invitation_texts(catalog, bundle, survey, channel)
    return sum(len(texts(lang)) for lang in languages)


def _invitation_texts(
    catalog: Any, bundle: Any, survey: SurveyDef, channel: str
) -> Callable[[str | None], list[str]]:
    """The texts of one contact's invitation on ``channel``, by the contact's language: the
    survey flow's first step as :func:`~.invite.invitation_messages` sends it, computed once per
    language (a wave has a few languages and many contacts)."""
    from citoyen import engine as flow_engine
    from citoyen.engine.types import Context
    from citoyen.messages.types import Reply

    flow = bundle.flows[survey.flow]
    settings = bundle.settings

    @cache
    def texts(lang: str | None) -> list[str]:
        ctx = Context(
            languages=tuple(settings.languages.enabled),
            default_language=settings.languages.default,
            keywords=settings.keyword_map(),
            areas={},
            area_roots=(),
            menu_size=9,
            contact_language=lang,
            channel=channel,
        )
        result = flow_engine.start(flow, ctx, language=lang)
        language = result.state.language or lang or settings.languages.default
        reply = Reply(result.prompts, language, dict(settings.emergency_numbers))
        return [text for text, _payload in invitation_messages(catalog, reply, channel)]

    return texts


# --- a run ---------------------------------------------------------------------------------------


def _get_run(
    session: Session, survey: SurveyDef, key: str, trigger: str, now: datetime
) -> SurveyRun:
    run = session.exec(
        select(SurveyRun).where(SurveyRun.survey == survey.id, SurveyRun.key == key)
    ).first()
    if run is not None:
        return run
    run = SurveyRun(survey=survey.id, key=key, trigger=trigger, flow_id=survey.flow, started_at=now)
    try:
        with session.begin_nested():
            session.add(run)
            session.flush()
    except IntegrityError:
        run = session.exec(
            select(SurveyRun).where(SurveyRun.survey == survey.id, SurveyRun.key == key)
        ).one()
    return run


def _invite_in_batches(
    runtime: Any,
    survey: SurveyDef,
    run_id: int,
    drawn: list[Candidate],
    now: datetime,
    send_at: datetime,
    done: Callable[[list[Candidate], dict[int, str]], None],
) -> None:
    """Invite ``drawn`` in batches of :data:`BATCH`, one transaction each, ``done`` called with
    each batch's outcomes in the order drawn. A failed batch stops the run: a new firing of the
    same key resumes, counting the batches written as already invited."""
    for start in range(0, len(drawn), BATCH):
        batch = drawn[start : start + BATCH]
        with write_session(runtime.engine) as session:
            outcomes = invite_batch(session, runtime, survey, run_id, batch, now, send_at)
        done(batch, outcomes)


def start_run(
    runtime: Any,
    survey: SurveyDef,
    now: datetime | None = None,
    *,
    key: str | None = None,
    trigger: str = "manual",
    progress: Progress | None = None,
) -> RunResult:
    """Run (or resume) one firing of ``survey``: draw, then invite each drawn contact once."""
    now = now or datetime.now(UTC)
    key = key or f"manual:{now.strftime('%Y-%m-%dT%H:%M:%S')}"
    with write_session(runtime.engine) as session:
        run = _get_run(session, survey, key, trigger, now)
        run_id = run.id
        assert run_id is not None
        the_plan = plan(session, survey, key, now, run_id)
        run.eligible = the_plan.eligible
        run.sampled = len(the_plan.drawn)
    result = RunResult(run_id, key, the_plan.eligible, len(the_plan.drawn))
    total = len(the_plan.drawn)
    if progress:
        progress(0, total)
    send_at = next_allowed(now, survey.quiet_hours.window(), survey.timezone)
    result.send_at = send_at
    done = 0

    def count(batch: list[Candidate], outcomes: dict[int, str]) -> None:
        nonlocal done
        for candidate in batch:
            outcome = outcomes[candidate.contact_id]
            if outcome == "invited":
                result.invited += 1
                result.per_channel[candidate.channel] += 1
            elif outcome == "already":
                result.already += 1
            else:
                result.skipped[outcome] += 1
        done += len(batch)
        if progress:
            progress(done, total)

    _invite_in_batches(runtime, survey, run_id, the_plan.drawn, now, send_at, count)
    with write_session(runtime.engine) as session:
        run = session.get(SurveyRun, run_id)
        assert run is not None
        run.invited = session.exec(
            select(sa.func.count(SurveyInvitation.id)).where(SurveyInvitation.run_id == run_id)
        ).one()
        run.skipped = sum(result.skipped.values())
        run.status = "done"
        run.finished_at = now
    log.info(
        "survey %s run %s: %d eligible, %d drawn, %d invited now, %d already, skipped %s",
        survey.id,
        key,
        result.eligible,
        result.sampled,
        result.invited,
        result.already,
        dict(result.skipped) or "none",
    )
    return result


# --- after the invitation ------------------------------------------------------------------------


def update_invitations(runtime: Any, now: datetime | None = None) -> Counter[str]:
    """Follow open invitations to their end: completed, stopped (STOP), or expired."""
    now = now or datetime.now(UTC)
    changed: Counter[str] = Counter()
    with write_session(runtime.engine) as session:
        rows = session.exec(
            select(SurveyInvitation, Contact, Conversation)
            .join(Contact, Contact.id == SurveyInvitation.contact_id)
            .join(Conversation, Conversation.id == SurveyInvitation.conversation_id, isouter=True)
            .where(SurveyInvitation.status.in_(OPEN_INVITATION))
        ).all()
        answered = set()
        conversation_ids = [c.id for _i, _c, c in rows if c is not None]
        if conversation_ids:
            answered = set(
                session.exec(
                    select(SurveyAnswer.conversation_id)
                    .where(SurveyAnswer.conversation_id.in_(conversation_ids))
                    .distinct()
                ).all()
            )
        for invitation, contact, conversation in rows:
            status = None
            if conversation is not None and conversation.id in answered:
                # The answers are saved at the end of the flow: that is a completed survey.
                status = "completed"
                invitation.completed_at = conversation.updated_at
            elif contact.opted_out or contact.blocked:
                status = "stopped"
            elif conversation is not None and conversation.status not in ("active", "waiting"):
                status = "expired"  # ended without answers (expired, interrupted by a call)
            elif invitation.expires_at <= now and (
                conversation is None or conversation.status in ("active", "waiting")
            ):
                status = "expired"
                if conversation is not None:
                    conversation.status = "expired"
                    conversation.state = {**conversation.state, "status": "expired"}
                    conversation.updated_at = now
            if status is not None:
                invitation.status = status
                changed[status] += 1
    return changed


def send_reminders(runtime: Any, surveys: dict[str, SurveyDef], now: datetime | None = None) -> int:
    """One reminder per unanswered text invitation, ``reminder.after`` its first message."""
    from citoyen.engine.schema import duration_seconds

    now = now or datetime.now(UTC)
    sent = 0
    with write_session(runtime.engine) as session:
        for survey in surveys.values():
            if survey.reminder is None:
                continue
            due = now - timedelta(seconds=duration_seconds(survey.reminder.after))
            rows = session.exec(
                select(SurveyInvitation, Contact, Conversation)
                .join(Contact, Contact.id == SurveyInvitation.contact_id)
                .join(Conversation, Conversation.id == SurveyInvitation.conversation_id)
                .where(
                    SurveyInvitation.survey == survey.id,
                    SurveyInvitation.status == "invited",
                    SurveyInvitation.reminded_at.is_(None),
                    SurveyInvitation.send_at <= due,
                    SurveyInvitation.expires_at > now,
                    SurveyInvitation.channel.in_(("sms", "telegram")),
                    Conversation.status.in_(("active", "waiting")),
                    Contact.opted_out.is_(False),
                    Contact.blocked.is_(False),
                )
            ).all()
            catalog = runtime.bundle.catalog
            default = runtime.bundle.settings.languages.default
            for invitation, contact, conversation in rows:
                lang = conversation.state.get("language") or contact.language or default
                body = with_notice(catalog, catalog.render(REMINDER, lang, {}), lang)
                enqueue(
                    session,
                    channel=invitation.channel,
                    idempotency_key=f"survey:{invitation.id}:reminder",
                    body=body,
                    payload={"survey": survey.id, "invitation": invitation.id, "buttons": []},
                    contact_id=contact.id,
                    kind="survey",
                    now=now,
                    send_at=next_allowed(now, survey.quiet_hours.window(), survey.timezone),
                    quiet_hours=survey.quiet_spec,
                )
                invitation.reminded_at = now
                sent += 1
    return sent


def run_key(survey: SurveyDef, now: datetime, grace: timedelta) -> str | None:
    """The scheduled firing ``now`` belongs to: the latest cron time within ``grace`` before now.

    Two workers (or one job fired twice) compute the same key for the same firing, which is what
    makes the run row, and so every invitation, unique.
    """
    if survey.schedule is None:
        return None
    trigger = survey.schedule.trigger()
    fire = trigger.get_next_fire_time(None, now - grace)
    if fire is None or fire > now:
        return None
    latest = fire
    while True:
        nxt = trigger.get_next_fire_time(latest, latest + timedelta(seconds=1))
        if nxt is None or nxt > now:
            break
        latest = nxt
    return latest.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
