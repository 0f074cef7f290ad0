"""The worker: the only process that schedules (APScheduler 3.x).

Jobs: survey schedules (one cron job per ``flows/surveys/*.yaml``, Africa/Bamako), survey
housekeeping (reminders, invitations followed to their end) and outbound survey calls;
call-backs citizens asked for (:mod:`citoyen.services.callbacks`);
conversation expiry (:mod:`citoyen.services.expiry`); recording and media fetches
(:mod:`citoyen.services.media`); escalation of
unacknowledged queue entries (:mod:`citoyen.services.queues`). Beside the scheduler, every worker
sends the outbox every second (:mod:`citoyen.services.dispatch`: leases, retries, rate limits;
docs/outbox.md).

Why it is built like this:

- **One scheduler per deployment.** Before it schedules anything a worker takes the
  ``scheduler`` lease, a row in ``scheduler_leases`` (works alike on SQLite and PostgreSQL;
  the rows and their updates are :mod:`citoyen.services.leases`: this face runs no SQL), and
  renews it every ``LEASE_SECONDS / 3``. A second worker started by mistake waits on standby and
  takes over only when the lease lapses (the first one died); a worker that fails to renew
  pauses its scheduler at once. The survey runs' unique constraints are the second line of
  defence: even two schedulers could not invite anyone twice.
- **Every worker dispatches.** Sending is not scheduling: the outbox is claimed row by row
  (``FOR UPDATE SKIP LOCKED`` and a lease on the row), so every worker, leader or standby, sends
  it, and more workers mean more dispatchers. Each registers itself in ``scheduler_leases``
  (``dispatcher:<id>``, renewed like the scheduler lease) and takes an equal share of every
  provider rate limit, so together they keep to the limits however many run. The outbox rows
  a worker claims name that registration, so when it dies they are due again at once: a
  restarted worker removes the registrations of this host's dead processes before its first
  pass, and another worker sees the registration lapse after ``LEASE_SECONDS`` (docs/outbox.md,
  "Crash recovery"). Each pass also replays the inbound spool the web kept while the database
  was down (:mod:`citoyen.services.spool`).
- **Survey schedules in the project database** (APScheduler's ``SQLAlchemyJobStore``, table
  ``apscheduler_jobs``): a firing missed while no worker ran still happens at restart, within
  its ``misfire_grace_time``, once (``coalesce``). Frequent housekeeping jobs keep to memory:
  they run every few seconds, nothing of them is worth persisting.
- **Built from configuration at start, idempotently.** Every job has a fixed id. A stored job
  whose trigger is unchanged is kept as it is (so its pending firing survives a restart); a
  changed one is replaced; one whose survey was removed is deleted. Job functions are stored as
  references to :func:`run_job` with the job's name, resolved in the running process.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED

from citoyen.services import spool
from citoyen.services.dispatch import DISPATCHER_PREFIX, Dispatcher
from citoyen.services.expiry import expire_conversations
from citoyen.services.leases import (
    LEASE_SECONDS,
    forget_dead_dispatchers,
    hold_lease,
    register_dispatcher,
    release_lease,
)

log = logging.getLogger(__name__)

TIMEZONE = "Africa/Bamako"
DISPATCH_INTERVAL = 1.0  # seconds between outbox passes
JOB_TABLE = "apscheduler_jobs"

# Job name -> what it runs, in this process (see run_job).
_JOBS: dict[str, Callable[[], Any]] = {}


def run_job(name: str) -> Any:
    """What every scheduled job calls: stored jobs name their work, the process supplies it."""
    call = _JOBS.get(name)
    if call is None:
        log.warning("scheduled job %s has no work in this process: skipped", name)
        return None
    return call()


# --- the worker -----------------------------------------------------------------------------------


# Trigger arguments a module's job may give (interval: seconds/minutes/hours; cron: the rest).
TRIGGER_ARGS = ("seconds", "minutes", "hours", "second", "minute", "hour", "day", "day_of_week")


class Worker:
    """Owns the scheduler; ``start(background=False)`` blocks until a signal stops it."""

    def __init__(self, runtime: Any, *, lease_seconds: float = LEASE_SECONDS) -> None:
        self.runtime = runtime
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = lease_seconds
        self.scheduler = BackgroundScheduler(
            timezone=TIMEZONE,
            jobstores={
                "default": MemoryJobStore(),
                "database": SQLAlchemyJobStore(engine=runtime.engine, tablename=JOB_TABLE),
            },
        )
        # One dispatcher for the life of the process: it holds the rate-limit buckets.
        self.dispatcher_name = DISPATCHER_PREFIX + self.holder.rsplit(":", 1)[-1]
        self.dispatcher = Dispatcher(
            runtime, name=self.dispatcher_name, pace_seconds=DISPATCH_INTERVAL
        )
        self._stop = threading.Event()
        self._keeper: threading.Thread | None = None
        self._sender: threading.Thread | None = None
        self.leader = threading.Event()

    # -- jobs -----------------------------------------------------------------------------------

    def _specs(self) -> list[dict[str, Any]]:
        """Every job as ``{id, call, store, trigger, trigger_args, misfire_grace_time}``."""
        from citoyen.services import callbacks, media, queues, retention, trial
        from citoyen.services.bulletin import jobs as bulletin_jobs
        from citoyen.services.prompts import phone
        from citoyen.services.surveys import jobs as survey_jobs
        from citoyen.services.surveys import surveys_for

        runtime = self.runtime
        specs: list[dict[str, Any]] = [
            {
                "id": "expire_conversations",
                "call": lambda: expire_conversations(runtime),
                "trigger": "interval",
                "trigger_args": {"minutes": 1},
                "misfire_grace_time": 30,
            },
        ]
        for job in [
            *media.scheduled_jobs(runtime),
            *queues.scheduled_jobs(runtime),
            *phone.scheduled_jobs(runtime),
            *retention.scheduled_jobs(runtime),
            *bulletin_jobs.scheduled_jobs(runtime),
            *trial.scheduled_jobs(runtime),
            *callbacks.scheduled_jobs(runtime),
        ]:
            func, args, kwargs = job["func"], job.get("args", []), job.get("kwargs", {})
            trigger_args = {k: job[k] for k in TRIGGER_ARGS if k in job}
            specs.append(
                {
                    "id": job["id"],
                    "call": (lambda f=func, a=args, k=kwargs: f(*a, **k)),
                    "trigger": job["trigger"],
                    "trigger_args": trigger_args,
                    "misfire_grace_time": job.get("misfire_grace_time", 30),
                }
            )
        specs += survey_jobs.job_specs(runtime, surveys_for(runtime))
        return specs

    def _register(self) -> None:
        """Reconcile the scheduler's jobs with the configuration (see the module docstring)."""
        wanted: set[str] = set()
        for spec in self._specs():
            job_id = spec["id"]
            wanted.add(job_id)
            _JOBS[job_id] = spec["call"]
            store = spec.get("store", "default")
            kwargs: dict[str, Any] = {
                "id": job_id,
                "args": [job_id],
                "jobstore": "database" if store == "database" else "default",
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": spec["misfire_grace_time"],
                "replace_existing": True,
            }
            trigger = spec["trigger"]
            existing = self.scheduler.get_job(job_id)
            if (
                existing is not None
                and not isinstance(trigger, str)
                and repr(existing.trigger) == repr(trigger)
                and existing.misfire_grace_time == spec["misfire_grace_time"]
            ):
                continue  # unchanged: keep its pending firing
            self.scheduler.add_job(run_job, trigger, **spec.get("trigger_args", {}), **kwargs)
        for job in self.scheduler.get_jobs(jobstore="database"):
            if job.id not in wanted:
                log.info("scheduled job %s is no longer configured: removed", job.id)
                job.remove()

    # -- leadership -----------------------------------------------------------------------------

    def _become_leader(self) -> None:
        if self.scheduler.state == STATE_STOPPED:  # the first time
            self.scheduler.start(paused=True)
            self._register()
        self.scheduler.resume()
        self.leader.set()
        jobs = ", ".join(job.id for job in self.scheduler.get_jobs())
        log.info("worker %s holds the scheduler lease; jobs: %s", self.holder, jobs)

    def _step_down(self) -> None:
        if self.scheduler.running:
            self.scheduler.pause()
        self.leader.clear()
        log.warning("worker %s lost the scheduler lease: scheduling paused", self.holder)

    def _keep_lease(self) -> None:
        """Take the lease when free, renew it while held, pause when it is lost."""
        interval = self.lease_seconds / 3
        while not self._stop.is_set():
            held = hold_lease(self.runtime.engine, self.holder, seconds=self.lease_seconds)
            if held and not self.leader.is_set():
                self._become_leader()
            elif not held and self.leader.is_set():
                self._step_down()
            elif not held:
                log.debug("worker %s on standby: another worker schedules", self.holder)
            self._stop.wait(interval)

    # -- sending --------------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        """Send the outbox every second, leader or standby (see the module docstring)."""
        registered_at: float | None = None
        forgotten = False
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if not forgotten:
                    forget_dead_dispatchers(self.runtime.engine, self.dispatcher_name)
                    forgotten = True
                if registered_at is None or time.monotonic() - registered_at >= (
                    self.lease_seconds / 3
                ):
                    alive = register_dispatcher(
                        self.runtime.engine,
                        self.dispatcher_name,
                        seconds=self.lease_seconds,
                        holder=self.holder,
                    )
                    self.dispatcher.set_share(alive)
                    registered_at = time.monotonic()
                self.dispatcher.run_once()
                spool.replay(self.runtime)  # inbound the web kept while the database was down
            except Exception:
                log.exception("outbox dispatch pass failed; next pass in a second")
            # A pass every second from the start of the last one, so that a pass of slow sends
            # does not lower the rate (the buckets refill by the second).
            self._stop.wait(max(0.0, DISPATCH_INTERVAL - (time.monotonic() - started)))
        self.dispatcher.close()

    def start(self, background: bool) -> None:
        self._specs()  # configuration problems stop the worker now, not at the first firing
        self._keeper = threading.Thread(
            target=self._keep_lease, name="scheduler-lease", daemon=True
        )
        self._keeper.start()
        self._sender = threading.Thread(
            target=self._dispatch_loop, name="outbox-dispatch", daemon=True
        )
        self._sender.start()
        log.info("worker started: %s (scheduler timezone %s)", self.holder, TIMEZONE)
        if background:
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self._stop.set())
        self._stop.wait()
        self.shutdown()

    def shutdown(self) -> None:
        self._stop.set()
        for thread in (self._keeper, self._sender):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=5)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.leader.is_set():
            release_lease(self.runtime.engine, self.holder)
            self.leader.clear()
        if self._sender is not None:
            release_lease(self.runtime.engine, self.dispatcher_name, name=self.dispatcher_name)
        log.info("worker stopped")
