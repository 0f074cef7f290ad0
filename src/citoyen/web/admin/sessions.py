"""The life of a staff session, checked on every request.

A session (Flask's signed cookie) carries the user's session version when it was opened, when it
was opened and when it was last used. It ends, whatever the cookie says, when:

- the user's ``session_version`` moved on (sign-out anywhere, password reset, role, scope or
  active changed, two-factor changed): a copied cookie dies with the original;
- it is older than ``CITOYEN_SESSION_HOURS`` (absolute lifetime, 8 hours by default);
- it was not used for ``CITOYEN_SESSION_IDLE_MINUTES`` (idle timeout, 60 minutes by default).

The cookie itself also expires after the absolute lifetime (``PERMANENT_SESSION_LIFETIME``,
set from the same setting), and its signature's timestamp is checked against it.
"""

from __future__ import annotations

from datetime import datetime

from flask import session

from citoyen.config import Settings
from citoyen.models import User

VERSION = "_sv"
OPENED = "_opened"
SEEN = "_seen"


def opened(user: User, now: datetime) -> None:
    session[VERSION] = user.session_version
    session[OPENED] = session[SEEN] = now.timestamp()
    session.permanent = True


def closed() -> None:
    for key in (VERSION, OPENED, SEEN):
        session.pop(key, None)


def still_valid(user: User, settings: Settings, now: datetime) -> bool:
    """Whether this request's session of ``user`` may go on; marks it used when it may."""
    version, started, seen = session.get(VERSION), session.get(OPENED), session.get(SEEN)
    if version != user.session_version:
        return False
    if not isinstance(started, (int, float)) or not isinstance(seen, (int, float)):
        return False
    t = now.timestamp()
    if t - started > settings.session_hours * 3600:
        return False
    if t - seen > settings.session_idle_minutes * 60:
        return False
    session[SEEN] = t
    return True
