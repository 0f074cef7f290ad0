"""Two-factor sign-in with time-based one-time codes (TOTP, RFC 6238, via pyotp).

Optional for every account; required for administrators and for the roles that may reveal a
reporter's number (``CITOYEN_REVEAL_ROLES``), who are asked to enrol at their next sign-in.

- Enrolment: a random secret is drawn and stored encrypted with the data key (like the
  numbers), then shown once as a QR code and as text; it is enabled only when the user types a
  code it produced, which proves their app holds it.
- Codes: six digits, 30-second steps, one step of clock drift either way; a step once accepted
  is never accepted again (a code seen over a shoulder or in a proxy log is worthless).
- Recovery codes: ten, drawn at enrolment and shown once; each works once. Only their SHA-256 is
  stored: they are random (48 bits), so a slow hash would add nothing.
- Every enrolment, use, recovery and reset is an audit event (the web layer writes them); every
  change ends the user's other sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

import pyotp
from sqlmodel import Session

from citoyen.models import User
from citoyen.services.privacy import Vault
from citoyen.services.users import end_sessions

ISSUER = "citoyen"
RECOVERY_CODES = 10
STEP_SECONDS = 30


class TwoFactorError(ValueError):
    """A two-factor request that cannot be honoured, with the reason."""


def required_for(role: str, reveal_roles: tuple[str, ...]) -> bool:
    """Administrators, and whoever may reveal a reporter's number, must use a second factor."""
    return role == "admin" or role in reveal_roles


def is_enabled(user: User) -> bool:
    return user.totp_enabled_at is not None and bool(user.totp_secret_enc)


def pending_secret(session: Session, user: User, vault: Vault) -> str:
    """The secret being enrolled: drawn on first call, the same one until enrolment ends (a page
    reloaded shows the same QR code)."""
    if is_enabled(user):
        raise TwoFactorError("two-factor sign-in is already on")
    if user.totp_secret_enc:
        return vault.decrypt(user.totp_secret_enc)
    secret = pyotp.random_base32()
    user.totp_secret_enc = vault.encrypt(secret)
    session.add(user)
    session.flush()
    return secret


def provisioning_uri(secret: str, email: str) -> str:
    """The ``otpauth://`` URI authenticator apps read from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def _step(when: datetime) -> int:
    return int(when.timestamp()) // STEP_SECONDS


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The step (now, one before or one after) whose code is ``code``, else None."""
    totp = pyotp.TOTP(secret)
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == totp.digits):
        return None
    current = _step(now)
    for step in (current, current - 1, current + 1):
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            return step
    return None


def _hash_recovery(code: str) -> str:
    normalised = code.strip().lower().replace("-", "").replace(" ", "")
    return hashlib.sha256(normalised.encode()).hexdigest()


def new_recovery_codes(user: User) -> list[str]:
    """Ten fresh recovery codes (the old ones stop working); returned once, stored hashed."""
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = secrets.token_hex(6)
        codes.append(f"{raw[:4]}-{raw[4:8]}-{raw[8:]}")
    user.recovery_codes = [_hash_recovery(c) for c in codes]
    return codes


def confirm_enrolment(
    session: Session, user: User, vault: Vault, code: str, now: datetime | None = None
) -> list[str]:
    """Turn two-factor sign-in on with the first code from the user's app; the recovery codes
    to show once. Ends the user's other sessions."""
    now = now or datetime.now(UTC)
    secret = pending_secret(session, user, vault)
    step = _matching_step(secret, code, now)
    if step is None:
        raise TwoFactorError("wrong code")
    user.totp_enabled_at = now
    user.totp_last_step = step
    codes = new_recovery_codes(user)
    end_sessions(user)
    session.add(user)
    session.flush()
    return codes


def check_code(
    session: Session, user: User, vault: Vault, code: str, now: datetime | None = None
) -> str | None:
    """``"totp"`` or ``"recovery"`` when ``code`` is a fresh one-time code or an unused recovery
    code of ``user`` (it is then used up), else None."""
    if not is_enabled(user):
        return None
    now = now or datetime.now(UTC)
    secret = vault.decrypt(user.totp_secret_enc or "")
    step = _matching_step(secret, code, now)
    if step is not None:
        if user.totp_last_step is not None and step <= user.totp_last_step:
            return None  # replayed
        user.totp_last_step = step
        session.add(user)
        session.flush()
        return "totp"
    digest = _hash_recovery(code)
    left = list(user.recovery_codes or [])
    for stored in left:
        if hmac.compare_digest(stored, digest):
            left.remove(stored)
            user.recovery_codes = left
            session.add(user)
            session.flush()
            return "recovery"
    return None


def turn_off(session: Session, user: User) -> None:
    """Two-factor sign-in off (by the user when optional for them, or reset by an administrator
    for a lost phone: the user then enrols again at next sign-in if it is required)."""
    user.totp_secret_enc = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    user.recovery_codes = []
    end_sessions(user)
    session.add(user)
    session.flush()
