"""Accounts of the web admin: admins, coordinators, agents, analysts."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from sqlmodel import Session, func, select
from werkzeug.security import check_password_hash, generate_password_hash

from citoyen.models import Stakeholder, User

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


def create_user(
    session: Session,
    email: str,
    role: str,
    password: str,
    stakeholder_code: str | None = None,
) -> User:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise UserError(f"not an email address: {email!r}")
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password too short (at least {MIN_PASSWORD} characters)")
    if session.exec(select(User).where(User.email == email)).first():
        raise UserError(f"a user with email {email} already exists")
    stakeholder_id = None
    if stakeholder_code:
        stakeholder = session.exec(
            select(Stakeholder).where(Stakeholder.code == stakeholder_code)
        ).first()
        if stakeholder is None:
            raise UserError(f"unknown stakeholder {stakeholder_code!r}")
        stakeholder_id = stakeholder.id
    elif role == "agent":
        raise UserError("an agent works for a stakeholder: give --stakeholder")
    user = User(
        email=email,
        password_hash=hash_password(password),
        role=role,
        stakeholder_id=stakeholder_id,
        created_at=datetime.now(UTC),
    )
    session.add(user)
    session.flush()
    return user


def count_users(session: Session) -> int:
    return session.exec(select(func.count()).select_from(User)).one()
