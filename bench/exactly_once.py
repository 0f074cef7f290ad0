"""Exactly once at scale, many processes on one database (issues 8 and 25): gunicorn with several
workers and two ``citoyen worker`` processes on a fresh SQLite or PostgreSQL database, 10,000
conversations over Twilio SMS, Telegram and SMS Gateway for Android phones, every webhook
delivered 1-3 times at once; exits non-zero on any violation of exactly-once. The driver and the
checks are tests/scale/multiprocess.py (shared with the CI test tests/scale/test_exactly_once.py,
which runs 100 on each database).

    .venv/bin/python bench/exactly_once.py [--db sqlite|postgresql] [--conversations 10000]
        [--threads 16] [--web-workers 4] [--sms-provider android-gateway|twilio]
        [--pg-admin URL] [--keep-logs DIR]

On PostgreSQL a database ``citoyen_bench_multiprocess`` is created on ``--pg-admin``'s server
and dropped afterwards; on SQLite the database is a file in the deployment's instance folder, in
a temporary folder removed afterwards. ``--sms-provider twilio`` runs the deployment with Twilio
as the SMS provider (no gateway conversations; the outbox's SMS go to the fake Twilio). The
processes' logs are kept in ``--keep-logs`` when given.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from pathlib import Path

from common import PG_ADMIN, machine_line, throwaway_database
from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.scale.multiprocess import GATEWAY, conversations, run, sqlite_url, total_requests

PG_DB = "citoyen_bench_multiprocess"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=16, help="concurrent conversation drivers")
    parser.add_argument("--web-workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--sms-provider", choices=[GATEWAY, "twilio"], default=GATEWAY)
    parser.add_argument("--drain-timeout", type=float, default=1800.0)
    parser.add_argument("--pg-admin", default=PG_ADMIN)
    parser.add_argument("--keep-logs", type=Path, help="copy the processes' logs here")
    args = parser.parse_args()
    # Stopped early (Ctrl-C, or SIGTERM when run in the background): still stop the processes
    # and drop the database.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))
    print(machine_line(), flush=True)
    total = total_requests(conversations(args.conversations, 8, args.sms_provider))
    started = time.perf_counter()
    with throwaway_database(args.db, args.pg_admin, PG_DB) as (url, tmp), Progress() as bar:
        instance = tmp / "instance"
        if args.db == "sqlite":
            url = sqlite_url(instance)  # where a one-machine deployment keeps it
        drive = bar.add_task("webhooks", total=total)
        drain = bar.add_task("outbox left", total=None)
        outcome = run(
            url,
            instance,
            conversations_count=args.conversations,
            threads=args.threads,
            web_workers=args.web_workers,
            sms_provider=args.sms_provider,
            drain_timeout=args.drain_timeout,
            on_drive=lambda n: bar.advance(drive, n),
            on_drain=lambda left: bar.update(drain, description=f"outbox left: {left}"),
        )
        if args.keep_logs:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for log in instance.glob("*.log"):
                shutil.copy(log, args.keep_logs / log.name)
    print(f"total {time.perf_counter() - started:.0f} s")
    for key, value in outcome.summary.items():
        print(f"{key:>48}: {value}")
    for violation in outcome.violations:
        print(f"VIOLATION: {violation}")
    sys.exit(1 if outcome.violations else 0)


if __name__ == "__main__":
    main()
