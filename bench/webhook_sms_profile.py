"""Inbound SMS webhook in process: milliseconds and SQL statements per message, optionally profiled.

What ``bench/webhook_sms.py`` measures under gunicorn, without the HTTP server and the load
generator: the Flask test client posts signed ``/twilio/sms`` requests, each sender walking the
same report conversation (so one message in ten completes a report), and every statement the
database is sent is counted (``before_cursor_execute``; transaction control is not: SQLite's
BEGIN goes to the driver directly, and COMMITs are driver calls on both). CPU time is this process's (on PostgreSQL the server's is not in it): on a
busy machine it is steadier than the wall time. ``--profile`` adds a cProfile of the measured messages (sorted by
cumulative time)::

    .venv/bin/python bench/webhook_sms_profile.py [--db sqlite postgresql] [--messages 1000]
        [--profile] [--top 40]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import os
import pstats
import statistics
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa
from common import PG_ADMIN, machine_line, postgres_cpu_seconds, throwaway_database
from twilio.request_validator import RequestValidator
from webhook_sms import CONVERSATION, PUBLIC_URL, TOKEN, prepare_database, server_env

PG_DB = "citoyen_bench_sms_profile_inbound"


def _requests(
    count: int, first_sender: int, path: str = "/twilio/sms"
) -> list[tuple[dict[str, str], str]]:
    """``count`` signed forms: whole conversations, one sender each, fresh MessageSids."""
    validator = RequestValidator(TOKEN)
    url = PUBLIC_URL + path
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
    from citoyen.web import create_app

    prepare_database(url, instance)
    runtime = Runtime(Settings())
    import baseline_app

    clients = {
        "/twilio/sms": create_app(runtime=runtime).test_client(),
        # The separate minimal app (bench/baseline_app.py), as under gunicorn.
        "/bench/baseline": baseline_app.create().test_client(),
    }
    statements: Counter[str] = Counter()

    def count(_conn, _cursor, statement, *_rest) -> None:  # type: ignore[no-untyped-def]
        statements[statement.split(None, 1)[0].upper()] += 1

    # CPU seconds spent on each position of the conversation (one message in ten is a report).
    by_step = [0.0] * len(CONVERSATION)

    def post(batch: list[tuple[dict[str, str], str]], path: str = "/twilio/sms") -> float:
        """Send ``batch``; the CPU seconds it took."""
        c0 = time.process_time()
        for i, (params, signature) in enumerate(batch):
            c = time.process_time()
            resp = clients[path].post(path, data=params, headers={"X-Twilio-Signature": signature})
            if path == "/twilio/sms":
                by_step[i % len(CONVERSATION)] += time.process_time() - c
            assert resp.status_code == 200, resp.data
        return time.process_time() - c0

    # Warm-up (imports, caches, pool) on both routes.
    post(_requests(args.warmup, 8_000_000, "/bench/baseline"), "/bench/baseline")
    post(_requests(args.warmup, 9_000_000))
    by_step[:] = [0.0] * len(CONVERSATION)
    # The baseline app in the same process is the server-side share of the throughput ratio.
    # Rounds alternate a baseline batch and a webhook batch of the same size, so that a slower
    # spell of a shared machine weighs on both sides of a round's ratio.
    size = max(
        len(CONVERSATION), args.messages // args.rounds // len(CONVERSATION) * len(CONVERSATION)
    )
    rounds: list[tuple[float, float]] = []  # (baseline, webhook) CPU seconds per message
    # On PostgreSQL, the server's CPU seconds per message of the same batches (all postgres
    # processes: nothing else should use the server meanwhile).
    server_rounds: list[tuple[float, float]] = []

    def server_cpu() -> float:
        seconds = postgres_cpu_seconds() if kind == "postgresql" else None
        return float("nan") if seconds is None else seconds

    profiler = cProfile.Profile() if args.profile else None
    elapsed = cpu = 0.0
    n = 0
    for r in range(args.rounds):
        base = base_server = float("nan")
        if args.only != "webhook":
            s0 = server_cpu()
            base = post(_requests(size, 7_000_000 + r * size, "/bench/baseline"), "/bench/baseline")
            base_server = server_cpu() - s0
        if args.only == "baseline":
            rounds.append((base / size, float("nan")))
            continue
        batch = _requests(size, r * size)
        sa.event.listen(runtime.engine, "before_cursor_execute", count)
        t0, c0, s0 = time.perf_counter(), time.process_time(), server_cpu()
        if profiler is not None:
            profiler.enable()
        post(batch)
        server_rounds.append((base_server / size, (server_cpu() - s0) / size))
        if profiler is not None:
            profiler.disable()
        elapsed += time.perf_counter() - t0
        spent = time.process_time() - c0
        sa.event.remove(runtime.engine, "before_cursor_execute", count)
        cpu += spent
        n += size
        rounds.append((base / size, spent / size))
    if args.only == "baseline":
        print(f"{kind}: baseline route only, {min(b for b, _ in rounds) * 1000:.2f} ms CPU/request")
        runtime.engine.dispose()
        return
    with runtime.engine.connect() as conn:
        reports = conn.execute(sa.text("SELECT count(*) FROM reports")).scalar_one()
    total = sum(statements.values())
    print(
        f"{kind}: {n} messages, {elapsed * 1000 / n:.2f} ms/message wall, "
        f"{cpu * 1000 / n:.2f} ms CPU{' (under cProfile)' if profiler else ''}, {total / n:.2f} statements/message "
        f"({', '.join(f'{k} {v / n:.2f}' for k, v in statements.most_common())}); "
        f"{reports} reports"
    )
    ratios = sorted(b / w for b, w in rounds)
    per_step = [t * 1000 * len(CONVERSATION) / n for t in by_step]
    print(
        f"  {len(rounds)} rounds of {size}: baseline route min {min(b for b, _ in rounds) * 1000:.2f} "
        f"ms CPU/request, webhook min {min(w for _, w in rounds) * 1000:.2f} ms; in-process "
        f"ratio median {statistics.median(ratios):.3f} (rounds {ratios[0]:.3f}-{ratios[-1]:.3f})"
    )
    if kind == "postgresql" and not any(map(math.isnan, server_rounds[0])):
        both = sorted(
            (b + sb) / (w + sw) for (b, w), (sb, sw) in zip(rounds, server_rounds, strict=True)
        )
        print(
            "  PostgreSQL server CPU ms/request (its processes, same batches): baseline median "
            f"{statistics.median(sb for sb, _ in server_rounds) * 1000:.2f}, webhook median "
            f"{statistics.median(sw for _, sw in server_rounds) * 1000:.2f}; ratio of this "
            f"process's and the server's CPU together: median {statistics.median(both):.3f} "
            f"(rounds {both[0]:.3f}-{both[-1]:.3f})"
        )
    print(
        "  CPU ms by conversation step: "
        + ", ".join(f"{i + 1}:{t:.2f}" for i, t in enumerate(per_step))
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
    parser.add_argument(
        "--rounds", type=int, default=5, help="baseline/webhook batches, alternated"
    )
    parser.add_argument(
        "--only",
        choices=["baseline", "webhook"],
        help="send to one route only (to count instructions under valgrind, bench/README.md)",
    )
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
