"""The moderators' admin (first slice: sign-in and the list of reports).

Every page needs a signed-in user; every form carries a CSRF token (Flask-WTF). Reporters appear
as aliases, never as numbers.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import LoginManager, login_required, login_user, logout_user
from flask_wtf.csrf import CSRFProtect
from sqlmodel import Session, select

from citoyen.models import Area, Contact, Report, User
from citoyen.services.privacy import alias_label
from citoyen.services.users import verify_password

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")
login_manager = LoginManager()
csrf = CSRFProtect()
PAGE = 50


class LoginUser:
    """The Flask-Login view of a :class:`User` row (detached from any session)."""

    def __init__(self, user: User) -> None:
        self.id = user.id
        self.email = user.email
        self.role = user.role
        self.is_active = user.active
        self.is_authenticated = True
        self.is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)


def _engine():  # type: ignore[no-untyped-def]
    return current_app.extensions["citoyen"].engine


@login_manager.user_loader
def load_user(user_id: str) -> LoginUser | None:
    if not user_id.isdigit():
        return None
    with Session(_engine()) as session:
        user = session.get(User, int(user_id))
        return LoginUser(user) if user and user.active else None


@bp.route("/login", methods=["GET", "POST"])
def login():  # type: ignore[no-untyped-def]
    if request.method == "POST":
        email = (request.form.get("email") or "").strip().lower()
        password = request.form.get("password") or ""
        with Session(_engine()) as session:
            user = session.exec(select(User).where(User.email == email)).first()
            if user and user.active and verify_password(user, password):
                user.last_login_at = datetime.now(UTC)
                session.add(user)
                session.commit()
                login_user(LoginUser(user))
                target = request.args.get("next") or ""
                if not target.startswith("/admin/") or target.startswith("//"):
                    target = url_for("admin.reports")
                return redirect(target)
        flash("Adresse ou mot de passe incorrect.")
        return render_template("admin/login.html"), 401
    return render_template("admin/login.html")


@bp.post("/logout")
@login_required
def logout():  # type: ignore[no-untyped-def]
    logout_user()
    return redirect(url_for("admin.login"))


@bp.get("/")
@login_required
def reports():  # type: ignore[no-untyped-def]
    before = request.args.get("before", type=int)
    with Session(_engine()) as session:
        stmt = (
            select(Report, Area, Contact)
            .join(Area, Area.id == Report.area_id, isouter=True)
            .join(Contact, Contact.id == Report.contact_id, isouter=True)
            .order_by(Report.id.desc())
            .limit(PAGE)
        )
        if before:
            stmt = stmt.where(Report.id < before)
        rows = [
            {
                "id": r.id,
                "reference": r.reference,
                "created_at": r.created_at,
                "category": r.category,
                "urgency": r.urgency,
                "status": r.status,
                "area": a.name if a else "—",
                "channel": r.channel,
                "reporter": alias_label(c.alias) if c else "—",
                "description": (r.description or "")[:140],
                "recording": bool(r.recording_url),
            }
            for r, a, c in session.exec(stmt).all()
        ]
    next_before = rows[-1]["id"] if len(rows) == PAGE else None
    return render_template("admin/reports.html", rows=rows, next_before=next_before)


def init_app(app: Flask) -> None:
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "admin.login"
    login_manager.login_message = "Connectez-vous pour continuer."

    @app.errorhandler(404)
    def not_found(_e):  # type: ignore[no-untyped-def]
        return "Not found", 404

    app.register_blueprint(bp)
    _ = abort  # kept for routes that refuse access
