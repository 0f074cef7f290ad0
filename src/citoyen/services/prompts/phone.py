"""Recording prompts by phone: the state of a recorder's call, and fetching what they kept.

A field team has a phone, not a studio. A permitted staff member calls the recorder number,
keys their staff number and PIN, picks a language, and is walked through the prompts one by
one: they hear the prompt's number, key and reference text, record after the beep, hear it back,
and keep it, record again, or skip. A kept take is fetched from Twilio by the worker (the same
fetcher as citizens' recordings, citoyen.services.media), checked like an upload, and stored in
the library attributed to them.

Everything a later request needs is in the database (``prompt_calls``, ``prompt_takes``) or in
the Twilio-signed URL (the prompt's number), never in process memory; every step is idempotent,
so Twilio retrying a request changes nothing twice.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from citoyen.channels.base import FetchError, MediaFetcher, PermanentFetchError
from citoyen.db import write_session
from citoyen.models import Attachment, PromptCall, PromptTake
from citoyen.services.media import BACKOFF_SECONDS, MAX_ATTEMPTS, readable_error
from citoyen.services.prompts.audio import AudioError, validate_upload
from citoyen.services.prompts.catalogue import PromptSpec, catalogue
from citoyen.services.prompts.library import PromptError, coverage, store_audio
from citoyen.services.prompts.pins import CALL_ATTEMPTS, check_pin

log = logging.getLogger(__name__)

Mode = Literal["missing", "all"]
Choice = Literal["keep", "again", "skip"]
CHOICES: dict[str, Choice] = {"1": "keep", "2": "again", "3": "skip"}
MAX_TAKE_SECONDS = 60  # longer than any prompt; <Record maxLength>


@dataclass(frozen=True)
class FetchSummary:
    stored: int = 0
    retrying: int = 0
    failed: int = 0
    superseded: int = 0


def open_call(runtime: Any, call_sid: str, now: datetime | None = None) -> PromptCall:
    """The recorder call of this CallSid, created on the first request (a retry finds it)."""
    now = now or datetime.now(UTC)
    for _attempt in range(2):
        try:
            with write_session(runtime.engine) as session:
                call = session.exec(
                    select(PromptCall).where(PromptCall.call_sid == call_sid)
                ).first()
                if call is None:
                    call = PromptCall(call_sid=call_sid, created_at=now, updated_at=now)
                    session.add(call)
                    session.flush()
                session.expunge(call)
                return call
        except IntegrityError:
            continue  # a copy of this request created it first
    raise RuntimeError("could not open the recorder call")  # pragma: no cover


def get_call(runtime: Any, call_sid: str) -> PromptCall | None:
    with Session(runtime.engine) as session:
        call = session.exec(select(PromptCall).where(PromptCall.call_sid == call_sid)).first()
        if call is not None:
            session.expunge(call)
        return call


def identify(
    runtime: Any, call_sid: str, staff: str, pin: str, now: datetime | None = None
) -> Literal["ok", "wrong", "locked", "hang_up"]:
    """Check a staff number and PIN for this call.

    ``wrong`` lets the caller try again; ``hang_up`` after :data:`CALL_ATTEMPTS` wrong tries in
    the call; ``locked`` when the staff number has too many recent failures (any call).
    """
    now = now or datetime.now(UTC)
    with write_session(runtime.engine) as session:
        call = session.exec(
            select(PromptCall).where(PromptCall.call_sid == call_sid).with_for_update()
        ).first()
        if call is None:
            return "hang_up"
        if call.user_id is not None:
            return "ok"  # a retry of the request that identified the caller
        if call.pin_attempts >= CALL_ATTEMPTS:
            return "hang_up"
        result, user_id = check_pin(session, staff, pin, now)
        call.updated_at = now
        if result == "ok":
            call.user_id = user_id
            log.info("prompts: recorder call identified as user %s", user_id)
            return "ok"
        call.pin_attempts += 1
        log.warning("prompts: wrong staff number or PIN on a recorder call (%s)", result)
        if result == "locked":
            return "locked"
        return "hang_up" if call.pin_attempts >= CALL_ATTEMPTS else "wrong"


def set_language(runtime: Any, call_sid: str, lang: str) -> None:
    with write_session(runtime.engine) as session:
        call = session.exec(select(PromptCall).where(PromptCall.call_sid == call_sid)).first()
        if call is not None and call.user_id is not None:
            call.language = lang
            call.updated_at = datetime.now(UTC)


def next_prompt(runtime: Any, lang: str, start: int, mode: Mode) -> PromptSpec | None:
    """The first prompt numbered ``start`` or more: any (``all``), or one without a current
    recording (``missing``: missing or stale, and not already kept in a pending take)."""
    specs = [s for s in catalogue(runtime.bundle, lang) if s.number >= start]
    if mode == "all":
        return specs[0] if specs else None
    todo = {
        st.key
        for st in coverage(runtime, lang)
        if st.status in ("missing", "stale") and st.language == lang
    }
    with Session(runtime.engine) as session:
        waiting = set(
            session.exec(
                select(PromptTake.key).where(
                    PromptTake.language == lang, PromptTake.status == "pending"
                )
            ).all()
        )
    return next((s for s in specs if s.key in todo and s.key not in waiting), None)


def prompt_by_number(runtime: Any, lang: str, number: int) -> PromptSpec | None:
    return next((s for s in catalogue(runtime.bundle, lang) if s.number == number), None)


def add_take(
    runtime: Any,
    call: PromptCall,
    spec: PromptSpec,
    recording_sid: str,
    duration: int | None,
    now: datetime | None = None,
) -> PromptTake:
    """A recording just made for ``spec`` (a draft until kept); once per RecordingSid."""
    now = now or datetime.now(UTC)
    assert call.user_id is not None and call.language is not None
    for _attempt in range(2):
        try:
            with write_session(runtime.engine) as session:
                take = session.exec(
                    select(PromptTake).where(PromptTake.recording_sid == recording_sid)
                ).first()
                if take is None:
                    take = PromptTake(
                        call_id=call.id,
                        user_id=call.user_id,
                        language=call.language,
                        key=spec.key,
                        text_hash=spec.text_hash,
                        recording_sid=recording_sid,
                        duration_seconds=duration,
                        created_at=now,
                    )
                    session.add(take)
                    session.flush()
                session.expunge(take)
                return take
        except IntegrityError:
            continue
    raise RuntimeError("could not store the take")  # pragma: no cover


def get_take(runtime: Any, call: PromptCall, take_id: int) -> PromptTake | None:
    """A take of this call (None for another call's: URLs cannot reach across calls)."""
    with Session(runtime.engine) as session:
        take = session.get(PromptTake, take_id)
        if take is None or take.call_id != call.id:
            return None
        session.expunge(take)
        return take


def decide(
    runtime: Any, call: PromptCall, take_id: int, choice: Choice, now: datetime | None = None
) -> PromptTake | None:
    """Keep (the worker will fetch it), record again or skip a draft take. A take already
    decided stays as it is, so a retried request does not undo or repeat anything."""
    now = now or datetime.now(UTC)
    with write_session(runtime.engine) as session:
        take = session.get(PromptTake, take_id)
        if take is None or take.call_id != call.id:
            return None
        if take.status == "draft":
            if choice == "keep":
                take.status = "pending"
                take.kept_at = now
                # An earlier kept take of the same prompt not fetched yet is superseded.
                for older in session.exec(
                    select(PromptTake).where(
                        PromptTake.language == take.language,
                        PromptTake.key == take.key,
                        PromptTake.status == "pending",
                        PromptTake.id != take.id,
                    )
                ).all():
                    older.status = "discarded"
            else:
                take.status = "discarded"
        session.flush()
        session.expunge(take)
        return take


# --- the worker ------------------------------------------------------------------------------


def _due(take: PromptTake, now: datetime) -> bool:
    start = take.kept_at or take.created_at
    return start + timedelta(seconds=BACKOFF_SECONDS * (2**take.attempts - 1)) <= now


def fetch_kept_takes(
    runtime: Any, fetcher: MediaFetcher, *, now: datetime | None = None, limit: int = 20
) -> FetchSummary:
    """Fetch kept takes from Twilio, check them like uploads and store them in the library.

    Network trouble is retried with the same back-off as citizens' recordings; a recording that
    is not a usable prompt (too short, unreadable) fails at once with the reason in ``error``.
    """
    now = now or datetime.now(UTC)
    with Session(runtime.engine) as session:
        rows = session.exec(
            select(PromptTake)
            .where(PromptTake.status == "pending", PromptTake.attempts < MAX_ATTEMPTS)
            .order_by(PromptTake.id)
            .limit(limit * 10)
        ).all()
        due = [row for row in rows if _due(row, now)][:limit]
        for row in due:
            session.expunge(row)
    counts = {"stored": 0, "retrying": 0, "failed": 0, "superseded": 0}
    for take in due:
        counts[_fetch_one(runtime, fetcher, take, now)] += 1
    if due:
        log.info("prompts: takes %s", ", ".join(f"{v} {k}" for k, v in counts.items()))
    return FetchSummary(**counts)


def _fetch_one(runtime: Any, fetcher: MediaFetcher, take: PromptTake, now: datetime) -> str:
    buffer = io.BytesIO()
    # The fetcher only reads provider_ref: a transient Attachment, never stored.
    ref = Attachment(channel="voice", kind="prompt", provider_ref=take.recording_sid)
    try:
        fetcher.fetch(ref, buffer)
        audio = validate_upload(buffer.getvalue(), f"{take.language}/{take.key}")
    except FetchError as exc:
        return _failure(runtime, take, str(exc), permanent=isinstance(exc, PermanentFetchError))
    except AudioError as exc:
        return _failure(runtime, take, str(exc), permanent=True)
    with write_session(runtime.engine) as session:
        row = session.get(PromptTake, take.id)
        if row is None or row.status != "pending":
            return "superseded"  # a later take of the same prompt was kept meanwhile
    try:
        store_audio(
            runtime,
            take.language,
            take.key,
            audio,
            source="phone",
            user_id=take.user_id,
            text_hash=take.text_hash,
        )
    except PromptError as exc:  # the flows changed: this key is no longer played
        return _failure(runtime, take, str(exc), permanent=True)
    except OSError as exc:  # the disk: full, read-only; kept pending, tried again
        return _failure(
            runtime, take, f"cannot store the recording: {readable_error(exc)}", permanent=False
        )
    with write_session(runtime.engine) as session:
        row = session.get(PromptTake, take.id)
        if row is not None:
            row.status = "stored"
            row.stored_at = now
            row.attempts += 1
            row.error = None
    return "stored"


def _failure(runtime: Any, take: PromptTake, error: str, *, permanent: bool) -> str:
    with write_session(runtime.engine) as session:
        row = session.get(PromptTake, take.id)
        if row is None or row.status != "pending":
            return "failed"
        row.attempts += 1
        row.error = error[:500]
        if permanent or row.attempts >= MAX_ATTEMPTS:
            row.status = "failed"
            log.warning(
                "prompts: take %s of %s/%s failed: %s", row.id, row.language, row.key, error
            )
            return "failed"
    return "retrying"


def scheduled_jobs(runtime: Any) -> list[dict[str, Any]]:
    """The worker's job fetching kept takes (none without Twilio credentials)."""
    fetcher = runtime.recording_fetcher
    if fetcher is None:
        return []
    return [
        {
            "func": fetch_kept_takes,
            "trigger": "interval",
            "seconds": 30,
            "args": [runtime, fetcher],
            "id": "fetch_prompt_takes",
            "name": "fetch prompts recorded by phone into the library",
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": 30,
            "replace_existing": True,
        }
    ]
