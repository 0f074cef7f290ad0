"""Accounts of the web admin: admins, coordinators, agents, analysts."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, delete, func, select
from werkzeug.security import check_password_hash, generate_password_hash

from citoyen.models import Area, LoginFailure, Stakeholder, User

ROLES = ("admin", "coordinator", "agent", "analyst")
MIN_PASSWORD = 10
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class UserError(ValueError):
    """A request about accounts that cannot be honoured, with the reason."""


def hash_password(password: str) -> str:
    # werkzeug's default is scrypt with a random salt: a current, memory-hard algorithm.
    return generate_password_hash(password)


def verify_password(user: User, password: str) -> bool:
    return check_password_hash(user.password_hash, password)


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def _stakeholder_id(session: Session, code: str | None) -> int | None:
    if not code:
        return None
    stakeholder = session.exec(select(Stakeholder).where(Stakeholder.code == code)).first()
    if stakeholder is None:
        raise UserError(f"unknown stakeholder {code!r}")
    return stakeholder.id


def _area_id(session: Session, code: str | None) -> int | None:
    if not code:
        return None
    area = session.exec(select(Area).where(Area.code == code)).first()
    if area is None:
        raise UserError(f"unknown area {code!r}")
    return area.id


def _check_scope(
    session: Session, role: str, stakeholder_id: int | None, area_id: int | None
) -> None:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if role == "agent" and stakeholder_id is None:
        raise UserError("an agent works for a stakeholder: give --stakeholder")
    if role == "coordinator" and area_id is None:
        stakeholder = session.get(Stakeholder, stakeholder_id) if stakeholder_id else None
        if stakeholder is None or stakeholder.area_id is None:
            raise UserError(
                "a coordinator coordinates an area: give --area, or a --stakeholder with an area"
            )


def create_user(
    session: Session,
    email: str,
    role: str,
    password: str,
    stakeholder_code: str | None = None,
    area_code: str | None = None,
    language: str | None = None,
) -> User:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise UserError(f"not an email address: {email!r}")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password too short (at least {MIN_PASSWORD} characters)")
    if session.exec(select(User).where(User.email == email)).first():
        raise UserError(f"a user with email {email} already exists")
    stakeholder_id = _stakeholder_id(session, stakeholder_code)
    area_id = _area_id(session, area_code)
    _check_scope(session, role, stakeholder_id, area_id)
    user = User(
        email=email,
        password_hash=hash_password(password),
        role=role,
        stakeholder_id=stakeholder_id,
        area_id=area_id,
        language=language,
        created_at=datetime.now(UTC),
    )
    session.add(user)
    session.flush()
    return user


def update_user(
    session: Session,
    user: User,
    *,
    role: str,
    stakeholder_code: str | None,
    area_code: str | None,
    active: bool,
    acting_user_id: int | None = None,
) -> User:
    """Change a user's role, scope or state. An administrator cannot demote or deactivate
    themselves, so there is always someone left to manage accounts."""
    stakeholder_id = _stakeholder_id(session, stakeholder_code)
    area_id = _area_id(session, area_code)
    _check_scope(session, role, stakeholder_id, area_id)
    if acting_user_id == user.id and (role != "admin" or not active):
        raise UserError("you cannot remove your own administrator access")
    user.role, user.stakeholder_id, user.area_id, user.active = (
        role,
        stakeholder_id,
        area_id,
        active,
    )
    session.add(user)
    session.flush()
    return user


def set_password(user: User, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password too short (at least {MIN_PASSWORD} characters)")
    user.password_hash = hash_password(password)


# --- sign-in throttling ---------------------------------------------------------------------
# Failed sign-ins are rows, so the limit holds across web workers and restarts. Keys are keyed
# hashes: the table never holds an email or a client address in clear.

THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_ADDRESS = 30


@dataclass(frozen=True)
class ThrottleKeys:
    email: str
    address: str

    @classmethod
    def of(cls, secret: str, email: str, address: str | None) -> ThrottleKeys:
        def digest(kind: str, value: str) -> str:
            mac = hmac.new(secret.encode(), f"{kind}:{value}".encode(), hashlib.sha256)
            return f"{kind}:{mac.hexdigest()[:64]}"

        return cls(digest("email", email.strip().lower()), digest("ip", address or "?"))


def throttled(session: Session, keys: ThrottleKeys, now: datetime) -> bool:
    """Whether sign-in is refused for now: too many failures for this email or address."""
    since = now - THROTTLE_WINDOW

    def failures(key: str) -> int:
        return session.exec(
            select(func.count())
            .select_from(LoginFailure)
            .where(LoginFailure.key == key, LoginFailure.created_at >= since)
        ).one()

    return (
        failures(keys.email) >= MAX_FAILURES_PER_EMAIL
        or failures(keys.address) >= MAX_FAILURES_PER_ADDRESS
    )


def record_failure(session: Session, keys: ThrottleKeys, now: datetime) -> None:
    session.add(LoginFailure(key=keys.email, created_at=now))
    session.add(LoginFailure(key=keys.address, created_at=now))
    # Old rows are worthless: keep the table small.
    session.exec(delete(LoginFailure).where(col(LoginFailure.created_at) < now - timedelta(days=1)))
    session.flush()


def clear_failures(session: Session, keys: ThrottleKeys) -> None:
    session.exec(delete(LoginFailure).where(LoginFailure.key == keys.email))


def count_users(session: Session) -> int:
    return session.exec(select(func.count()).select_from(User)).one()
