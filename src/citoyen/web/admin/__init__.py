"""The moderators' and stakeholders' web admin (``/admin/``).

Every page needs a signed-in user (Flask-Login) and every state change a CSRF token
(Flask-WTF); who may see what is decided by :mod:`citoyen.services.access` only. Pages are
server-rendered HTML with one small stylesheet and no external asset, for slow connections; the
dashboard alone loads the vendored chart library. French by default, English available
(Flask-Babel; catalogues in ``web/translations``). Reporters appear as aliases, never as numbers.

Modules: ``auth`` (sign-in, throttling, language), ``sessions`` (when a session ends),
``twofactor`` (enrolment, the account page), ``queues`` (the queue list), ``reports``
(a report's page and every action on it), ``dashboard``, ``users``, ``monitor`` (outbox and audit
log), ``export``; for flow authors and translators ``flows`` (the flows page), ``trial`` (try a
flow) and ``texts`` (review texts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import wraps
from typing import Any

from flask import Blueprint, Flask, abort, current_app, g, render_template, request, session
from flask_babel import Babel
from flask_login import LoginManager, current_user, login_required
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import HTTPException

from citoyen.db import DbSession, write_session
from citoyen.models import User
from citoyen.services.access import Staff
from citoyen.services.users import user_by_id

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="../templates")
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
LANGUAGES: tuple[str, ...] = ("fr", "en")


class LoginUser:
    """The Flask-Login view of a :class:`User` row (detached from any session)."""

    def __init__(self, user: User) -> None:
        self.id = user.id
        self.email = user.email
        self.role = user.role
        self.is_active = user.active
        self.is_authenticated = True
        self.is_anonymous = False
        self.staff = Staff.of(user)

    def get_id(self) -> str:
        return str(self.id)


def runtime() -> Any:
    return current_app.extensions["citoyen"]


@contextmanager
def reading() -> Iterator[DbSession]:
    """A session to hand to the services a page reads through (it commits nothing)."""
    with runtime().session() as s:
        yield s


@contextmanager
def writing() -> Iterator[DbSession]:
    """One writing transaction (BEGIN IMMEDIATE on SQLite), committed on success."""
    with write_session(runtime().engine) as s:
        yield s


def staff() -> Staff:
    return current_user.staff  # type: ignore[no-any-return]


def roles_required(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Signed in, and one of ``roles`` (403 otherwise)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorate


@login_manager.user_loader
def load_user(user_id: str) -> LoginUser | None:
    """The signed-in user, unless their session ended (:mod:`citoyen.web.admin.sessions`)."""
    from citoyen.web.admin import sessions

    if not user_id.isdigit():
        return None
    with reading() as s:
        user = user_by_id(s, int(user_id))
    if user is None or not user.active:
        return None
    if not sessions.still_valid(user, runtime().settings, datetime.now(UTC)):
        return None
    return LoginUser(user)


@bp.after_request
def not_kept(response: Any) -> Any:
    """Admin pages and downloads show report content: no browser or proxy keeps them.
    The vendored scripts alone (versioned URLs, no report content) are cached."""
    if request.endpoint != "admin.asset":
        response.headers["Cache-Control"] = "no-store"
    return response


def select_locale() -> str:
    """The signed-in user's language, else the one chosen on the sign-in page, else French."""
    if getattr(g, "locale_override", None):
        return g.locale_override  # type: ignore[no-any-return]
    if current_user and current_user.is_authenticated and current_user.staff.language in LANGUAGES:
        return current_user.staff.language  # type: ignore[no-any-return]
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return chosen  # type: ignore[no-any-return]
    return "fr"


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "fr")
    app.config.setdefault("REMEMBER_COOKIE_HTTPONLY", True)
    app.config.setdefault("REMEMBER_COOKIE_SAMESITE", "Lax")
    app.config.setdefault("REMEMBER_COOKIE_SECURE", app.config.get("SESSION_COOKIE_SECURE", False))
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "admin.login"
    login_manager.session_protection = "strong"
    babel.init_app(app, locale_selector=select_locale)

    from flask_babel import lazy_gettext

    login_manager.login_message = lazy_gettext("Sign in to continue.")

    # The views attach themselves to ``bp`` when imported.
    from citoyen.web.admin import (  # noqa: F401
        assets,
        auth,
        dashboard,
        export,
        flows,
        monitor,
        prompts,
        queues,
        reports,
        texts,
        transparency,
        trial,
        twofactor,
        users,
    )

    app.register_blueprint(bp)

    from citoyen.web.admin import labels

    @app.errorhandler(400)
    @app.errorhandler(403)
    @app.errorhandler(404)
    def refused(error: HTTPException) -> tuple[str, int]:
        """Staff read why in their language; webhooks and scripts get the plain word."""
        code = error.code or 400
        if not request.path.startswith("/admin"):
            return {400: "Bad request", 403: "Forbidden", 404: "Not found"}[code], code
        title, message = labels.ERROR_PAGES[code]
        # A page's own reason (abort(400, _("Invalid filter value."))) beats the generic one.
        if error.description and error.description != type(error).description:
            message = error.description
        return render_template("admin/error.html", title=title, message=message), code

    @app.context_processor
    def admin_globals() -> dict[str, Any]:
        return {"LANGUAGES": LANGUAGES, "asset_url": assets.asset_url, **labels.helpers()}
