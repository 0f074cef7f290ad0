"""The exactly-once run, reduced for CI, on SQLite and on PostgreSQL: gunicorn (3 workers) and two
``citoyen worker`` processes on a fresh database, 100 conversations over Twilio SMS, Telegram and
the gateway phones (SMS Gateway for Android) with every webhook delivered 1-3 times at once;
exactly-once checked end to end (tests/scale/multiprocess.py says what; bench/exactly_once.py
runs the 10,000).

On PostgreSQL: skipped when the server cannot be reached, failed instead under
``CITOYEN_REQUIRE_POSTGRES=1`` (as every PostgreSQL test, tests/conftest.py). On SQLite the
database is a file in the deployment's instance folder, as ``citoyen run`` keeps it.
"""

from __future__ import annotations

import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest
from bench.common import throwaway_database

from tests.conftest import postgres_or_skip
from tests.scale.multiprocess import PHONES, run, sqlite_url


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_many_processes_send_everything_exactly_once(database: str, tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    with ExitStack() as stack:
        if database == "sqlite":
            url = sqlite_url(instance)
        else:
            name = f"citoyen_test_multiprocess_{uuid.uuid4().hex[:8]}"
            url, _ = stack.enter_context(throwaway_database("postgresql", postgres_or_skip(), name))
        outcome = run(url, instance, conversations_count=100, threads=6, web_workers=3)
    summary = outcome.summary
    assert outcome.violations == [], "\n".join(outcome.violations)
    assert summary["database"] == database
    assert (summary["sms"], summary["telegram"], summary["gateway"]) == (33, 34, 33)
    assert summary["reports"] == 100
    assert summary["duplicate deliveries"] > 0  # the copies really were sent
    assert summary["telegram messages received by the fake Bot API"] >= 34 * 9
    # Every phone sent (its operator's citizens' replies), at least one SMS per event.
    by_phone = summary["sms received by the gateway phones"]
    assert set(by_phone) == {name for name, _, _ in PHONES}
    assert all(by_phone.values())
    assert sum(by_phone.values()) >= 33 * 9
    assert summary["sms received by the fake Twilio"] == 0  # the phones send every SMS
