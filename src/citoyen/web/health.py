"""``GET /healthz``: 503 unless the database takes a write; spool, outbox and scheduler state.

The checks live in :mod:`citoyen.services.health` (why the database check writes).
"""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify

from citoyen.services import health

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    state = health.check(current_app.extensions["citoyen"])
    return jsonify(state.to_dict()), 200 if state.ok else 503


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
