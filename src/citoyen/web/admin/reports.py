"""A report's page and every action on it.

Each route asks :func:`citoyen.services.access.require_report` first: a report outside the
user's queues answers 404, exactly like one that does not exist, so ids cannot be probed. Actions
are POST forms with a CSRF token; each one runs in one transaction and comes back to the page
with a message. A refused action (not allowed now, missing reason...) says why and changes
nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import (
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_login import login_required

from citoyen.db import DbSession
from citoyen.engine.refcodes import parse_reference
from citoyen.models import Report
from citoyen.routing import CLOSE_REASONS, texts
from citoyen.services import casefile, casework
from citoyen.services.access import AccessDenied, acting_stakeholder, may_reveal, require_report
from citoyen.services.attachments import fetched_attachment
from citoyen.services.casework import CaseworkError
from citoyen.services.media import media_file
from citoyen.services.queues import StatusError, acknowledge, change_status, merge_reports
from citoyen.services.queues.config import router_for
from citoyen.services.reports import report_by_reference, report_id_of_attachment
from citoyen.web.admin import bp, reading, runtime, staff, writing
from citoyen.web.admin.labels import refusal_words


def _report_or_404(s: DbSession, report_id: int) -> Report:
    try:
        return require_report(s, staff(), report_id)
    except AccessDenied:
        abort(404)


def _page(report_id: int, revealed: str | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    me = staff()
    with reading() as s:
        report = _report_or_404(s, report_id)
        case = casefile.build(s, me, report, now=datetime.now(UTC))
        acting = acting_stakeholder(s, me, report)
    response = make_response(
        render_template(
            "admin/report.html",
            case=case,
            report=case.report,
            me=me,
            acting=acting,
            close_reasons=[r for r in CLOSE_REASONS if r not in ("duplicate",)],
            may_reveal=may_reveal(me, runtime().settings.reveal_role_list),
            revealed=revealed,
        ),
        status,
    )
    if revealed:
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/reports/<int:report_id>")
@login_required
def report(report_id: int):  # type: ignore[no-untyped-def]
    return _page(report_id)


@bp.get("/find")
@login_required
def find():  # type: ignore[no-untyped-def]
    """Open a report by the reference a citizen gives on the phone (482-1937 or 4821937)."""
    raw = "".join(ch for ch in request.args.get("reference", "") if ch.isdigit())
    reference = f"{raw[:3]}-{raw[3:]}" if len(raw) == 7 else None
    if reference:
        with reading() as s:
            found = report_by_reference(s, reference)
            if found is not None:
                try:
                    require_report(s, staff(), found.id)  # type: ignore[arg-type]
                    return redirect(url_for("admin.report", report_id=found.id))
                except AccessDenied:
                    pass
    flash(_("No report with this reference in your queues."))
    return redirect(url_for("admin.queues"))


def _act(report_id: int, action: Callable[[DbSession, Report], Any], done: str):  # type: ignore[no-untyped-def]
    """Run one action in one transaction; a refusal is shown and changes nothing."""
    try:
        with writing() as s:
            report = _report_or_404(s, report_id)
            action(s, report)
        flash(done)
    except (CaseworkError, StatusError) as exc:
        flash(_("Not done: %(reason)s", reason=refusal_words(exc)), "error")
        return _page(report_id, status=400)
    except AccessDenied:
        abort(403)
    return redirect(url_for("admin.report", report_id=report_id))


def _form(name: str) -> str:
    return (request.form.get(name) or "").strip()


@bp.post("/reports/<int:report_id>/acknowledge")
@login_required
def acknowledge_report(report_id: int):  # type: ignore[no-untyped-def]
    me = staff()

    def run(s: DbSession, report: Report) -> None:
        acknowledge(
            s,
            report,
            user_id=me.id,
            stakeholder_id=acting_stakeholder(s, me, report),
            note=_form("note") or None,
        )

    return _act(report_id, run, _("Taken in hand."))


@bp.post("/reports/<int:report_id>/status")
@login_required
def status(report_id: int):  # type: ignore[no-untyped-def]
    me = staff()
    to_status = _form("status")
    reason = _form("reason") or None
    template_status, _dot, template = _form("template").partition(".")

    def run(s: DbSession, report: Report) -> None:
        catalog = router_for(s).catalog
        known = template and any(
            catalog.has(texts.template_key(to_status, template), lang) for lang in catalog.languages
        )
        if template and not known:
            raise CaseworkError(_("unknown message template"))
        if template and template_status != to_status:
            raise CaseworkError(
                _("this message is for another status: choose one for the new status")
            )
        if reason == "duplicate":
            raise CaseworkError(_("use “Merge into another report” for duplicates"))
        change_status(
            s,
            report,
            to_status,
            user_id=me.id,
            reason=reason,
            note=_form("note") or None,
            stakeholder_id=acting_stakeholder(s, me, report),
            template=template or None,
        )

    return _act(report_id, run, _("Status changed; the reporter is told."))


@bp.post("/reports/<int:report_id>/decline")
@login_required
def decline(report_id: int):  # type: ignore[no-untyped-def]
    """ "Not responsible": the user's stakeholder steps out and the report is rerouted."""
    me = staff()

    def run(s: DbSession, report: Report) -> None:
        acting = acting_stakeholder(s, me, report)
        if acting is None:
            raise CaseworkError(_("only a stakeholder holding this report can decline it"))
        change_status(
            s,
            report,
            "closed",
            user_id=me.id,
            reason="not_responsible",
            note=_form("note") or None,
            stakeholder_id=acting,
        )

    return _act(report_id, run, _("Declined: the report was rerouted."))


@bp.post("/reports/<int:report_id>/assign")
@login_required
def assign(report_id: int):  # type: ignore[no-untyped-def]
    me = staff()
    entry = request.form.get("entry", type=int)
    user = request.form.get("user", type=int)
    if entry is None:
        abort(400)

    def run(s: DbSession, report: Report) -> None:
        casework.assign(s, me, report, entry, user)

    return _act(report_id, run, _("Assignment saved."))


@bp.post("/reports/<int:report_id>/forward")
@login_required
def forward(report_id: int):  # type: ignore[no-untyped-def]
    me = staff()

    def run(s: DbSession, report: Report) -> None:
        casework.forward(s, me, report, _form("stakeholder"), _form("note") or None)

    return _act(report_id, run, _("Forwarded."))


@bp.post("/reports/<int:report_id>/note")
@login_required
def note(report_id: int):  # type: ignore[no-untyped-def]
    me = staff()
    return _act(
        report_id,
        lambda s, report: casework.add_note(s, me, report, _form("note")),
        _("Note added."),
    )


@bp.post("/reports/<int:report_id>/reply")
@login_required
def reply(report_id: int):  # type: ignore[no-untyped-def]
    me = staff()
    return _act(
        report_id,
        lambda s, report: casework.reply_to_citizen(s, me, report, _form("message")),
        _("Reply queued for the reporter."),
    )


@bp.post("/reports/<int:report_id>/merge")
@login_required
def merge(report_id: int):  # type: ignore[no-untyped-def]
    me = staff()
    reference = parse_reference(_form("into"))

    def run(s: DbSession, report: Report) -> None:
        target = report_by_reference(s, reference) if reference else None
        if target is None or not _in_scope(s, target):
            raise CaseworkError(_("no report with this reference in your queues"))
        merge_reports(s, report, target, user_id=me.id, note=_form("note") or None)

    return _act(report_id, run, _("Merged."))


def _in_scope(s: DbSession, report: Report) -> bool:
    try:
        require_report(s, staff(), report.id)  # type: ignore[arg-type]
        return True
    except AccessDenied:
        return False


@bp.post("/reports/<int:report_id>/spam")
@login_required
def spam(report_id: int):  # type: ignore[no-untyped-def]
    me = staff()
    return _act(
        report_id,
        lambda s, report: casework.mark_spam(s, me, report, _form("note") or None),
        _("Closed as spam."),
    )


@bp.post("/reports/<int:report_id>/block")
@login_required
def block(report_id: int):  # type: ignore[no-untyped-def]
    me = staff()
    return _act(
        report_id,
        lambda s, report: casework.block_sender(s, me, report, _form("reason")),
        _("Sender blocked: their messages are kept but no longer answered."),
    )


@bp.post("/reports/<int:report_id>/reveal")
@login_required
def reveal(report_id: int):  # type: ignore[no-untyped-def]
    """Show a non-anonymous reporter's number once, in this response only, audited."""
    me = staff()
    rt = runtime()
    try:
        with writing() as s:
            report = _report_or_404(s, report_id)
            address = casework.reveal_identity(
                s,
                rt.vault,
                me,
                report,
                _form("reason"),
                reveal_roles=rt.settings.reveal_role_list,
            )
    except CaseworkError as exc:
        flash(_("Not done: %(reason)s", reason=refusal_words(exc)), "error")
        return _page(report_id, status=400)
    except AccessDenied:
        abort(403)
    return _page(report_id, revealed=address.removeprefix("tel:"))


@bp.get("/attachments/<int:attachment_id>")
@login_required
def attachment(attachment_id: int):  # type: ignore[no-untyped-def]
    """A recording or photo the citizen sent, for players and image tags of the report page."""
    rt = runtime()
    with reading() as s:
        row = fetched_attachment(s, attachment_id)
        if row is None:
            abort(404)
        report_id = report_id_of_attachment(s, row)
        if report_id is None:
            abort(404)
        _report_or_404(s, report_id)
        path = media_file(rt.settings.instance_dir, row)
    if path is None or not path.is_file():
        abort(404)
    response = send_file(
        path, mimetype=row.content_type or "application/octet-stream", conditional=True
    )
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response
