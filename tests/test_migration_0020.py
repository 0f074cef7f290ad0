"""Migration 0020 (``outbox.quiet_hours``) on SQLite and PostgreSQL: up from 0019 with rows in
the outbox, and down again.

Each case starts from an empty database of its own (a SQLite file; a PostgreSQL database made
and dropped here), since the shared test databases are already at the head.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from bench.common import throwaway_database

from citoyen import db
from citoyen.services.surveys.definitions import SurveyDef
from tests.conftest import postgres_or_skip

T = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)
OUTBOX_0019 = sa.table(
    "outbox",
    sa.column("idempotency_key", sa.String),
    sa.column("kind", sa.String),
    sa.column("channel", sa.String),
    sa.column("address_enc", sa.String),
    sa.column("payload", sa.JSON),
    sa.column("status", sa.String),
    sa.column("attempts", sa.Integer),
    sa.column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of an empty database, not migrated (a PostgreSQL one is dropped afterwards)."""
    admin = postgres_or_skip() if request.param == "postgresql" else ""
    name = f"citoyen_test_migrate_{uuid.uuid4().hex[:8]}"
    with throwaway_database(request.param, admin, name) as (url, _folder):
        try:
            yield url
        finally:
            engine = db._engines.pop(url, None)
            if engine is not None:
                engine.dispose()


def _row(key: str, kind: str, status: str) -> dict[str, object]:
    return {
        "idempotency_key": key,
        "kind": kind,
        "channel": "sms",
        "address_enc": "x",
        "payload": {},
        "status": status,
        "attempts": 0,
        "next_attempt_at": T,
        "created_at": T,
    }


def test_0020_gives_the_waiting_survey_rows_the_default_window(empty_url: str) -> None:
    """A wave under way at the upgrade stops at night too: its waiting rows get the default
    window of a survey; rows already sent and every other kind stay without one."""
    db.upgrade(empty_url, "0019")
    engine = db.get_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(
            OUTBOX_0019.insert(),
            [
                _row("survey-pending", "survey", "pending"),
                _row("survey-sending", "survey", "sending"),
                _row("survey-sent", "survey", "sent"),
                _row("reply", "reply", "pending"),
                _row("notice", "notification", "pending"),
            ],
        )
    db.upgrade(empty_url, "0020")
    with engine.connect() as conn:
        found = dict(conn.execute(sa.text("SELECT idempotency_key, quiet_hours FROM outbox")).all())
    default = SurveyDef.model_validate({"id": "s", "flow": "f", "channels": ["sms"]}).quiet_spec
    assert default == "08:00-20:00 Africa/Bamako"
    assert found == {
        "survey-pending": default,
        "survey-sending": default,
        "survey-sent": None,
        "reply": None,
        "notice": None,
    }
    db.downgrade(empty_url, "0019")
    assert "quiet_hours" not in {c["name"] for c in sa.inspect(engine).get_columns("outbox")}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM outbox")).scalar_one() == 5
