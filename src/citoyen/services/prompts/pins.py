"""Who may record prompts by phone: staff with a PIN set in the admin.

A caller proves who they are with their staff number (their user id, shown in the admin) and a
PIN of 4 to 8 digits. PINs are hashed like passwords (werkzeug's scrypt). A keypad PIN is short,
so wrong guesses are throttled in the database — :data:`MAX_FAILURES` per staff number within
:data:`FAILURE_WINDOW` locks that number, across calls, web workers and restarts — and each call
gets :data:`CALL_ATTEMPTS` tries before it is hung up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlmodel import Session, col, delete, func, select
from werkzeug.security import check_password_hash, generate_password_hash

from citoyen.db import write_session
from citoyen.models import AuditEvent, LoginFailure, PromptRecorder, User
from citoyen.services.prompts.library import PromptError

PIN = re.compile(r"\d{4,8}")
STAFF = re.compile(r"\d{1,9}")
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
CALL_ATTEMPTS = 3
# A hash to check against when the staff number is unknown, so both cases take the same time.
_DUMMY_HASH = generate_password_hash("00000000")


@dataclass(frozen=True)
class Recorder:
    user_id: int
    email: str
    since: datetime


def _weak(pin: str) -> bool:
    return len(set(pin)) == 1 or pin in "0123456789" or pin in "9876543210"


def set_pin(runtime: Any, user_id: int, pin: str, *, by_user_id: int | None) -> None:
    """Allow a user to record by phone with this PIN (replacing any previous one).

    Refuses (:class:`PromptError`) an inactive or unknown user and a PIN that is not 4-8 digits
    or is trivially guessed (all one digit, a run like 1234).
    """
    if not PIN.fullmatch(pin or ""):
        raise PromptError("the PIN must be 4 to 8 digits (keyed on a phone)", "pin_digits")
    if _weak(pin):
        raise PromptError(
            "this PIN is too easy to guess (one digit repeated, or a run)", "pin_weak"
        )
    now = datetime.now(UTC)
    with write_session(runtime.engine) as session:
        user = session.get(User, user_id)
        if user is None or not user.active:
            raise PromptError(f"no active user with id {user_id}", "pin_user", user=user_id)
        recorder = session.exec(
            select(PromptRecorder).where(PromptRecorder.user_id == user_id)
        ).first()
        if recorder is None:
            recorder = PromptRecorder(user_id=user_id, pin_hash="", created_at=now)
            session.add(recorder)
        recorder.pin_hash = generate_password_hash(pin)
        recorder.updated_at = now
        # A new PIN lifts a lock: the admin who sets it vouches for the person.
        session.exec(delete(LoginFailure).where(LoginFailure.key == _key(str(user_id))))
        session.add(
            AuditEvent(
                user_id=by_user_id,
                action="prompt_pin_set",
                target_type="user",
                target_id=user_id,
                created_at=now,
            )
        )


def clear_pin(runtime: Any, user_id: int, *, by_user_id: int | None) -> bool:
    """Take away a user's phone recording access; False when they had none."""
    with write_session(runtime.engine) as session:
        recorder = session.exec(
            select(PromptRecorder).where(PromptRecorder.user_id == user_id)
        ).first()
        if recorder is None:
            return False
        session.delete(recorder)
        session.add(
            AuditEvent(
                user_id=by_user_id,
                action="prompt_pin_cleared",
                target_type="user",
                target_id=user_id,
            )
        )
    return True


def recorders(runtime: Any) -> list[Recorder]:
    """Users who may record by phone (for the admin's list)."""
    with Session(runtime.engine) as session:
        rows = session.exec(
            select(PromptRecorder.user_id, User.email, PromptRecorder.updated_at)
            .join(User, col(User.id) == PromptRecorder.user_id)
            .order_by(User.email)
        ).all()
    return [Recorder(uid, email, since) for uid, email, since in rows]


def _key(staff: str) -> str:
    return f"pin:{staff}"


def check_pin(
    session: Session, staff: str, pin: str, now: datetime
) -> tuple[Literal["ok", "wrong", "locked"], int | None]:
    """``("ok", user_id)``, ``("wrong", None)`` or ``("locked", None)``; a wrong try is counted.

    An unknown staff number, a user without a PIN and an inactive user are all just "wrong",
    so the keypad tells nothing about which staff numbers exist.
    """
    # "0012" and "12" are one staff number: one failure count, or leading zeros would multiply
    # the tries an attacker gets.
    staff = str(int(staff)) if STAFF.fullmatch(staff or "") else "invalid"
    key = _key(staff)
    failures = session.exec(
        select(func.count())
        .select_from(LoginFailure)
        .where(LoginFailure.key == key, LoginFailure.created_at > now - FAILURE_WINDOW)
    ).one()
    if failures >= MAX_FAILURES:
        return "locked", None
    row = None
    if staff != "invalid":
        row = session.exec(
            select(PromptRecorder, User)
            .join(User, col(User.id) == PromptRecorder.user_id)
            .where(PromptRecorder.user_id == int(staff))
        ).first()
    pin_ok = check_password_hash(row[0].pin_hash if row else _DUMMY_HASH, pin or "")
    if row is not None and pin_ok and row[1].active:
        session.exec(delete(LoginFailure).where(LoginFailure.key == key))
        return "ok", row[1].id
    session.add(LoginFailure(key=key, created_at=now))
    return "wrong", None
