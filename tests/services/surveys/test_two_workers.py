"""Two `citoyen worker` processes started by mistake against one PostgreSQL database: one
schedules, the other waits, and every contact is invited exactly once.

Real processes, a real schedule: the survey fires every minute, so this test takes up to about
a minute and a half.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import Session, func, select

from citoyen.models import Outbox, SchedulerLease, SurveyInvitation, SurveyRun
from citoyen.runtime import Runtime
from citoyen.services.setup import ensure_ready
from tests.services.surveys.conftest import add_contact

ROOT = Path(__file__).resolve().parents[3]
EVERY_MINUTE = """\
id: every_minute
flow: perceived_safety
schedule:
  cron: "* * * * *"
audience:
  skip_surveyed_within: 1d
channels: [sms, telegram]
quiet_hours:
  start: "00:00"
  end: "23:59"
expiry: 3d
"""
CONTACTS = 25


@pytest.fixture
def pg_settings(settings, db_url: str, tmp_path: Path):
    if not db_url.startswith("postgresql"):
        pytest.skip("two worker processes need a shared server database (PostgreSQL)")
    flows = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", flows)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    (flows / "surveys" / "every_minute.yaml").write_text(EVERY_MINUTE, encoding="utf-8")
    # Keep the shipped monthly survey out of the way.
    (flows / "surveys" / "perceived_safety_monthly.yaml").unlink()
    return settings.model_copy(update={"flows_dir": flows})


def _start_worker(settings, tmp_path: Path, n: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "CITOYEN_DATABASE_URL": settings.database_url,
        "CITOYEN_FLOWS_DIR": str(settings.flows_dir),
        "CITOYEN_LOCALES_DIR": str(settings.locales_dir),
        "CITOYEN_DATA_KEY": settings.data_key,
        "CITOYEN_SECRET_KEY": "test-secret",
        "CITOYEN_INSTANCE_DIR": str(tmp_path / f"instance{n}"),
    }
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TELEGRAM_BOT_TOKEN"):
        env.pop(name, None)
    log = (tmp_path / f"worker{n}.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "citoyen.cli", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )


def test_two_workers_invite_each_contact_once(pg_settings, tmp_path: Path) -> None:
    runtime = Runtime(pg_settings)
    ensure_ready(runtime)
    for i in range(CONTACTS - 1):
        add_contact(runtime, f"+2237630{i:04d}")
    add_contact(runtime, "telegram:5553001")

    workers = [_start_worker(pg_settings, tmp_path, n) for n in (1, 2)]
    try:
        deadline = time.monotonic() + 100
        invited = 0
        while time.monotonic() < deadline:
            with Session(runtime.engine) as session:
                invited = session.exec(select(func.count(SurveyInvitation.id))).one()
                runs = session.exec(select(SurveyRun).where(SurveyRun.status == "done")).all()
            if runs and invited >= CONTACTS:
                break
            assert all(w.poll() is None for w in workers), _logs(tmp_path)
            time.sleep(1)
        time.sleep(3)  # let a second scheduler, if there were one, do its damage
        assert all(w.poll() is None for w in workers), _logs(tmp_path)
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=15)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()

    logs = _logs(tmp_path)
    with Session(runtime.engine) as session:
        rows = session.exec(select(SurveyInvitation)).all()
        assert len(rows) == CONTACTS, logs
        assert len({r.contact_id for r in rows}) == CONTACTS
        first_rows = session.exec(
            select(Outbox).where(Outbox.kind == "survey", Outbox.idempotency_key.like("%:invite:0"))
        ).all()
        assert sorted(r.contact_id for r in first_rows) == sorted(r.contact_id for r in rows)
        lease = session.get(SchedulerLease, "scheduler")
        assert lease is not None
    # Exactly one of the two ever held the lease while both ran.
    leaders = [n for n in (1, 2) if "holds the scheduler lease" in _log(tmp_path, n)]
    assert len(leaders) == 1, logs
    assert all(w.returncode == 0 for w in workers), logs


def _log(tmp_path: Path, n: int) -> str:
    return (tmp_path / f"worker{n}.log").read_text(encoding="utf-8", errors="replace")


def _logs(tmp_path: Path) -> str:
    return "\n".join(f"--- worker {n}\n{_log(tmp_path, n)[-3000:]}" for n in (1, 2))
