"""Figures for ``/metrics`` (Prometheus): what the database holds, read at scrape time.

Two kinds of figure, kept apart on purpose (docs/outbox.md, "Metrics"):

- **From the database, computed at each scrape** (:class:`DatabaseCollector`): outbox depth and
  oldest age per channel, messages sent and failed per channel and provider (counts of rows:
  ``rate()`` of them is the send rate), escalations, survey invitations by state, spool depth.
  Every web worker answers the same, whichever gunicorn worker is asked, with nothing to add up;
  a retention purge that deletes old rows lowers the counts, which Prometheus takes for a
  counter reset.
- **Per request, in the web processes** (``citoyen.web.metrics``): webhook counts and latency,
  kept with prometheus-client's multiprocess mode when ``PROMETHEUS_MULTIPROC_DIR`` is set.

Nothing personal: labels are channels, providers, statuses and survey names.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from citoyen.models import Outbox, QueueEntry, SurveyInvitation, SurveyRun
from citoyen.services import spool

_OUTBOX = Outbox.__table__  # type: ignore[attr-defined]
_QUEUE = QueueEntry.__table__  # type: ignore[attr-defined]
_INVITATIONS = SurveyInvitation.__table__  # type: ignore[attr-defined]
_RUNS = SurveyRun.__table__  # type: ignore[attr-defined]


def provider_of(settings: Any, channel: str) -> str:
    """Who carries ``channel``'s messages in this deployment (``log``: the log channel)."""
    if channel in ("sms", "voice"):
        return "twilio" if settings.twilio_enabled else "log"
    if channel == "telegram":
        return "telegram" if settings.telegram_enabled else "log"
    return channel


class DatabaseCollector:
    """A prometheus-client collector that reads the database when scraped."""

    def __init__(self, runtime: Any, now: datetime | None = None) -> None:
        self.runtime = runtime
        self.now = now

    def collect(self) -> Iterator[Metric]:
        now = self.now or datetime.now(UTC)
        settings = self.runtime.settings
        depth = GaugeMetricFamily(
            "citoyen_outbox_depth",
            "Outbound messages waiting, by channel and status",
            labels=["channel", "status"],
        )
        age = GaugeMetricFamily(
            "citoyen_outbox_oldest_age_seconds",
            "Age of the oldest outbound message waiting (pending or sending), by channel",
            labels=["channel"],
        )
        sent = CounterMetricFamily(
            "citoyen_outbox_sent",
            "Outbound messages a provider accepted (rows in the outbox)",
            labels=["channel", "provider"],
        )
        failed = CounterMetricFamily(
            "citoyen_outbox_failed",
            "Outbound messages that failed for good (rows in the outbox)",
            labels=["channel", "provider"],
        )
        escalations = CounterMetricFamily(
            "citoyen_escalations", "Queue entries escalated for want of an acknowledgement"
        )
        invitations = GaugeMetricFamily(
            "citoyen_survey_invitations",
            "Survey invitations by survey and state (progress of the waves)",
            labels=["survey", "status"],
        )
        with self.runtime.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    _OUTBOX.c.channel,
                    _OUTBOX.c.status,
                    sa.func.count(),
                    sa.func.min(_OUTBOX.c.created_at),
                ).group_by(_OUTBOX.c.channel, _OUTBOX.c.status)
            ).all()
            escalated = conn.execute(
                sa.select(sa.func.count()).where(_QUEUE.c.escalated_at.is_not(None))
            ).scalar_one()
            progress = conn.execute(
                sa.select(_RUNS.c.survey, _INVITATIONS.c.status, sa.func.count())
                .join(_RUNS, _RUNS.c.id == _INVITATIONS.c.run_id)
                .group_by(_RUNS.c.survey, _INVITATIONS.c.status)
            ).all()
        oldest: dict[str, datetime] = {}
        for channel, status, count, first in rows:
            provider = provider_of(settings, channel)
            if status in ("pending", "sending"):
                depth.add_metric([channel, status], count)
                if first is not None and (channel not in oldest or first < oldest[channel]):
                    oldest[channel] = first
            elif status == "sent":
                sent.add_metric([channel, provider], count)
            elif status == "failed":
                failed.add_metric([channel, provider], count)
        for channel, first in sorted(oldest.items()):
            age.add_metric([channel], max(0.0, (now - first).total_seconds()))
        escalations.add_metric([], escalated)
        for survey, status, count in progress:
            invitations.add_metric([survey, status], count)
        spooled = GaugeMetricFamily(
            "citoyen_spool_depth", "Inbound messages kept on disk until the database takes them"
        )
        spooled.add_metric([], spool.spool_of(self.runtime).depth())
        yield from (depth, age, sent, failed, escalations, invitations, spooled)
