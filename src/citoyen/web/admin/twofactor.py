"""Two-factor sign-in pages: enrolment (QR code and recovery codes), the account page, and an
administrator's reset for a lost phone.

Enrolment is reached two ways: at sign-in, by someone whose role requires a second factor and
who has none yet (the session then holds only who is signing in), or from the account page by
anyone signed in. Either way the page shows the secret as a QR code (segno, inline SVG: nothing
loaded from elsewhere, allowed by the Content-Security-Policy) and as text, and is never cached;
the first code typed turns two-factor sign-in on and shows the recovery codes once. Audit events:
``two_factor_enrolled``, ``two_factor_used`` / ``two_factor_failed`` (at sign-in, with the
method: app code or recovery code), ``two_factor_off``, ``two_factor_reset``.
"""

from __future__ import annotations

from typing import Any

import segno
from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from citoyen.models import User
from citoyen.services import twofactor
from citoyen.services.access import Staff
from citoyen.services.casework import audit
from citoyen.web.admin import bp, roles_required, runtime, sessions, staff, writing
from citoyen.web.admin.auth import now_utc, open_session, pending_sign_in, pending_user


def _not_kept(html: str, status: int = 200) -> Any:
    response = make_response(html, status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _enrolling(s: Any) -> tuple[User | None, dict[str, Any] | None]:
    """Who is enrolling: the signed-in user, or the one half-way through signing in."""
    if current_user.is_authenticated:
        return s.get(User, current_user.id), None
    pending = pending_sign_in()
    if pending is None or pending.get("stage") != "enrol":
        return None, None
    return pending_user(s, pending), pending


def _required(user: User) -> bool:
    return twofactor.required_for(user.role, runtime().settings.reveal_role_list)


@bp.route("/two-factor/enrol", methods=["GET", "POST"])
def two_factor_enrol():  # type: ignore[no-untyped-def]
    now = now_utc()
    with writing() as s:
        user, pending = _enrolling(s)
        if user is None:
            return redirect(url_for("admin.login"))
        if twofactor.is_enabled(user):
            return redirect(url_for("admin.account"))
        secret = twofactor.pending_secret(s, user, runtime().vault)
        email = user.email
        if request.method == "POST":
            try:
                codes = twofactor.confirm_enrolment(
                    s, user, runtime().vault, request.form.get("code") or "", now
                )
            except twofactor.TwoFactorError:
                codes = None
            if codes is not None:
                audit(s, Staff.of(user), "two_factor_enrolled", now=now)
                if pending is not None:
                    user.last_login_at = now
                target = (pending or {}).get("next") or url_for("admin.queues")
                # The version moved on (every other session ended): this one reopens with it.
                response = open_session(user, target, now)
                html = render_template("admin/two_factor_codes.html", codes=codes, target=target)
                page = _not_kept(html)
                for cookie in response.headers.getlist("Set-Cookie"):
                    page.headers.add("Set-Cookie", cookie)
                return page
    wrong = request.method == "POST"
    if wrong:
        flash(_("Wrong code: type the code your app shows now."))
    qr = segno.make(twofactor.provisioning_uri(secret, email), error="m")
    html = render_template(
        "admin/two_factor_enrol.html",
        qr=qr.svg_inline(scale=4, light="#fff", border=4),
        secret=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        required=_required(user),
        signing_in=pending is not None,
    )
    return _not_kept(html, 400 if wrong else 200)


@bp.get("/account")
@login_required
def account():  # type: ignore[no-untyped-def]
    with writing() as s:
        user = s.get(User, current_user.id)
        if user is None:
            abort(404)
        return render_template(
            "admin/account.html",
            enabled=twofactor.is_enabled(user),
            required=_required(user),
            codes_left=len(user.recovery_codes or []),
        )


@bp.post("/account/two-factor/off")
@login_required
def two_factor_off():  # type: ignore[no-untyped-def]
    """Turn the second factor off, where the role allows it, with a current code."""
    now = now_utc()
    with writing() as s:
        user = s.get(User, current_user.id)
        if user is None:
            abort(404)
        if _required(user):
            flash(_("Your role requires two-factor sign-in."), "error")
            return redirect(url_for("admin.account")), 303
        if twofactor.check_code(s, user, runtime().vault, request.form.get("code") or "", now):
            twofactor.turn_off(s, user)
            audit(s, Staff.of(user), "two_factor_off", now=now)
            sessions.opened(user, now)  # this session goes on; the others ended
            flash(_("Two-factor sign-in is off."))
            return redirect(url_for("admin.account"))
    flash(_("Wrong code."), "error")
    return redirect(url_for("admin.account")), 303


@bp.post("/users/<int:user_id>/two-factor/reset")
@roles_required("admin")
def user_two_factor_reset(user_id: int):  # type: ignore[no-untyped-def]
    """For a lost phone: the user's second factor is removed and their sessions end; if their
    role requires one they enrol again at their next sign-in."""
    with writing() as s:
        user = s.get(User, user_id)
        if user is None:
            abort(404)
        twofactor.turn_off(s, user)
        audit(
            s,
            staff(),
            "two_factor_reset",
            target_type="user",
            target_id=user.id,
            data={"email": user.email},
        )
        email = user.email
    if user_id == current_user.id:
        return redirect(url_for("admin.login"))
    flash(_("Two-factor sign-in of %(email)s was reset.", email=email))
    return redirect(url_for("admin.user_edit", user_id=user_id))
