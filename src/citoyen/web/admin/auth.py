"""Sign-in (throttled, with a second factor), sign-out, and the admin's language.

Signing in is one or two steps: the password, then, when the account has two-factor sign-in
on, a one-time code (or a recovery code). Administrators and the roles that may reveal numbers
without a second factor are sent to enrol before any page opens. Between the steps the session
holds only who is signing in (:data:`PENDING`), for :data:`PENDING_LIFETIME`.

A session records the user's session version and when it was opened and last used
(:mod:`citoyen.web.admin.sessions` checks them on every request). A successful sign-in also
leaves a device cookie that exempts this browser from the account's progressive delay
(:mod:`citoyen.services.signin`).
"""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from itsdangerous import BadSignature, URLSafeSerializer

from citoyen.models import User
from citoyen.services import signin, twofactor
from citoyen.services.access import Staff
from citoyen.services.casework import audit
from citoyen.services.users import end_sessions, user_by_email, verify_password
from citoyen.web.admin import LANGUAGES, LoginUser, bp, runtime, sessions, writing

PENDING = "_signing_in"
PENDING_LIFETIME = timedelta(minutes=5)
DEVICE_COOKIE = "citoyen_device"
DEVICE_LIFETIME = timedelta(days=365)


def _safe_next(target: str | None) -> str:
    """Only a path inside the admin: never an open redirect to another site, never a header
    break (a CR or LF in ``next`` made the redirect itself fail: a 500)."""
    target = target or ""
    parts = urlsplit(target) if target.isprintable() and " " not in target else None
    if (
        parts is None
        or parts.scheme
        or parts.netloc
        or not target.startswith("/admin/")
        or target.startswith("//")
        or "\\" in target
    ):
        return url_for("admin.queues")
    return target


def now_utc() -> datetime:
    return datetime.now(UTC)


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key or "", salt="citoyen-device")


def _device() -> dict[str, str] | None:
    """This browser's device cookie, when it is one we signed."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw:
        return None
    try:
        value = _serializer().loads(raw)
    except BadSignature:
        return None
    if not isinstance(value, dict) or not all(isinstance(value.get(k), str) for k in "en"):
        return None
    return value


def _keys(email: str) -> tuple[signin.ThrottleKeys, bool]:
    """The throttle keys of this attempt, and whether it comes from a device the account
    signed in from before."""
    device = _device()
    keys = signin.ThrottleKeys.of(
        runtime().settings.effective_secret_key(),
        email,
        request.remote_addr,
        device["n"] if device else None,
    )
    return keys, bool(device and device["e"] == keys.email)


def _too_many(wait: timedelta) -> Any:
    seconds = max(1, math.ceil(wait.total_seconds()))
    flash(_("Too many failed attempts. Wait %(seconds)s seconds and try again.", seconds=seconds))
    response = make_response(render_template("admin/login.html"), 429)
    response.headers["Retry-After"] = str(seconds)
    return response


def open_session(user: User, target: str, now: datetime) -> Any:
    """Open the session of ``user`` and remember this device for their account."""
    session.pop(PENDING, None)
    login_user(LoginUser(user))
    sessions.opened(user, now)
    response = redirect(target)
    keys, trusted = _keys(user.email)
    device = _device()
    nonce = device["n"] if device and trusted else secrets.token_urlsafe(16)
    response.set_cookie(
        DEVICE_COOKIE,
        _serializer().dumps({"e": keys.email, "n": nonce}),
        max_age=int(DEVICE_LIFETIME.total_seconds()),
        path="/admin/",
        httponly=True,
        secure=current_app.config.get("SESSION_COOKIE_SECURE", False),
        samesite="Lax",
    )
    return response


def pending_sign_in() -> dict[str, Any] | None:
    """Who is between the password and the second step, if it is still recent."""
    pending = session.get(PENDING)
    if not isinstance(pending, dict):
        return None
    started = pending.get("at")
    if not isinstance(started, (int, float)) or now_utc().timestamp() - started > (
        PENDING_LIFETIME.total_seconds()
    ):
        session.pop(PENDING, None)
        return None
    return pending


def pending_user(s: Any, pending: dict[str, Any]) -> User | None:
    user = s.get(User, pending.get("uid"))
    if user is None or not user.active or user.session_version != pending.get("sv"):
        return None
    return user


@bp.route("/login", methods=["GET", "POST"])
def login():  # type: ignore[no-untyped-def]
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("admin.queues"))
    if request.method == "POST":
        email = (request.form.get("email") or "").strip().lower()
        password = request.form.get("password") or ""
        now = now_utc()
        keys, trusted = _keys(email)
        target = _safe_next(request.args.get("next"))
        with writing() as s:
            wait = signin.wait_before_attempt(s, keys, now, trusted_device=trusted)
            if wait > timedelta(0):
                return _too_many(wait)
            user = user_by_email(s, email)
            if user and user.active and verify_password(user, password):
                signin.clear_failures(s, keys)
                if twofactor.is_enabled(user) or twofactor.required_for(
                    user.role, runtime().settings.reveal_role_list
                ):
                    stage = "code" if twofactor.is_enabled(user) else "enrol"
                    session[PENDING] = {
                        "uid": user.id,
                        "sv": user.session_version,
                        "at": now.timestamp(),
                        "next": target,
                        "stage": stage,
                    }
                    return redirect(
                        url_for("admin.login_code" if stage == "code" else "admin.two_factor_enrol")
                    )
                user.last_login_at = now
                return open_session(user, target, now)
            signin.record_failure(s, keys, now)
            audit(s, None, "login_failed", data={"known_user": user is not None}, now=now)
        flash(_("Wrong email or password."))
        return render_template("admin/login.html"), 401
    return render_template("admin/login.html")


@bp.route("/login/code", methods=["GET", "POST"])
def login_code():  # type: ignore[no-untyped-def]
    """The second step: a code from the authenticator app, or a recovery code."""
    pending = pending_sign_in()
    if pending is None or pending.get("stage") != "code":
        return redirect(url_for("admin.login"))
    if request.method == "GET":
        return render_template("admin/login_code.html")
    now = now_utc()
    code = request.form.get("code") or ""
    key = signin.code_key(runtime().settings.effective_secret_key(), pending["uid"])
    with writing() as s:
        user = pending_user(s, pending)
        if user is None:
            session.pop(PENDING, None)
            return redirect(url_for("admin.login"))
        if not signin.code_attempts_left(s, key, now):
            flash(_("Too many wrong codes. Wait 15 minutes and try again."))
            return render_template("admin/login_code.html"), 429
        method = twofactor.check_code(s, user, runtime().vault, code, now)
        if method is not None:
            signin.clear_code_failures(s, key)
            user.last_login_at = now
            audit(s, Staff.of(user), "two_factor_used", data={"method": method}, now=now)
            return open_session(user, pending.get("next") or url_for("admin.queues"), now)
        signin.record_code_failure(s, key, now)
        audit(s, Staff.of(user), "two_factor_failed", now=now)
    flash(_("Wrong code."))
    return render_template("admin/login_code.html"), 401


@bp.post("/logout")
@login_required
def logout():  # type: ignore[no-untyped-def]
    """Sign out everywhere: a copy of this session's cookie stops working too."""
    with writing() as s:
        user = s.get(User, current_user.id)
        if user is not None:
            end_sessions(user)
    logout_user()
    sessions.closed()
    return redirect(url_for("admin.login"))


@bp.post("/language")
def language():  # type: ignore[no-untyped-def]
    """Switch the admin's language (remembered on the account when signed in)."""
    lang = request.form.get("lang")
    if lang not in LANGUAGES:
        return _("Unknown language"), 400
    session["lang"] = lang
    if current_user.is_authenticated:
        with writing() as s:
            user = s.get(User, current_user.id)
            if user is not None:
                user.language = lang
    return redirect(_safe_next(request.form.get("next")))
