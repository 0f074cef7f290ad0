"""User management (administrators only): list, create, edit, reset a password.

Passwords are never chosen or typed by the administrator: the service draws a random one, shown
once on the answer page (``Cache-Control: no-store``, never put in a URL, a flash message or the
session) for the administrator to hand over. Every change leaves an audit event
(``user_created``, ``user_updated``, ``password_reset``) naming who did it; the audit data holds
the new role and scope, never a password.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _

from citoyen.db import DbSession
from citoyen.models import Area, User
from citoyen.services import casework
from citoyen.services.access import ROLES
from citoyen.services.areas.labels import areas_of_levels
from citoyen.services.queues.stakeholders import stakeholders_by_name
from citoyen.services.users import (
    UserError,
    audit_creation,
    create_user,
    generate_password,
    scope_codes,
    set_password,
    update_user,
    user_by_id,
    users_with_scope,
)
from citoyen.web.admin import bp, reading, roles_required, staff, writing
from citoyen.web.admin.labels import refusal_words

# Areas a coordinator may be given: regions (and the Bamako district) and cercles.
COORDINATION_LEVELS = ("region", "district", "cercle")


def _choices(s: DbSession) -> dict[str, Any]:
    """The stakeholder and area menus of the form."""
    stakeholders = stakeholders_by_name(s)
    areas = areas_of_levels(s, COORDINATION_LEVELS)
    tops = sorted((a for a in areas if a.level != "cercle"), key=lambda a: a.name)
    below: dict[int | None, list[Area]] = {}
    for area in areas:
        if area.level == "cercle":
            below.setdefault(area.parent_id, []).append(area)
    groups = [(top, sorted(below.get(top.id, []), key=lambda a: a.name)) for top in tops]
    return {"roles": ROLES, "stakeholders": stakeholders, "area_groups": groups}


def _user_or_404(s: DbSession, user_id: int) -> User:
    user = user_by_id(s, user_id)
    if user is None:
        abort(404)
    return user


def _shown_once(html: str) -> Any:
    """A page holding a new password: not to be kept by the browser or any proxy."""
    response = make_response(html)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/users")
@roles_required("admin")
def users():  # type: ignore[no-untyped-def]
    with reading() as s:
        rows = users_with_scope(s)
    return render_template("admin/users.html", rows=rows)


@bp.route("/users/new", methods=["GET", "POST"])
@roles_required("admin")
def user_new():  # type: ignore[no-untyped-def]
    form = request.form
    values = {
        "email": (form.get("email") or "").strip(),
        "role": form.get("role") or "agent",
        "stakeholder": form.get("stakeholder") or None,
        "area": form.get("area") or None,
    }
    if request.method == "POST":
        password = generate_password()
        try:
            with writing() as s:
                user = create_user(
                    s,
                    values["email"],
                    values["role"],
                    password,
                    stakeholder_code=values["stakeholder"],
                    area_code=values["area"],
                )
                audit_creation(
                    s, staff(), user, stakeholder=values["stakeholder"], area=values["area"]
                )
        except UserError as exc:
            flash(_("The account was not created: %(why)s", why=refusal_words(exc)), "error")
        else:
            with reading() as s:
                html = render_template(
                    "admin/user_form.html",
                    user=user,
                    values=values,
                    password=password,
                    **_choices(s),
                )
            return _shown_once(html)
    with reading() as s:
        status = 400 if request.method == "POST" else 200
        return render_template(
            "admin/user_form.html", user=None, values=values, password=None, **_choices(s)
        ), status


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@roles_required("admin")
def user_edit(user_id: int):  # type: ignore[no-untyped-def]
    me = staff()
    with reading() as s:
        user = _user_or_404(s, user_id)
        values: dict[str, Any] = {
            "email": user.email,
            "role": user.role,
            **scope_codes(s, user),
            "active": user.active,
        }
    if request.method == "POST":
        form = request.form
        new = {
            "role": form.get("role") or "",
            "stakeholder": form.get("stakeholder") or None,
            "area": form.get("area") or None,
            "active": form.get("active") == "1",
        }
        try:
            with writing() as s:
                target = _user_or_404(s, user_id)
                update_user(
                    s,
                    target,
                    role=new["role"],
                    stakeholder_code=new["stakeholder"],
                    area_code=new["area"],
                    active=new["active"],
                    acting_user_id=me.id,
                )
                before = {k: values[k] for k in new}
                casework.audit(
                    s,
                    me,
                    "user_updated",
                    target_type="user",
                    target_id=target.id,
                    data={"email": target.email, "before": before, "after": new},
                )
        except UserError as exc:
            flash(_("Nothing was changed: %(why)s", why=refusal_words(exc)), "error")
            values.update(new)
            with reading() as s:
                return render_template(
                    "admin/user_form.html", user=user, values=values, password=None, **_choices(s)
                ), 400
        flash(_("Account %(email)s updated.", email=user.email))
        return redirect(url_for("admin.users"))
    with reading() as s:
        return render_template(
            "admin/user_form.html", user=user, values=values, password=None, **_choices(s)
        )


@bp.post("/users/<int:user_id>/password")
@roles_required("admin")
def user_password(user_id: int):  # type: ignore[no-untyped-def]
    """A new random password, shown once; the old one stops working at once."""
    password = generate_password()
    now = datetime.now(UTC)
    with writing() as s:
        user = _user_or_404(s, user_id)
        set_password(user, password)
        s.add(user)
        casework.audit(
            s,
            staff(),
            "password_reset",
            target_type="user",
            target_id=user.id,
            data={"email": user.email},
            now=now,
        )
        values = {
            "email": user.email,
            "role": user.role,
            **scope_codes(s, user),
            "active": user.active,
        }
    with reading() as s:
        html = render_template(
            "admin/user_form.html", user=user, values=values, password=password, **_choices(s)
        )
    return _shown_once(html)
