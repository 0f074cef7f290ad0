"""Multi-process correctness on PostgreSQL, reduced for CI: gunicorn (3 workers) and two
``citoyen worker`` processes on a fresh database, 100 conversations over SMS and Telegram with
every webhook delivered 1-3 times at once; exactly-once checked end to end
(tests/scale/multiprocess.py says what; bench/multiprocess_pg.py runs the 10,000).

PostgreSQL only: skipped when the server cannot be reached, failed instead under
``CITOYEN_REQUIRE_POSTGRES=1`` (as every PostgreSQL test, tests/conftest.py).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from bench.common import throwaway_database

from tests.conftest import PG_URL, REQUIRE_PG, _pg_reachable
from tests.scale.multiprocess import run


@pytest.fixture
def pg_admin() -> str:
    problem = _pg_reachable()
    if problem:
        message = f"PostgreSQL unreachable at {PG_URL}: {problem}"
        if REQUIRE_PG:
            pytest.fail(message + " (CITOYEN_REQUIRE_POSTGRES=1)", pytrace=False)
        pytest.skip(message)
    return PG_URL


def test_many_processes_send_everything_exactly_once(pg_admin: str, tmp_path: Path) -> None:
    name = f"citoyen_test_multiprocess_{uuid.uuid4().hex[:8]}"
    with throwaway_database("postgresql", pg_admin, name) as (url, _):
        outcome = run(url, tmp_path / "instance", conversations_count=100, threads=6, web_workers=3)
    summary = outcome.summary
    assert outcome.violations == [], "\n".join(outcome.violations)
    assert summary["reports"] == 100
    assert summary["duplicate deliveries"] > 0  # the copies really were sent
    assert summary["telegram messages received by the fake Bot API"] >= 50 * 9
