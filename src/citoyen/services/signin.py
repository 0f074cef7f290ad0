"""Sign-in throttling that slows a stranger down without locking the real user out.

Following OWASP's advice (Authentication and Credential Stuffing cheat sheets, "Slow down online
guessing attacks with device cookies"), there is no account lockout, which a stranger who knows a
staff e-mail could turn against its owner:

- **per client address**, a hard limit: :data:`MAX_FAILURES_PER_ADDRESS` failures within
  :data:`WINDOW` and that address is refused until the oldest falls out of the window. Behind a
  reverse proxy the address is the client's only when the proxy is trusted
  (``CITOYEN_TRUSTED_PROXIES``), else every client shares the proxy's address;
- **per account**, a progressive delay: after :data:`FREE_FAILURES` failures within the window,
  each further attempt must wait :data:`FIRST_DELAY` after the last failure, doubling with each
  failure up to :data:`MAX_DELAY`. Attempts made while waiting are refused without being counted,
  so a stranger gets one guess per delay and can never make the wait longer than the cap;
- **a device the user signed in from** (a signed cookie naming the account) is exempt from the
  account's delay and has its own small limit instead: the real user, on their usual device,
  signs in even while a stranger hammers their account from elsewhere.

Failures are rows (across web workers and restarts), keyed by HMAC: the table never holds an
e-mail, an address or a device id in clear. A successful sign-in clears the account's and the
device's failures, not the address's (a shared address may hold a stranger too).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, delete, select

from citoyen.models import LoginFailure

WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ADDRESS = 30
FREE_FAILURES = 5
FIRST_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(minutes=5)
MAX_FAILURES_PER_DEVICE = 5
# Wrong second-factor codes per account within the window (the password was right: no delay
# game, the account's second factor is simply closed for the rest of the window).
MAX_CODE_FAILURES = 5


def _digest(secret: str, kind: str, value: str) -> str:
    mac = hmac.new(secret.encode(), f"{kind}:{value}".encode(), hashlib.sha256)
    return f"{kind}:{mac.hexdigest()}"


@dataclass(frozen=True)
class ThrottleKeys:
    """The keyed hashes one attempt is counted under."""

    email: str
    address: str
    device: str | None = None

    @classmethod
    def of(
        cls, secret: str, email: str, address: str | None, device: str | None = None
    ) -> ThrottleKeys:
        return cls(
            _digest(secret, "email", email.strip().lower()),
            _digest(secret, "ip", address or "?"),
            _digest(secret, "device", device) if device else None,
        )

    def all(self) -> list[str]:
        return [k for k in (self.email, self.address, self.device) if k]


def code_key(secret: str, user_id: int) -> str:
    """The key wrong second-factor codes of one account are counted under."""
    return _digest(secret, "totp", str(user_id))


def _failures(session: Session, key: str, since: datetime) -> list[datetime]:
    return list(
        session.exec(
            select(LoginFailure.created_at)
            .where(LoginFailure.key == key, LoginFailure.created_at >= since)
            .order_by(col(LoginFailure.created_at))
        ).all()
    )


def account_delay(failures: int) -> timedelta:
    """How long after the last failure the next attempt must wait, with ``failures`` so far."""
    if failures < FREE_FAILURES:
        return timedelta(0)
    doublings = min(failures - FREE_FAILURES, 10)
    return min(FIRST_DELAY * (2**doublings), MAX_DELAY)


def wait_before_attempt(
    session: Session, keys: ThrottleKeys, now: datetime, *, trusted_device: bool
) -> timedelta:
    """How long this attempt must wait; zero: go ahead and check the password."""
    since = now - WINDOW
    by_address = _failures(session, keys.address, since)
    if len(by_address) >= MAX_FAILURES_PER_ADDRESS:
        return by_address[-MAX_FAILURES_PER_ADDRESS] + WINDOW - now
    if trusted_device and keys.device:
        by_device = _failures(session, keys.device, since)
        if len(by_device) < MAX_FAILURES_PER_DEVICE:
            return timedelta(0)
    by_account = _failures(session, keys.email, since)
    if not by_account:
        return timedelta(0)
    wait = by_account[-1] + account_delay(len(by_account)) - now
    return max(wait, timedelta(0))


def record_failure(session: Session, keys: ThrottleKeys, now: datetime) -> None:
    for key in keys.all():
        session.add(LoginFailure(key=key, created_at=now))
    # Old rows are worthless: keep the table small.
    session.exec(delete(LoginFailure).where(col(LoginFailure.created_at) < now - timedelta(days=1)))
    session.flush()


def clear_failures(session: Session, keys: ThrottleKeys) -> None:
    mine = [k for k in (keys.email, keys.device) if k]
    session.exec(delete(LoginFailure).where(col(LoginFailure.key).in_(mine)))


def code_attempts_left(session: Session, key: str, now: datetime) -> bool:
    return len(_failures(session, key, now - WINDOW)) < MAX_CODE_FAILURES


def record_code_failure(session: Session, key: str, now: datetime) -> None:
    session.add(LoginFailure(key=key, created_at=now))
    session.flush()


def clear_code_failures(session: Session, key: str) -> None:
    session.exec(delete(LoginFailure).where(LoginFailure.key == key))
