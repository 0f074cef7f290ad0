"""Accounts of the web admin: admins, coordinators, agents, analysts."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, func, select
from werkzeug.security import check_password_hash, generate_password_hash

from citoyen.models import Area, Stakeholder, User
from citoyen.services.refusals import Refusal

ROLES = ("admin", "coordinator", "agent", "analyst", "reviewer")
MIN_PASSWORD = 10
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class UserError(Refusal):
    """A request about accounts that cannot be honoured: the English reason (for the command
    line) and a code the admin words in the staff's language."""


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
        raise UserError(f"unknown stakeholder {code!r}", "unknown_stakeholder", stakeholder=code)
    return stakeholder.id


def _area_id(session: Session, code: str | None) -> int | None:
    if not code:
        return None
    area = session.exec(select(Area).where(Area.code == code)).first()
    if area is None:
        raise UserError(f"unknown area {code!r}", "unknown_area", area=code)
    return area.id


def _check_scope(
    session: Session, role: str, stakeholder_id: int | None, area_id: int | None
) -> None:
    if role not in ROLES:
        raise UserError(
            f"unknown role {role!r}; roles: {', '.join(ROLES)}", "unknown_role", role=role
        )
    if role == "agent" and stakeholder_id is None:
        raise UserError("an agent works for a stakeholder: give --stakeholder", "agent_stakeholder")
    if role == "coordinator" and area_id is None:
        stakeholder = session.get(Stakeholder, stakeholder_id) if stakeholder_id else None
        if stakeholder is None or stakeholder.area_id is None:
            raise UserError(
                "a coordinator coordinates an area: give --area, or a --stakeholder with an area",
                "coordinator_area",
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
        raise UserError(f"not an email address: {email!r}", "email_invalid", email=email)
    if len(password) < MIN_PASSWORD:
        raise UserError(
            f"password too short (at least {MIN_PASSWORD} characters)",
            "password_short",
            minimum=MIN_PASSWORD,
        )
    if session.exec(select(User).where(User.email == email)).first():
        raise UserError(f"a user with email {email} already exists", "email_taken", email=email)
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
        raise UserError("you cannot remove your own administrator access", "own_admin")
    if (user.role, user.stakeholder_id, user.area_id, user.active) != (
        role,
        stakeholder_id,
        area_id,
        active,
    ):
        # A session opened under the old powers must not keep them.
        end_sessions(user)
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
    """A new password; every session opened with the old one ends."""
    if len(password) < MIN_PASSWORD:
        raise UserError(
            f"password too short (at least {MIN_PASSWORD} characters)",
            "password_short",
            minimum=MIN_PASSWORD,
        )
    user.password_hash = hash_password(password)
    end_sessions(user)


def end_sessions(user: User) -> None:
    """End every session of ``user``, on every device: each carries the version it was opened
    under, and the admin refuses a session whose version is not the user's current one."""
    user.session_version = (user.session_version or 0) + 1


def count_users(session: Session) -> int:
    return session.exec(select(func.count()).select_from(User)).one()


def user_by_id(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def scope_codes(session: Session, user: User) -> dict[str, str | None]:
    """The codes of ``user``'s stakeholder and area (None: none), as the account form shows them."""
    stakeholder = session.get(Stakeholder, user.stakeholder_id) if user.stakeholder_id else None
    area = session.get(Area, user.area_id) if user.area_id else None
    return {
        "stakeholder": stakeholder.code if stakeholder else None,
        "area": area.code if area else None,
    }


def user_by_email(session: Session, email: str) -> User | None:
    return session.exec(select(User).where(User.email == email)).first()


def users_with_scope(session: Session) -> list[tuple[User, str | None, str | None]]:
    """Every account with the name of its stakeholder and of its area (None: none), by email."""
    rows = session.exec(
        select(User, Stakeholder.name, Area.name)
        .join(Stakeholder, Stakeholder.id == User.stakeholder_id, isouter=True)
        .join(Area, Area.id == User.area_id, isouter=True)
        .order_by(User.email)
    ).all()
    return list(rows)


def active_users(session: Session) -> list[User]:
    """The accounts that can sign in, by email."""
    return list(session.exec(select(User).where(User.active.is_(True)).order_by(User.email)).all())


def audit_creation(
    session: Session,
    staff: Any,
    user: User,
    *,
    stakeholder: str | None,
    area: str | None,
    via: str | None = None,
) -> None:
    """The ``user_created`` audit entry of a new account, whoever made it (the admin's form,
    or ``citoyen users create`` with ``staff`` None and ``via`` naming the command)."""
    from citoyen.services.casework import audit

    data: dict[str, Any] = {
        "email": user.email,
        "role": user.role,
        "stakeholder": stakeholder,
        "area": area,
    }
    if via:
        data["via"] = via
    audit(session, staff, "user_created", target_type="user", target_id=user.id, data=data)
