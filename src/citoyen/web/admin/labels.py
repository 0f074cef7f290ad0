"""Words the admin shows for codes (roles, statuses, urgencies, events), in the staff's language.

Staff-facing words live in the admin's gettext catalogues (``web/translations``); category names
are the citizens' own texts from ``locales/`` so staff and citizens use the same words.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import current_app
from flask_babel import format_decimal, get_locale
from flask_babel import lazy_gettext as _l

from citoyen.services.queues.config import router_for_settings

ROLES = {
    "admin": _l("administrator"),
    "coordinator": _l("coordinator"),
    "agent": _l("agent"),
    "analyst": _l("analyst"),
    "reviewer": _l("reviewer"),
}
STATUSES = {
    "new": _l("new"),
    "acknowledged": _l("acknowledged"),
    "in_progress": _l("in progress"),
    "resolved": _l("resolved"),
    "closed": _l("closed"),
}
ENTRY_STATUSES = {
    "open": _l("waiting"),
    "acknowledged": _l("taken in hand"),
    "closed": _l("closed"),
    "declined": _l("declined"),
}
# How the channels a report came by are named (exports keep the codes: sms, whatsapp...).
URGENCIES = {"emergency": _l("emergency"), "high": _l("high"), "normal": _l("normal")}
REASONS = {
    "no_further_action": _l("no further action"),
    "not_responsible": _l("not responsible"),
    "duplicate": _l("duplicate"),
    "spam": _l("spam"),
}
EVENTS = {
    "created": _l("Report received"),
    "routed": _l("Routed"),
    "status_changed": _l("Status changed"),
    "acknowledged": _l("Taken in hand"),
    "escalated": _l("Escalated"),
    "overdue": _l("Deadline missed"),
    "rerouted": _l("Declined and rerouted"),
    "merged": _l("Merged"),
    "note": _l("Internal note"),
    "reply": _l("Reply to the reporter"),
    "citizen_answer": _l("Answer from the reporter"),
    "citizen_addition": _l("Information added by the reporter"),
    "assigned": _l("Assigned"),
    "forwarded": _l("Forwarded"),
    "sender_blocked": _l("Sender blocked"),
    "identity_revealed": _l("Number revealed"),
}
# The admin's error pages: a title and what the staff member can do.
ERROR_PAGES = {
    400: (
        _l("Request not understood"),
        _l("The link or the form is damaged: go back and try again."),
    ),
    403: (_l("Not allowed"), _l("Your account may not open this page.")),
    404: (
        _l("Page not found"),
        _l("This page or this report does not exist, or no longer exists."),
    ),
}
# What the citizen last added to a report, as its queue entries show it until staff act.
CITIZEN_UPDATES = {"answer": _l("answer received"), "addition": _l("information added")}
CHANNELS = {
    "sms": _l("SMS"),
    "voice": _l("phone call"),
    "telegram": _l("Telegram"),
    "whatsapp": _l("WhatsApp"),
    "withheld": _l("call from a withheld number"),
}
# How a reply reaches a reporter of each channel (a caller is answered by SMS).
REPLY_CHANNELS = {
    "sms": _l("SMS"),
    "voice": _l("SMS"),
    "telegram": _l("Telegram"),
    "whatsapp": _l("WhatsApp"),
}
KINDS = {
    "police": _l("Police"),
    "gendarmerie": _l("Gendarmerie"),
    "protection_civile": _l("Civil protection"),
    "prefet": _l("Prefects and governors"),
    "mayor_ccs": _l("Mayors and municipal security councils"),
    "village_chief": _l("Village and neighbourhood chiefs"),
    "religious_leader": _l("Religious leaders"),
    "civil_society": _l("Civil society"),
    "moderation": _l("Moderation"),
}
# The kind of thing an audit entry is about, followed by its number ("signalement n° 7").
TARGETS = {
    "report": _l("report"),
    "contact": _l("reporter"),
    "user": _l("user"),
    "outbox": _l("outgoing message"),
    "voice_prompt": _l("voice prompt"),
}
# Keys of audit-log details (AuditEvent.data); unknown keys show as written.
DETAILS = {
    "email": _l("email"),
    "role": _l("role"),
    "stakeholder": _l("stakeholder"),
    "area": _l("area"),
    "report": _l("report reference"),
    "contact": _l("reporter no."),
    "language": _l("language"),
    "key": _l("text"),
    "source": _l("source"),
    "file": _l("file"),
    "format": _l("format"),
    "rows": _l("rows"),
    "complete": _l("complete"),
    "before": _l("before"),
    "after": _l("after"),
    "to": _l("to"),
    "attempts": _l("attempts"),
    "error": _l("error"),
    "known_user": _l("known user"),
    "via": _l("made with"),
}
# Why an action was refused (citoyen.services.refusals.Refusal.code), with its parameters.
REFUSALS = {
    "unknown_status": _l("Unknown status."),
    "merged": _l("Report %(reference)s was merged into %(target)s: change that one."),
    "close_reason": _l("To close a report, choose a reason."),
    "reason_not_closing": _l("A reason is given only when closing; write it as a note."),
    "decline_who": _l("Declining needs the stakeholder that declines."),
    "duplicate_of": _l("Closing as a duplicate needs the report it duplicates: use Merge."),
    "transition": _l("A report cannot go from “%(before)s” to “%(after)s”."),
    "already": _l("Report %(reference)s is already %(status)s."),
    "no_open_entry": _l("This stakeholder has no open entry for the report."),
    "merge_itself": _l("A report cannot be merged into itself."),
    "already_merged": _l("Report %(reference)s is already merged."),
    "text_short": _l("%(what)s: at least %(minimum)s characters."),
    "text_empty": _l("%(what)s is empty."),
    "text_long": _l("%(what)s is too long (%(length)s characters, at most %(limit)s)."),
    "withheld": _l("This reporter cannot be written to: the caller's number was withheld."),
    "opted_out": _l("This reporter opted out (STOP): they are not written to any more."),
    "blocked": _l("This reporter is blocked."),
    "no_entry": _l("No such queue entry on this report."),
    "assignee": _l("Assign to an active user of this queue's stakeholder."),
    "forward_finished": _l("Report %(reference)s is %(status)s: nothing to forward."),
    "unknown_stakeholder": _l("Unknown stakeholder."),
    "already_has": _l("%(name)s already has this report."),
    "no_sender": _l("This report has no sender to block."),
    "already_blocked": _l("This sender is already blocked."),
    "anonymous": _l("This report is anonymous: the reporter's number is never shown."),
    "no_number": _l("No number is known for this reporter."),
    # Accounts (citoyen.services.users.UserError).
    "unknown_area": _l("Unknown area: %(area)s."),
    "unknown_role": _l("Unknown role: %(role)s."),
    "agent_stakeholder": _l("An agent works for a stakeholder: choose one."),
    "coordinator_area": _l(
        "A coordinator coordinates an area: choose an area, or a stakeholder that has one."
    ),
    "email_invalid": _l("“%(email)s” is not an email address."),
    "email_taken": _l("An account with the email %(email)s already exists."),
    "password_short": _l("The password is too short (at least %(minimum)s characters)."),
    "own_admin": _l("You cannot remove your own administrator access."),
    # Voice prompts (citoyen.services.prompts: PromptError, AudioError).
    "prompt_language": _l("The language %(language)s is not enabled."),
    "prompt_key": _l("%(key)s is not a prompt a call can play in %(language)s."),
    "prompt_source": _l("Unknown source of recording: %(source)s."),
    "pin_digits": _l("The PIN must have 4 to 8 digits (typed on a phone keypad)."),
    "pin_weak": _l("This PIN is too easy to guess (one digit repeated, or a run like 1234)."),
    "pin_user": _l("No active user with staff number %(user)s."),
    "audio_empty": _l("The file is empty."),
    "audio_too_big": _l("The file is too big (%(size_mb)s MB; at most %(limit_mb)s MB)."),
    "not_audio": _l("This is not an audio file: send a WAV or MP3 recording."),
    "mp3_unreadable": _l("This file looks like an MP3 but cannot be read: export it again."),
    "audio_format": _l(
        "%(format)s files cannot be played on calls: export or convert the recording to WAV or "
        "MP3 (most phone recorder apps offer one of them)."
    ),
    "wav_not_pcm": _l("This WAV file is not plain PCM: export it as 16-bit PCM WAV or as MP3."),
    "wav_unusable": _l("This WAV file has an unusable format: export it again as WAV or MP3."),
    "audio_too_long": _l("The recording is too long (%(seconds)s s; at most %(limit_seconds)s s)."),
    "audio_too_short": _l("The recording is empty or too short (%(seconds)s s)."),
    # Texts (citoyen.services.translations.TranslationError).
    "po_unreadable": _l("This is not a PO file that can be read."),
    "po_language": _l("The language %(language)s has no locale file."),
    "po_problems": _l("The catalogue cannot be imported (problems: %(count)s): nothing written."),
    "text_unknown": _l("There is no text %(key)s in %(language)s."),
    "text_blank": _l("The text of %(key)s cannot be empty."),
    "placeholder_broken": _l(
        "%(key)s: a placeholder is broken. Write each one as a name between braces, like {police}."
    ),
    "placeholder_name": _l(
        "%(key)s: {%(name)s} is not a placeholder. Write a simple name between braces, like "
        "{police}."
    ),
    "placeholders_differ": _l(
        "%(key)s: the placeholders must be those of the reference text (%(reference)s): "
        "%(expected)s; this text has %(found)s."
    ),
    "text_unwritable": _l("%(file)s: %(key)s could not be written safely; nothing was changed."),
    # Trying a flow (citoyen.services.trial.TrialError).
    "trial_channel": _l("Unknown channel: %(channel)s."),
    "trial_language": _l("The language %(language)s is not enabled."),
    "trial_flow": _l("There is no flow %(flow)s."),
    "trial_address": _l("This is not a test conversation."),
    # The queue list (citoyen.services.queues.listing.FilterError).
    "filter_status": _l("Unknown status in the filter: %(value)s."),
    "filter_category": _l("Unknown category in the filter: %(value)s."),
    "filter_urgency": _l("Unknown urgency in the filter: %(value)s."),
    "filter_age": _l("Unknown age in the filter: %(value)s."),
    "filter_value": _l("Invalid filter value."),
    "page_link": _l("This page link is damaged: start again from the first page."),
}
# What a length rule is about (the ``what`` of text_short, text_empty, text_long).
TEXT_FIELDS = {"note": _l("The note"), "reply": _l("The reply"), "reason": _l("The reason")}
AGES = {
    "24h": _l("last 24 hours"),
    "7d": _l("last 7 days"),
    "older7d": _l("older than 7 days"),
    "older30d": _l("older than 30 days"),
}


def _lookup(table: dict[str, Any]) -> Callable[[str | None], str]:
    def label(code: str | None) -> str:
        if code is None:
            return "—"
        return str(table.get(code, code))

    return label


def staff_language() -> str:
    return str(get_locale() or "fr")


def category_label(code: str | None) -> str:
    if not code:
        return "—"
    router = router_for_settings(current_app.extensions["citoyen"].settings)
    key = f"report.category.{code}"
    for lang in (staff_language(), router.default_language):
        if router.catalog.has(key, lang):
            return router.catalog.text(key, lang)
    return code


def names_of(codes: list[str], names: dict[str, str]) -> str:
    """``bko-police-drp`` -> its stakeholder's name, for each code, comma-separated."""
    return ", ".join(names.get(code, code) for code in codes)


def refusal_words(exc: Exception) -> str:
    """Why an action was refused, in the staff's language, with codes shown as words."""
    code = getattr(exc, "code", "")
    if code not in REFUSALS:
        return str(exc)
    params = dict(getattr(exc, "params", {}))
    if "status" in params:
        params["status"] = STATUSES.get(params["status"], params["status"])
    for name in ("before", "after"):
        if name in params:
            params[name] = STATUSES.get(params[name], params[name])
    if "what" in params:
        params["what"] = TEXT_FIELDS.get(params["what"], params["what"])
    for name, value in params.items():
        if isinstance(value, float):  # sizes and durations: "1,5" in French
            params[name] = format_decimal(value, format="#,##0.##")
    return str(REFUSALS[code]) % {k: str(v) for k, v in params.items()}


def when(moment: datetime | None) -> str:
    """Bamako time (UTC+0 all year): day/month/year hour:minute."""
    return moment.strftime("%d/%m/%Y %H:%M") if moment else "—"


def helpers() -> dict[str, Any]:
    return {
        "role_label": _lookup(ROLES),
        "status_label": _lookup(STATUSES),
        "entry_label": _lookup(ENTRY_STATUSES),
        "urgency_label": _lookup(URGENCIES),
        "reason_label": _lookup(REASONS),
        "event_label": _lookup(EVENTS),
        "age_label": _lookup(AGES),
        "channel_label": _lookup(CHANNELS),
        "citizen_update_label": _lookup(CITIZEN_UPDATES),
        "reply_channel_label": _lookup(REPLY_CHANNELS),
        "kind_label": _lookup(KINDS),
        "target_label": _lookup(TARGETS),
        "detail_label": _lookup(DETAILS),
        "names_of": names_of,
        "category_label": category_label,
        "when": when,
        "get_locale": staff_language,
    }
