"""Schedules and quiet hours on a fake clock; the worker's job registration and its lease."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from citoyen.models import Outbox, SchedulerJob, SchedulerLease, SurveyRun
from citoyen.services.leases import acquire_lease, register_dispatcher, release_lease
from citoyen.services.surveys.jobs import SURVEY_MISFIRE_GRACE, fire_survey
from citoyen.services.surveys.quiet import is_allowed, next_allowed
from citoyen.services.surveys.runs import run_key
from citoyen.worker import Worker
from tests.services.surveys.conftest import add_contact, definition, invitations

BAMAKO = ZoneInfo("Africa/Bamako")
DAY = (datetime(2026, 1, 1, 8, 0).time(), datetime(2026, 1, 1, 20, 0).time())


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at(2026, 11, 28, 7, 59), at(2026, 11, 28, 8, 0)),  # before opening: today at 08:00
        (at(2026, 11, 28, 8, 0), at(2026, 11, 28, 8, 0)),  # inside: now
        (at(2026, 11, 28, 19, 59, 59), at(2026, 11, 28, 19, 59, 59)),
        (at(2026, 11, 28, 20, 0), at(2026, 11, 29, 8, 0)),  # closing time: tomorrow
        (at(2026, 12, 31, 23, 30), at(2027, 1, 1, 8, 0)),  # across the year
    ],
)
def test_quiet_hours_in_bamako(now: datetime, expected: datetime) -> None:
    assert next_allowed(now, DAY, BAMAKO) == expected
    assert is_allowed(now, DAY, BAMAKO) == (now == expected)


def test_quiet_hours_follow_the_local_zone() -> None:
    """In a zone 2 h ahead of UTC, 07:00 UTC is 09:00 local: inside the window."""
    cairo = ZoneInfo("Africa/Cairo")
    assert next_allowed(at(2026, 11, 28, 7, 0), DAY, cairo) == at(2026, 11, 28, 7, 0)
    assert next_allowed(at(2026, 11, 28, 18, 30), DAY, cairo) == at(2026, 11, 29, 6, 0)


def test_cron_fires_at_bamako_time() -> None:
    trigger = definition(schedule={"cron": "0 9 1 * *"}).schedule.trigger()
    fire = trigger.get_next_fire_time(None, at(2026, 11, 28, 10, 0))
    assert fire == datetime(2026, 12, 1, 9, 0, tzinfo=BAMAKO)
    assert fire.astimezone(UTC) == at(2026, 12, 1, 9, 0)


def test_run_key_names_the_firing_a_moment_belongs_to() -> None:
    survey = definition(schedule={"cron": "0 9 1 * *"})
    grace = SURVEY_MISFIRE_GRACE
    assert run_key(survey, at(2026, 12, 1, 9, 0, 2), grace) == "2026-12-01T09:00:00Z"
    assert run_key(survey, at(2026, 12, 1, 14, 59), grace) == "2026-12-01T09:00:00Z"
    assert run_key(survey, at(2026, 12, 1, 8, 59), grace) is None  # before the firing
    assert run_key(survey, at(2026, 12, 2, 9, 0), grace) is None  # long after: not this one
    hourly = definition(schedule={"cron": "0 * * * *"})
    assert run_key(hourly, at(2026, 12, 1, 13, 20), grace) == "2026-12-01T13:00:00Z"


def test_a_schedule_firing_twice_makes_one_run(runtime) -> None:
    for i in range(3):
        add_contact(runtime, f"+2237620{i:04d}")
    survey = definition(schedule={"cron": "0 9 1 * *"})
    first = fire_survey(runtime, survey, at(2026, 12, 1, 9, 0, 1))
    second = fire_survey(runtime, survey, at(2026, 12, 1, 9, 4))  # late duplicate firing
    assert first.invited == 3 and second.invited == 0 and second.already == 3
    assert fire_survey(runtime, survey, at(2026, 12, 3, 9, 0)) is None
    with Session(runtime.engine) as session:
        assert [r.key for r in session.exec(select(SurveyRun))] == ["2026-12-01T09:00:00Z"]
    assert len(invitations(runtime)) == 3


# --- the worker's jobs and lease -----------------------------------------------------------------


def _registered(runtime) -> Worker:
    worker = Worker(runtime)
    worker.scheduler.start(paused=True)
    worker._register()
    return worker


def test_jobs_are_registered_idempotently_in_the_database(runtime) -> None:
    worker = _registered(runtime)
    try:
        job = worker.scheduler.get_job("survey:perceived_safety_monthly")
        assert job is not None and job.misfire_grace_time == int(
            SURVEY_MISFIRE_GRACE.total_seconds()
        )
        assert job.coalesce is True
        ids = {j.id for j in worker.scheduler.get_jobs()}
        assert {"expire_conversations", "survey_housekeeping"} <= ids
        assert "dispatch_outbox" not in ids  # every worker sends, leader or not (below)
    finally:
        worker.scheduler.shutdown(wait=False)
    # The worker was down when the firing was due: its stored time is now in the past.
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    store = SQLAlchemyJobStore(engine=runtime.engine, tablename="apscheduler_jobs")
    store.start(worker.scheduler, "database")
    stored = store.lookup_job("survey:perceived_safety_monthly")
    missed = datetime.now(UTC) - timedelta(hours=1)
    stored._modify(next_run_time=missed)
    store.update_job(stored)
    with Session(runtime.engine) as session:
        assert [r.id for r in session.exec(select(SchedulerJob))] == [
            "survey:perceived_safety_monthly"
        ]
    again = _registered(runtime)  # a restart: same configuration, job kept with its firing
    try:
        kept = again.scheduler.get_job("survey:perceived_safety_monthly")
        assert kept.next_run_time == missed.astimezone(kept.next_run_time.tzinfo)
    finally:
        again.scheduler.shutdown(wait=False)


def test_a_removed_survey_loses_its_job(runtime, tmp_path) -> None:
    import shutil
    from pathlib import Path

    from citoyen.runtime import Runtime

    _registered(runtime).scheduler.shutdown(wait=False)
    flows = tmp_path / "flows"
    shutil.copytree(Path(runtime.settings.flows_dir), flows)
    shutil.copytree(runtime.settings.resolved_config_dir, tmp_path / "config")
    (flows / "surveys" / "perceived_safety_monthly.yaml").unlink()
    other = Runtime(runtime.settings.model_copy(update={"flows_dir": flows}))
    worker = _registered(other)
    try:
        assert worker.scheduler.get_job("survey:perceived_safety_monthly") is None
    finally:
        worker.scheduler.shutdown(wait=False)
    with Session(runtime.engine) as session:
        assert session.exec(select(SchedulerJob)).all() == []


def test_one_lease_holder_at_a_time(db_engine) -> None:
    t0 = at(2026, 11, 28, 10, 0)
    assert acquire_lease(db_engine, "a", t0, seconds=30)
    assert not acquire_lease(db_engine, "b", t0 + timedelta(seconds=10), seconds=30)
    assert acquire_lease(db_engine, "a", t0 + timedelta(seconds=10), seconds=30)  # renewed
    assert not acquire_lease(db_engine, "b", t0 + timedelta(seconds=39), seconds=30)
    # "a" stopped renewing: once the lease lapses "b" takes over, and "a" cannot come back.
    assert acquire_lease(db_engine, "b", t0 + timedelta(seconds=41), seconds=30)
    assert not acquire_lease(db_engine, "a", t0 + timedelta(seconds=42), seconds=30)
    release_lease(db_engine, "b")
    assert acquire_lease(db_engine, "a")


def test_a_standby_worker_takes_over_when_the_scheduler_dies(runtime) -> None:
    """Two workers in one process for speed (the two-process test is test_two_workers.py)."""
    import time

    first, second = Worker(runtime, lease_seconds=1.5), Worker(runtime, lease_seconds=1.5)
    first.start(background=True)
    assert first.leader.wait(5)
    second.start(background=True)
    try:
        time.sleep(1.0)
        assert not second.leader.is_set()  # on standby while the first one renews
        # The first worker dies: no more renewals, no release.
        first._stop.set()
        first._keeper.join(5)
        first.scheduler.shutdown(wait=False)
        assert second.leader.wait(5)
        assert second.scheduler.get_job("survey:perceived_safety_monthly") is not None
    finally:
        second.shutdown()
    # A clean shutdown gives the lease up at once.
    assert acquire_lease(runtime.engine, "someone else")


def test_dispatchers_count_the_live_workers(db_engine) -> None:
    t0 = at(2026, 11, 28, 10, 0)
    assert register_dispatcher(db_engine, "dispatcher:a", t0, seconds=30) == 1
    assert (
        register_dispatcher(db_engine, "dispatcher:b", t0 + timedelta(seconds=5), seconds=30) == 2
    )
    assert (
        register_dispatcher(db_engine, "dispatcher:a", t0 + timedelta(seconds=20), seconds=30) == 2
    )
    # "b" died (no more renewals): once its row lapses it no longer takes a share.
    assert (
        register_dispatcher(db_engine, "dispatcher:a", t0 + timedelta(seconds=40), seconds=30) == 1
    )
    # The scheduler lease is not a dispatcher.
    assert acquire_lease(db_engine, "worker a", t0 + timedelta(seconds=41), seconds=30)
    assert (
        register_dispatcher(db_engine, "dispatcher:a", t0 + timedelta(seconds=42), seconds=30) == 1
    )
    # A row lapsed for more than a day is removed.
    register_dispatcher(db_engine, "dispatcher:a", t0 + timedelta(days=2), seconds=30)
    with Session(db_engine) as session:
        names = set(session.exec(select(SchedulerLease.name)).all())
    assert names == {"scheduler", "dispatcher:a"}


def test_a_standby_worker_sends_the_outbox(runtime) -> None:
    """Sending is not scheduling: a worker on standby dispatches too (rows are claimed with
    SKIP LOCKED and a lease, so several dispatchers never send one row twice)."""
    import time

    from citoyen.db import write_session
    from citoyen.services.contacts import get_or_create_contact
    from citoyen.services.dispatch import Dispatcher
    from citoyen.services.outbox import enqueue
    from tests.services.test_dispatch import FakeSender

    assert acquire_lease(runtime.engine, "a worker elsewhere", seconds=300)
    with write_session(runtime.engine) as session:
        contact, _ = get_or_create_contact(
            session, runtime.vault, "+22376000199", datetime.now(UTC)
        )
        row = enqueue(
            session, channel="sms", idempotency_key="standby", body="Reçu.", contact_id=contact.id
        )
        session.flush()
        row_id = row.id
    worker = Worker(runtime, lease_seconds=1.5)
    sender = FakeSender()
    worker.dispatcher = Dispatcher(runtime, {"sms": sender}, channel_limits={})
    worker.start(background=True)
    try:
        deadline = time.monotonic() + 10
        while not sender.sent and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [m.outbox_id for m in sender.sent] == [row_id]
        assert not worker.leader.is_set()
    finally:
        worker.shutdown()
    with Session(runtime.engine) as session:
        assert session.get(Outbox, row_id).status == "sent"


def test_module_jobs_keep_their_triggers(runtime) -> None:
    """Jobs modules declare run on the schedule they declare: the daily retention purge at
    03:15 Bamako time (a cron trigger), the recording fetch every few seconds."""
    worker = _registered(runtime)
    try:
        purge = worker.scheduler.get_job("retention_purge")
        assert purge is not None, "retention is on by default: its job must be registered"
        fields = {f.name: str(f) for f in purge.trigger.fields}
        assert (fields["hour"], fields["minute"]) == ("3", "15")
        assert str(purge.trigger.timezone) == "Africa/Bamako"
        assert purge.misfire_grace_time == 3600
    finally:
        worker.scheduler.shutdown(wait=False)
