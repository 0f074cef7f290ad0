"""``GET /metrics``: Prometheus text format, behind ``CITOYEN_METRICS_TOKEN``.

Webhook requests are counted and timed here, per channel and status code. gunicorn runs
several web workers (Procfile): with ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus-client's
multiprocess mode keeps each worker's figures in that folder and every scrape adds them up,
whichever worker answers; without it (``citoyen run``, one process) they live in the process.
The database figures are read at scrape time (:mod:`citoyen.services.metrics`).
"""

from __future__ import annotations

import hmac
import os
import time

from flask import Blueprint, Flask, Response, abort, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from citoyen.services.metrics import DatabaseCollector

bp = Blueprint("metrics", __name__)

# The webhooks' blueprints and the channel they carry.
WEBHOOK_CHANNELS = {
    "twilio_sms": "sms",
    "twilio_status": "sms_status",
    "twilio_voice": "voice",
    "twilio_prompts": "voice",
    "telegram_webhook": "telegram",
}
_REGISTRY = CollectorRegistry()  # this process's own figures (single-process mode)
WEBHOOK_REQUESTS = Counter(
    "citoyen_webhook_requests",
    "Webhook requests by channel and HTTP status",
    ["channel", "status"],
    registry=_REGISTRY,
)
WEBHOOK_SECONDS = Histogram(
    "citoyen_webhook_seconds",
    "Time to answer a webhook, by channel",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0),
    registry=_REGISTRY,
)


def _start() -> None:
    g.citoyen_started = time.perf_counter()


def _count(response: Response) -> Response:
    channel = WEBHOOK_CHANNELS.get(request.blueprint or "")
    started = g.get("citoyen_started")
    if channel is not None and started is not None:
        WEBHOOK_REQUESTS.labels(channel, str(response.status_code)).inc()
        WEBHOOK_SECONDS.labels(channel).observe(time.perf_counter() - started)
    return response


@bp.get("/metrics")
def metrics() -> Response:
    runtime = current_app.extensions["citoyen"]
    token = runtime.settings.metrics_token
    if not token:
        abort(404)
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return Response(
            "a bearer token is required\n",
            status=401,
            mimetype="text/plain",
            headers={"WWW-Authenticate": "Bearer"},
        )
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_REGISTRY)  # type: ignore[arg-type] - a registry is a collector
    registry.register(DatabaseCollector(runtime))  # type: ignore[arg-type]
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_count)
    app.register_blueprint(bp)
