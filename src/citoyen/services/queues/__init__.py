"""Stakeholder queues: routing reports into them, acting on them, and telling the citizen.

This is where shared governance happens (docs/routing.md):

- **Routing** runs in the transaction that creates the report (:func:`route_new_report`, called
  by :func:`citoyen.services.effects.create_report`): each stakeholder the rules name gets its
  own queue entry and a ``routed`` timeline event, so a report is in the queues if and only if
  it exists. Nothing is ever dropped: no rule, a rule that finds nobody, even a routing bug, all
  end in the moderation queue. An emergency alerts the stakeholders' on-call phones and Telegram
  chats at once through the outbox, with the reference, category, place and urgency only, never
  who reported.
- **Escalation** (:func:`escalate_overdue`, a worker job from :func:`scheduled_jobs`): an entry
  nobody acknowledged within its urgency's SLA goes to the next step of its escalation chain,
  with an event and an alert. Every function takes ``now``, so tests drive a fake clock.
- **Report life** (:func:`change_status`): new -> acknowledged -> in_progress -> resolved, or
  closed with a reason; "not responsible" reroutes instead of closing and "duplicate" merges.
  Every change is an event with who, when and why, and the citizen is told in their language,
  on their channel, through the outbox, unless they opted out.
- **Duplicates** (:func:`suggest_duplicates`, :func:`merge_reports`): reports of one category
  and commune close in time are suggested; a merged report's reporter is told of the other
  report's progress from then on.

Functions flush but never commit: the caller owns the transaction. Modules: ``config`` (the
configuration per database), ``stakeholders`` (the table, synced from the file), ``routes``
(entries, events, alerts), ``escalation``, ``status`` (report life, rerouting, merging),
``notify`` (the citizen's messages), ``duplicates``.
"""

from citoyen.services.queues.config import (
    Router,
    clear_routers,
    install,
    router_for,
    router_for_settings,
)
from citoyen.services.queues.duplicates import suggest_duplicates
from citoyen.services.queues.escalation import escalate_due, escalate_overdue, scheduled_jobs
from citoyen.services.queues.notify import OUTBOX_CHANNEL
from citoyen.services.queues.routes import entries, queue, route_new_report, route_report
from citoyen.services.queues.stakeholders import (
    SyncError,
    SyncResult,
    sync_from_settings,
    sync_stakeholders,
)
from citoyen.services.queues.status import (
    TRANSITIONS,
    StatusError,
    acknowledge,
    change_status,
    merge_reports,
    reroute,
)

__all__ = [
    "OUTBOX_CHANNEL",
    "TRANSITIONS",
    "Router",
    "StatusError",
    "SyncError",
    "SyncResult",
    "acknowledge",
    "change_status",
    "clear_routers",
    "entries",
    "escalate_due",
    "escalate_overdue",
    "install",
    "merge_reports",
    "queue",
    "reroute",
    "route_new_report",
    "route_report",
    "router_for",
    "router_for_settings",
    "scheduled_jobs",
    "suggest_duplicates",
    "sync_from_settings",
    "sync_stakeholders",
]
