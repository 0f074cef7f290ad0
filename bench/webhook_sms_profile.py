"""Inbound SMS webhook in process: milliseconds and SQL statements per message, optionally profiled.

What ``bench/webhook_sms.py`` measures under gunicorn, without the HTTP server and the load
generator: the Flask test client posts signed ``/twilio/sms`` requests, each sender walking the
same report conversation (so one message in ten completes a report), and every statement the
database is sent is counted (``before_cursor_execute``; BEGIN/COMMIT of SQLite are counted too,
they are round trips). CPU time is this process's (on PostgreSQL the server's is not in it): on a
busy machine it is steadier than the wall time. ``--profile`` adds a cProfile of the measured messages (sorted by
cumulative time)::

    .venv/bin/python bench/webhook_sms_profile.py [--db sqlite postgresql] [--messages 1000]
        [--profile] [--top 40]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa
from common import PG_ADMIN, machine_line, throwaway_database
from twilio.request_validator import RequestValidator
from webhook_sms import CONVERSATION, PUBLIC_URL, TOKEN, server_env

PG_DB = "citoyen_bench_sms_profile_inbound"


def _requests(count: int, first_sender: int) -> list[tuple[dict[str, str], str]]:
    """``count`` signed forms: whole conversations, one sender each, fresh MessageSids."""
    validator = RequestValidator(TOKEN)
    url = PUBLIC_URL + "/twilio/sms"
    out = []
    n = 0
    while len(out) < count:
        sender = f"+2237{first_sender + n:07d}"
        for i, text in enumerate(CONVERSATION):
            params = {
                "MessageSid": f"SM{first_sender + n:016d}{i:016d}",
                "AccountSid": "AC" + "0" * 32,
                "From": sender,
                "To": "+22370000000",
                "Body": text,
            }
            out.append((params, validator.compute_signature(url, params)))
        n += 1
    return out[:count]


def run(kind: str, url: str, instance: Path, args: argparse.Namespace) -> None:
    os.environ.update(server_env(url, instance))
    from citoyen.config import Settings
    from citoyen.runtime import Runtime
    from citoyen.services.setup import ensure_ready
    from citoyen.web import create_app

    runtime = Runtime(Settings())
    ensure_ready(runtime)
    app = create_app(runtime=runtime)
    client = app.test_client()
    statements: Counter[str] = Counter()

    def count(_conn, _cursor, statement, *_rest) -> None:  # type: ignore[no-untyped-def]
        statements[statement.split(None, 1)[0].upper()] += 1

    def post(batch: list[tuple[dict[str, str], str]]) -> None:
        for params, signature in batch:
            resp = client.post(
                "/twilio/sms", data=params, headers={"X-Twilio-Signature": signature}
            )
            assert resp.status_code == 200, resp.data

    post(_requests(args.warmup, 9_000_000))  # imports, caches, pool
    batch = _requests(args.messages, 0)
    sa.event.listen(runtime.engine, "before_cursor_execute", count)
    profiler = cProfile.Profile() if args.profile else None
    t0, c0 = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    post(batch)
    if profiler is not None:
        profiler.disable()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    sa.event.remove(runtime.engine, "before_cursor_execute", count)
    with runtime.engine.connect() as conn:
        reports = conn.execute(sa.text("SELECT count(*) FROM reports")).scalar_one()
    n = len(batch)
    total = sum(statements.values())
    print(
        f"{kind}: {n} messages, {elapsed * 1000 / n:.2f} ms/message wall, "
        f"{cpu * 1000 / n:.2f} ms CPU{' (under cProfile)' if profiler else ''}, {total / n:.2f} statements/message "
        f"({', '.join(f'{k} {v / n:.2f}' for k, v in statements.most_common())}); "
        f"{reports} reports"
    )
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        if args.profile_out:
            stats.dump_stats(args.profile_out)
        stats.sort_stats("cumulative").print_stats(args.top)
        print(out.getvalue())
    runtime.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--profile-out", help="also save the cProfile data to this file")
    parser.add_argument("--pg-admin", default=PG_ADMIN)
    parser.add_argument("--pg-db", default=PG_DB, help="the throwaway PostgreSQL database's name")
    args = parser.parse_args()
    print(machine_line())
    for kind in args.db:
        with throwaway_database(kind, args.pg_admin, args.pg_db) as (url, instance):
            run(kind, url, instance, args)


if __name__ == "__main__":
    main()
