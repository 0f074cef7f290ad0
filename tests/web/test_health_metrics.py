"""``/healthz`` tells the truth about writes; ``/metrics`` is valid Prometheus text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from citoyen.db import write_session
from citoyen.services.contacts import get_or_create_contact
from citoyen.services.leases import acquire_lease
from citoyen.services.outbox import enqueue
from citoyen.services.setup import ensure_ready
from citoyen.web import create_app

TOKEN = "metrics-token-for-tests"


@pytest.fixture
def app(settings):
    app = create_app(
        {"TESTING": True, "SETTINGS": settings.model_copy(update={"metrics_token": TOKEN})}
    )
    ensure_ready(app.extensions["citoyen"])
    return app


@pytest.fixture
def runtime(app):
    return app.extensions["citoyen"]


def _queue(runtime, key: str, channel: str, created: datetime) -> None:
    with write_session(runtime.engine) as session:
        contact, _ = get_or_create_contact(session, runtime.vault, "tel:+22376554433", created)
        enqueue(
            session,
            channel=channel,
            idempotency_key=key,
            body="x",
            contact_id=contact.id,
            now=created,
        )


def test_healthz_reports_queue_age_and_the_scheduler_lease(app, runtime) -> None:
    _queue(runtime, "old", "sms", datetime.now(UTC) - timedelta(minutes=5))
    acquire_lease(runtime.engine, "a worker")
    body = app.test_client().get("/healthz").get_json()
    assert body["database"] == "ok" and body["scheduler_lease_held"] is True
    assert 299 <= body["oldest_queued_seconds"] <= 400
    assert body["spool_depth"] == 0
    assert "a worker" not in str(body)


def test_healthz_is_503_when_sqlite_cannot_be_written(app, runtime, db_url: str) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip(
            "PostgreSQL is taken away behind a proxy in tests/channels/sms/test_spool_outage.py"
        )

    down = [True]

    def read_only(dbapi_connection, _record, _proxy) -> None:
        dbapi_connection.execute(f"PRAGMA query_only = {int(down[0])}")

    sa.event.listen(runtime.engine, "checkout", read_only)
    try:
        with runtime.engine.connect() as conn:  # reads still work: a ping would say "ok"
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
        response = app.test_client().get("/healthz")
        assert response.status_code == 503
        assert response.get_json()["database"] == "unwritable"
        down[0] = False
        assert app.test_client().get("/healthz").status_code == 200
    finally:
        sa.event.remove(runtime.engine, "checkout", read_only)


def test_metrics_need_the_token(app) -> None:
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_metrics_are_404_without_a_token_setting(settings) -> None:
    app = create_app({"TESTING": True, "SETTINGS": settings})
    assert app.test_client().get("/metrics").status_code == 404


def test_metrics_parse_and_count(app, runtime) -> None:
    client = app.test_client()
    _queue(runtime, "a", "sms", datetime.now(UTC) - timedelta(seconds=90))
    _queue(runtime, "b", "telegram", datetime.now(UTC))
    client.post("/twilio/sms", data={"From": "+22376000000"})  # a webhook request (refused)
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    families = {f.name: f for f in text_string_to_metric_families(response.get_data(as_text=True))}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples[("citoyen_outbox_depth", (("channel", "sms"), ("status", "pending")))] == 1
    assert samples[("citoyen_outbox_depth", (("channel", "telegram"), ("status", "pending")))] == 1
    assert 89 <= samples[("citoyen_outbox_oldest_age_seconds", (("channel", "sms"),))] < 200
    assert samples[("citoyen_spool_depth", ())] == 0
    assert samples[("citoyen_escalations_total", ())] == 0
    requests = [
        v
        for (name, labels), v in samples.items()
        if name == "citoyen_webhook_requests_total" and ("channel", "sms") in labels
    ]
    assert sum(requests) >= 1
    assert "citoyen_webhook_seconds" in families
    assert "citoyen_survey_invitations" in families
