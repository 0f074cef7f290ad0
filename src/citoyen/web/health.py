"""``GET /healthz``: liveness and database check, for load balancers and monitoring."""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify

from citoyen import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    runtime = current_app.extensions["citoyen"]
    ok = db.ping(runtime.engine)
    body = {"status": "ok" if ok else "error", "database": "ok" if ok else "unreachable"}
    return jsonify(body), 200 if ok else 503


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
