"""Sign-in (throttled), sign-out, and the admin's language."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from sqlmodel import select

from citoyen.models import User
from citoyen.services.casework import audit
from citoyen.services.users import (
    ThrottleKeys,
    clear_failures,
    record_failure,
    throttled,
    verify_password,
)
from citoyen.web.admin import LANGUAGES, LoginUser, bp, runtime, writing


def _safe_next(target: str | None) -> str:
    """Only a path inside the admin: never an open redirect to another site."""
    target = target or ""
    if not target.startswith("/admin/") or target.startswith("//") or "\\" in target:
        return url_for("admin.queues")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():  # type: ignore[no-untyped-def]
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("admin.queues"))
    if request.method == "POST":
        email = (request.form.get("email") or "").strip().lower()
        password = request.form.get("password") or ""
        now = datetime.now(UTC)
        keys = ThrottleKeys.of(
            runtime().settings.effective_secret_key(), email, request.remote_addr
        )
        with writing() as s:
            if throttled(s, keys, now):
                flash(_("Too many failed attempts. Wait 15 minutes and try again."))
                return render_template("admin/login.html"), 429
            user = s.exec(select(User).where(User.email == email)).first()
            if user and user.active and verify_password(user, password):
                user.last_login_at = now
                clear_failures(s, keys)
                login_user(LoginUser(user))
                session.permanent = True
                return redirect(_safe_next(request.args.get("next")))
            record_failure(s, keys, now)
            audit(s, None, "login_failed", data={"known_user": user is not None}, now=now)
        flash(_("Wrong email or password."))
        return render_template("admin/login.html"), 401
    return render_template("admin/login.html")


@bp.post("/logout")
@login_required
def logout():  # type: ignore[no-untyped-def]
    logout_user()
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
