"""Multi-process correctness on PostgreSQL at scale (issue 8): gunicorn with several workers and
two ``citoyen worker`` processes on one fresh database, 10,000 conversations over SMS and
Telegram, every webhook delivered 1-3 times at once; exits non-zero on any violation of
exactly-once. The driver and the checks are tests/scale/multiprocess.py (shared with the CI
test tests/scale/test_multiprocess_pg.py, which runs 100).

    .venv/bin/python bench/multiprocess_pg.py [--conversations 10000] [--threads 16]
        [--web-workers 4] [--pg-admin URL]

A database ``citoyen_bench_multiprocess`` is created on ``--pg-admin``'s server and dropped
afterwards; the processes' logs are kept in ``--keep-logs`` when given.
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

from tests.scale.multiprocess import conversations, run, total_requests

PG_DB = "citoyen_bench_multiprocess"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=16, help="concurrent conversation drivers")
    parser.add_argument("--web-workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--drain-timeout", type=float, default=1800.0)
    parser.add_argument("--pg-admin", default=PG_ADMIN)
    parser.add_argument("--keep-logs", type=Path, help="copy the processes' logs here")
    args = parser.parse_args()
    # Stopped early (Ctrl-C, or SIGTERM when run in the background): still stop the processes
    # and drop the database.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))
    print(machine_line(), flush=True)
    total = total_requests(conversations(args.conversations, 8))
    started = time.perf_counter()
    with throwaway_database("postgresql", args.pg_admin, PG_DB) as (url, tmp), Progress() as bar:
        drive = bar.add_task("webhooks", total=total)
        drain = bar.add_task("outbox left", total=None)
        outcome = run(
            url,
            tmp / "instance",
            conversations_count=args.conversations,
            threads=args.threads,
            web_workers=args.web_workers,
            drain_timeout=args.drain_timeout,
            on_drive=lambda n: bar.advance(drive, n),
            on_drain=lambda left: bar.update(drain, description=f"outbox left: {left}"),
        )
        if args.keep_logs:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for log in (tmp / "instance").glob("*.log"):
                shutil.copy(log, args.keep_logs / log.name)
    print(f"total {time.perf_counter() - started:.0f} s")
    for key, value in outcome.summary.items():
        print(f"{key:>48}: {value}")
    for violation in outcome.violations:
        print(f"VIOLATION: {violation}")
    sys.exit(1 if outcome.violations else 0)


if __name__ == "__main__":
    main()
