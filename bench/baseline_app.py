"""The baseline the SMS webhook is compared with: a separate minimal Flask app, not the project's.

It does what any SMS webhook must: check Twilio's signature (the twilio library's
``RequestValidator``) and insert one row, on the same database with the same durability
settings (SQLite: WAL, ``synchronous=NORMAL``, as ``citoyen.db`` sets them), served by the same
gunicorn with the same workers. None of the project's request hooks, sessions or pool options.
Served by ``bench/webhook_sms.py`` as ``baseline_app:create()``.
"""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, request
from twilio.request_validator import RequestValidator

TABLE = sa.table("bench_baseline", sa.column("sid"), sa.column("sender"), sa.column("body"))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create() -> Flask:
    url = os.environ["CITOYEN_DATABASE_URL"]
    engine = sa.create_engine(url)
    if url.startswith("sqlite"):
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])
    public_url = os.environ["CITOYEN_PUBLIC_URL"].rstrip("/")
    app = Flask(__name__)

    @app.post("/bench/baseline")
    def baseline() -> Response:
        signature = request.headers.get("X-Twilio-Signature", "")
        if not validator.validate(public_url + request.path, request.form.to_dict(), signature):
            return Response("bad signature", status=403)
        with engine.begin() as conn:
            conn.execute(
                TABLE.insert().values(
                    sid=request.form["MessageSid"],
                    sender=request.form["From"],
                    body=request.form.get("Body", ""),
                )
            )
        return Response("<Response/>", mimetype="text/xml")

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    from common import ServerTimer

    app.wsgi_app = ServerTimer(app.wsgi_app)  # type: ignore[method-assign]
    return app
