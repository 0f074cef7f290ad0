"""Shared fixtures.

Database tests run on SQLite and on PostgreSQL: the ``db_url`` fixture is parametrized over both.
PostgreSQL comes from ``CITOYEN_TEST_POSTGRES_URL`` (default: the local server). When it cannot be
reached the PostgreSQL cases skip with the reason, unless ``CITOYEN_REQUIRE_POSTGRES=1`` (set by
``.ci/run``), where they fail: CI must never pass by skipping the real database.

Each test gets an empty, fully migrated database: migrations run once per test session (into a
template SQLite file, and into a private PostgreSQL schema), then SQLite tests get a copy of the
template and PostgreSQL tests get every table truncated.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from citoyen import db

# Every log line of the session is scanned for test phone numbers and Telegram ids.
pytest_plugins = ["tests.security.logscan"]

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_URL = os.environ.get("CITOYEN_TEST_POSTGRES_URL", DEFAULT_PG_URL)
REQUIRE_PG = os.environ.get("CITOYEN_REQUIRE_POSTGRES") == "1"
ROOT = Path(__file__).resolve().parents[1]


# --- tests that read the clock ------------------------------------------------------------------

# Tests of behaviour that depends on the date: surveys and their quiet hours and expiry,
# escalation deadlines, conversation expiry, retention, sign-in sessions, leases. `make test-clock`
# runs them again with the system clock moved a year ahead (libfaketime), so a test that mixes a
# fixed date with the wall clock fails in CI instead of on the day its date goes by.
CLOCK_TESTS = (
    "tests/channels/gateway/test_callback.py",
    "tests/channels/telegram/test_callback.py",
    "tests/channels/voice/test_callback.py",
    "tests/channels/whatsapp/test_callback.py",
    "tests/cli/test_survey_commands.py",
    "tests/flows/test_callback_transcripts.py",
    "tests/flows/test_journeys.py",
    "tests/flows/test_survey_transcripts.py",
    "tests/routing/test_escalation.py",
    "tests/routing/test_queues.py",
    "tests/security/test_retention.py",
    "tests/services/surveys/",
    "tests/services/publication/",
    "tests/services/bulletin/",
    "tests/services/test_callbacks.py",
    "tests/services/test_conversations.py",
    "tests/services/test_dispatch.py",
    "tests/services/test_dispatch_quiet_hours.py",
    "tests/services/test_outbox.py",
    "tests/web/test_admin_access.py",
    "tests/web/test_admin_dashboard.py",
    "tests/web/test_admin_outbox_quiet_hours.py",
    "tests/web/test_admin_transparency.py",
    "tests/web/test_public.py",
)


# Several processes sharing a database must share a clock too: these stay out of the moved run.
NOT_CLOCK_TESTS = ("tests/services/surveys/test_two_workers.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(CLOCK_TESTS) and not item.nodeid.startswith(NOT_CLOCK_TESTS):
            item.add_marker(pytest.mark.clock)


if os.environ.get("FAKETIME") and os.environ.get("FAKETIME_DONT_FAKE_MONOTONIC") == "1":
    # `make test-clock` moves the wall clock only (a moved monotonic clock makes every timed
    # wait hang: libfaketime 0.9.10 does not wrap sem_clockwait). That libfaketime then fails
    # Python's time.sleep (clock_nanosleep on the monotonic clock with an absolute deadline) with
    # EINVAL, so sleeps wait on an event instead: the same pause, by a call it leaves alone.
    import threading
    import time

    def _sleep(seconds: float) -> None:
        threading.Event().wait(seconds)

    time.sleep = _sleep


# --- no internet -----------------------------------------------------------------------------

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: object) -> object:
    """Refuse any connection that leaves this machine: tests never reach the internet."""
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost") and not str(host).startswith("127."):
            raise RuntimeError(f"test tried to reach the network: {host!r}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


# --- databases -------------------------------------------------------------------------------


def _pg_reachable() -> str | None:
    try:
        engine = sa.create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure to connect is a reason to skip (or fail in CI)
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    url = f"sqlite:///{path}"
    db.upgrade(url)
    db.get_engine(url).dispose()
    return path


def postgres_or_skip() -> str:
    """``PG_URL`` when its server answers; otherwise the test skips with the reason (fails under
    ``CITOYEN_REQUIRE_POSTGRES=1``)."""
    problem = _pg_reachable()
    if problem:
        message = f"PostgreSQL unreachable at {PG_URL}: {problem}"
        if REQUIRE_PG:
            pytest.fail(message + " (CITOYEN_REQUIRE_POSTGRES=1)", pytrace=False)
        pytest.skip(message)
    return PG_URL


@pytest.fixture(scope="session")
def _pg_schema_url() -> Iterator[str]:
    postgres_or_skip()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    db.upgrade(url)
    yield url
    db.dispose_engines()
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty, migrated database (SQLite and PostgreSQL)."""
    if request.param == "sqlite":
        template = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "citoyen.db"
        shutil.copy(template, path)
        url = f"sqlite:///{path}"
        yield url
        engine = db._engines.pop(url, None)
        if engine is not None:
            engine.dispose()
    else:
        url = request.getfixturevalue("_pg_schema_url")
        engine = db.get_engine(url)
        with engine.begin() as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    sa.text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                        "AND tablename <> 'alembic_version'"
                    )
                )
            ]
            if tables:
                names = ", ".join(f'"{t}"' for t in tables)
                conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        yield url


@pytest.fixture
def db_engine(db_url: str) -> sa.engine.Engine:
    return db.get_engine(db_url)


@pytest.fixture
def db_session(db_engine: sa.engine.Engine) -> Iterator[object]:
    from sqlmodel import Session

    with Session(db_engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> object:
    """Settings for a test: its own instance folder and database, the shipped flows."""
    from citoyen.config import Settings

    return Settings(
        instance_dir=tmp_path / "instance",
        database_url=db_url,
        flows_dir=ROOT / "flows",
        locales_dir=ROOT / "locales",
        data_key="q3zkx8cQoB9o6c1ZCqbsb9Uu3mC1uHnP0E0y0F4l1yM=",
        secret_key="test-secret",
    )
