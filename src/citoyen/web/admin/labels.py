"""Words the admin shows for codes (roles, statuses, urgencies, events), in the staff's language.

Staff-facing words live in the admin's gettext catalogues (``web/translations``); category names
are the citizens' own texts from ``locales/`` so staff and citizens use the same words.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import current_app
from flask_babel import get_locale
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
CHANNELS = {
    "sms": "SMS",
    "voice": _l("phone call"),
    "telegram": "Telegram",
    "whatsapp": "WhatsApp",
}
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
    "assigned": _l("Assigned"),
    "forwarded": _l("Forwarded"),
    "sender_blocked": _l("Sender blocked"),
    "identity_revealed": _l("Number revealed"),
}
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
        "channel_label": _lookup(CHANNELS),
        "event_label": _lookup(EVENTS),
        "age_label": _lookup(AGES),
        "category_label": category_label,
        "when": when,
        "get_locale": staff_language,
    }
