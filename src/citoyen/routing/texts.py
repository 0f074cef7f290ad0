"""Which locale texts tell citizens and stakeholders about a report.

Texts live in ``locales/`` like every other word the service says (docs/routing.md lists the
keys). A citizen's notification is chosen from the most specific text that exists: the closing
reason's, then the category's, then the status's own, so a deployment can add a variant
(``notify.acknowledged.disaster``) without touching code, and every status has a fallback.

Notifications never name the category, the place or anyone else: a phone is often shared, and a
merged report's reporter must not learn who else reported.
"""

from __future__ import annotations

from typing import Any

NOTIFY_PREFIX = "notify."
TEMPLATE_PREFIX = "template."
STAFF_REPLY = "staff.reply"  # a staff member's own words to a reporter, with the reference
# Discreet mode (a contact's choice or the deployment's CITOYEN_DISCREET): messages that reach a
# phone later, when someone else may read it, use neutral words instead. ``discreet.<key>`` is
# the discreet variant of a notification or template; without one, the generic text is used,
# never the ordinary one (which may say "report", a category, the police...).
DISCREET_PREFIX = "discreet."
DISCREET_NOTIFY = "discreet.notify"
DISCREET_STAFF_REPLY = "discreet.staff.reply"
ALERT_EMERGENCY = "alert.emergency"
ALERT_ESCALATED = "alert.escalated"
ALERT_CITIZEN_UPDATE = "alert.citizen_update"
ALERT_PLACE_UNKNOWN = "alert.place_unknown"
ALERT_CATEGORY_UNKNOWN = "alert.category_unknown"


def urgency_key(urgency: str) -> str:
    return f"alert.urgency.{urgency}"


def category_key(category: str) -> str:
    """The category's label, as the report flow shows it to citizens."""
    return f"report.category.{category}"


def status_key(status: str) -> str:
    """The status word the follow flow says (``report.status.<status>``)."""
    return f"report.status.{status}"


def template_key(status: str, template: str) -> str:
    """A response template staff can choose when changing a status (``template.<status>.<name>``);
    the citizen gets it instead of the usual ``notify.*`` text."""
    return f"{TEMPLATE_PREFIX}{status}.{template}"


def templates_for(catalog: Any, status: str, lang: str) -> dict[str, str]:
    """Response templates offered for ``status``: name -> text in ``lang``, sorted by name."""
    prefix = f"{TEMPLATE_PREFIX}{status}."
    return {
        key[len(prefix) :]: catalog.text(key, lang)
        for key in sorted(catalog.keys(lang))
        if key.startswith(prefix)
    }


def notification_keys(status: str, *, category: str | None, reason: str | None) -> list[str]:
    """Candidate texts for telling a citizen about ``status``, most specific first."""
    keys: list[str] = []
    if reason:
        keys.append(f"{NOTIFY_PREFIX}{status}.{reason}")
    if category:
        keys.append(f"{NOTIFY_PREFIX}{status}.{category}")
    keys.append(f"{NOTIFY_PREFIX}{status}")
    return keys


def discreet_keys(keys: list[str], generic: str) -> list[str]:
    """The discreet candidates for ``keys``: each one's ``discreet.`` variant, then ``generic``.

    The ordinary texts are deliberately not among them: a missing variant falls back to the
    neutral generic text, not to words that could expose the reporter.
    """
    return [DISCREET_PREFIX + key for key in keys] + [generic]


# Placeholders each kind of text may use, beyond the emergency numbers of settings.yaml.
NOTIFY_PLACEHOLDERS = frozenset({"reference", "report_status", "target_reference"})
STAFF_REPLY_PLACEHOLDERS = frozenset({"reference", "message"})
ALERT_PLACEHOLDERS = frozenset(
    {"reference", "category", "place", "urgency", "deadline", "stakeholder"}
)

# Sample values for measuring SMS length (the validator warns above two segments).
SAMPLE_PARAMS = {
    "reference": "482-1937",
    "target_reference": "482-1937",
    "report_status": "en cours de traitement",
    "category": "Vol ou cambriolage",
    "place": "Kalaban Coro, Kati, Koulikoro",
    "urgency": "urgence",
    "deadline": "27/11 14:35",
    "message": "Une patrouille passera ce soir. Merci.",
    "stakeholder": "Commissariat de police de la Commune IV",
}
