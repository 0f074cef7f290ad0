"""The outbox monitor and the audit log.

The outbox monitor (administrators and coordinators) shows whether messages leave: counts per
status and channel, the latest rows, and a "retry now" for failed ones. Recipients appear as the
contact's alias, or "on-call" for a stakeholder's duty address; never a number. Coordinators see
the messages about reports of their queues only (the ``report`` reference every notification,
reply and alert carries in its payload); administrators see every row.

Below the rows: how long the queued messages will take to send per channel, at the configured
rates, phones and quiet hours, with the survey messages waiting for their hours to open
(:func:`citoyen.services.sendtime.estimate`, the figures ``citoyen survey run --dry-run``
prints), and, for administrators, the call-backs citizens asked
for: counts per state, today's calls against the budget, the latest requests by alias (never a
number) with the report their call made.

The audit log (administrators) lists sensitive actions: identity reveals, account changes,
exports, retries. Both lists page by id (keyset), newest first, so a page costs the same on a
table of millions of rows.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from citoyen.engine.textnorm import whole_number
from citoyen.services import callbacks, casework, monitor, sendtime
from citoyen.services.gateway_phones import phone_states
from citoyen.services.outbox import NoSuchMessage, RetryError, retry
from citoyen.services.privacy import alias_label
from citoyen.web.admin import bp, reading, roles_required, staff, writing

PAGE = 50
OUTBOX_STATUSES: tuple[str, ...] = ("pending", "sending", "sent", "failed", "skipped")
# Words for the codes these pages show; an unknown code is shown as it is.
WORDS = {
    "pending": _l("waiting"),
    "sending": _l("sending"),
    "sent": _l("sent"),
    "failed": _l("failed"),
    "skipped": _l("skipped"),
    "reply": _l("reply"),
    "notification": _l("notification"),
    "alert": _l("alert"),
    "survey": _l("survey"),
    "reveal_identity": _l("number revealed"),
    "block_sender": _l("sender blocked"),
    "login_failed": _l("failed sign-in"),
    "user_created": _l("account created"),
    "user_updated": _l("account changed"),
    "password_reset": _l("password reset"),
    "export": _l("export"),
    "outbox_retry": _l("message retried"),
    "two_factor_enrolled": _l("two-factor sign-in turned on"),
    "two_factor_used": _l("signed in with a second factor"),
    "two_factor_failed": _l("wrong second-factor code"),
    "two_factor_off": _l("two-factor sign-in turned off"),
    "two_factor_reset": _l("two-factor sign-in reset"),
    "up": _l("answering"),
    "down": _l("not answering"),
    "unknown": _l("not used yet"),
    "requested": _l("requested"),
    "placed": _l("called"),
    "answered": _l("answered"),
    "cancelled": _l("cancelled"),
    "busy": _l("busy"),
    "no-answer": _l("no answer"),
    "machine": _l("answering machine or fax"),
    "expired": _l("not called within a day"),
    "stopped": _l("citizen stopped"),
    "blocked": _l("sender blocked"),
    "lost": _l("no news of the call"),
    "error": _l("refused by Twilio"),
    "no_provider": _l("Twilio not configured"),
}
CALLBACK_STATUSES = callbacks.STATUSES


@bp.app_template_global()
def duration_label(seconds: float | None) -> str:
    """A send time as staff read it: "2 d 4 h", "3 h 20 min", "12 min"."""
    if seconds is None:
        return _("no rate limit set")
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return _("%(days)d d %(hours)d h", days=days, hours=hours)
    if hours:
        return _("%(hours)d h %(minutes)d min", hours=hours, minutes=minutes)
    if minutes:
        return _("%(minutes)d min", minutes=minutes)
    return _("less than a minute")


@bp.app_template_global()
def monitor_label(code: str | None) -> str:
    """The staff's word for an outbox status or kind, or an audit action."""
    return "—" if code is None else str(WORDS.get(code, code))


def _after(value: str | None) -> int | None:
    """The keyset cursor: the last id of the previous page (400 when not a number)."""
    if not value:
        return None
    after = whole_number(value)
    if after is None:
        abort(400, _("Invalid filter value."))
    return after


@bp.get("/outbox")
@roles_required("admin", "coordinator")
def outbox():  # type: ignore[no-untyped-def]
    status = request.args.get("status") or None
    if status is not None and status not in OUTBOX_STATUSES:
        abort(400, _("Invalid filter value."))
    after = _after(request.args.get("after"))
    with reading() as s:
        condition = monitor.outbox_scope(s, staff())
        counts = monitor.outbox_counts(s, condition)
        found = monitor.outbox_page(s, condition, status, after, PAGE + 1)
        settings = current_app.extensions["citoyen"].settings
        phones = (
            phone_states(s, settings.sms_gateway_phones)
            if settings.sms_provider == "android-gateway"
            else []
        )
        now = datetime.now(UTC)
        queues = sendtime.estimate(s, settings, now)
        called = callbacks.summary(s, settings, now) if staff().role == "admin" else None
    rows = [
        {
            "row": row,
            "recipient": alias_label(alias) if alias is not None else _("on-call"),
        }
        for row, alias in found[:PAGE]
    ]
    channels = sorted({channel for _status, channel in counts})
    totals: dict[str, int] = {}
    for (row_status, _channel), n in counts.items():
        totals[row_status] = totals.get(row_status, 0) + n
    return render_template(
        "admin/outbox.html",
        rows=rows,
        counts=counts,
        totals=totals,
        channels=channels,
        statuses=OUTBOX_STATUSES,
        status=status,
        next_after=rows[-1]["row"].id if len(found) > PAGE else None,
        phones=phones,
        queues=queues,
        now=now,
        callbacks=called,
        callback_statuses=CALLBACK_STATUSES,
    )


@bp.post("/outbox/<int:outbox_id>/retry")
@roles_required("admin", "coordinator")
def outbox_retry(outbox_id: int):  # type: ignore[no-untyped-def]
    me = staff()
    now = datetime.now(UTC)
    with writing() as s:
        if not monitor.outbox_visible(s, me, outbox_id):
            abort(404)
        try:
            retried = retry(s, outbox_id, now)
        except NoSuchMessage:
            abort(404)
        except RetryError:
            flash(_("Only a failed message can be retried."), "error")
            return redirect(url_for("admin.outbox", status="failed"))
        casework.audit(
            s,
            me,
            "outbox_retry",
            target_type="outbox",
            target_id=retried.row.id,
            data={"attempts": retried.attempts_before, "error": (retried.error_before or "")[:200]},
            now=now,
        )
    flash(_("Message %(id)s will be sent again shortly.", id=outbox_id))
    return redirect(url_for("admin.outbox", status="failed"))


@bp.get("/audit")
@roles_required("admin")
def audit_log():  # type: ignore[no-untyped-def]
    action = request.args.get("action") or None
    after = _after(request.args.get("after"))
    with reading() as s:
        actions = monitor.audit_actions(s)
        found = monitor.audit_page(s, action, after, PAGE + 1)
    rows = found[:PAGE]
    return render_template(
        "admin/audit.html",
        rows=rows,
        actions=actions,
        action=action,
        next_after=rows[-1][0].id if len(found) > PAGE else None,
    )
