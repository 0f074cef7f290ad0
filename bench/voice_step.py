"""Voice step: server-side time of one TwiML answer (budget: p99 < 50 ms at 20 steps a second).

The real signed voice webhooks walk whole report calls, one CallSid and caller number per call:
``POST /twilio/voice`` (the call comes in, the language menu), then ``/twilio/voice/step?n=K``
with the keys of each answer and ``/twilio/voice/recorded?n=K`` for the description, until the
report is made and the call hangs up. Half of the calls are in French (text-to-speech), half in
Bambara (no text-to-speech and, in the shipped locales, no recordings: every prompt goes through
the prompt library lookup, then the French fallback). Each request is signed with twilio's own
``RequestValidator``.

Server-side time is the time inside the WSGI app (a middleware around the Flask app, from the
call to the last byte of the body), per step kind:

1. in process: the Flask test client, one request at a time (``--calls`` calls), with the CPU
   time of the request and the SQL statements it sent;
2. under gunicorn (the Procfile's 2 sync workers, like ``webhook_sms.py``): clients walk calls
   in a closed loop for ``--seconds``, then at ``--rate`` steps a second, each latency counted
   from its due time on the schedule; the middleware's time comes back in a response header, and
   the client's own latency is reported next to it. After the load, each worker's RSS.

Both on SQLite and PostgreSQL (database ``citoyen_bench_voice``, created and dropped; a private
server with autovacuum on when ``--pg-admin``'s has it off, ``common.deployed_postgres``)::

    .venv/bin/python bench/voice_step.py [--db sqlite postgresql] [--calls 200] [--seconds 10]
        [--rate 20]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import signal
import statistics
import urllib.parse
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from common import (
    PG_ADMIN,
    ServerTimer,
    deployed_postgres,
    machine_line,
    print_worker_rss,
    throwaway_database,
)
from twilio.request_validator import RequestValidator
from webhook_sms import (
    PUBLIC_URL,
    TOKEN,
    Request,
    prepare_database,
    print_minutes,
    run_load,
    start_server,
)

ACCOUNT = "AC" + "0" * 32
# (step kind, keys) of a whole report call; None: no keys (the call itself, the recording).
CALLS = {
    "fr": [
        ("start", None),
        ("language", "1"),
        ("intent", "1"),  # report a concern
        ("category", "2"),  # theft
        ("place", "2"),  # Ségou
        ("place", "1"),  # cercle Niono
        ("place", "2"),  # commune Pogo
        ("danger", "2"),
        ("record", None),
        ("anonymity", "1"),
        ("consent", "2"),  # the report is made; the reference is read out
    ],
    "bm": [
        ("start", None),
        ("language", "2"),
        ("intent", "1"),
        ("category", "2"),
        ("place", "1"),  # Bamako
        ("place", "2"),  # Commune II
        ("danger", "1"),
        ("record", None),
        ("anonymity", "2"),
        ("consent", "1"),
    ],
}
KINDS = ["start", "language", "intent", "category", "place", "danger", "record", "anonymity"]
KINDS.append("consent")


def call_requests(number: int) -> Iterator[tuple[str, str, dict[str, str]]]:
    """``(kind, path, form)`` of call ``number``: French for even numbers, Bambara for odd."""
    sid = "CA" + uuid.uuid4().hex
    caller = f"+2236{number:07d}"
    base = {
        "CallSid": sid,
        "AccountSid": ACCOUNT,
        "From": caller,
        "To": "+22320000000",
        "Direction": "inbound",
    }
    for n, (kind, keys) in enumerate(CALLS["bm" if number % 2 else "fr"]):
        if kind == "start":
            yield kind, "/twilio/voice", {**base, "CallStatus": "ringing"}
        elif kind == "record":
            rec = "RE" + uuid.uuid4().hex
            url = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/{rec}"
            form = {**base, "RecordingSid": rec, "RecordingUrl": url, "RecordingDuration": "9"}
            yield kind, f"/twilio/voice/recorded?n={n}", form
        else:
            yield kind, f"/twilio/voice/step?n={n}", {**base, "Digits": keys or ""}


def signed_calls(client: int, sender_base: int) -> Iterator[Request]:
    """Endless signed requests of this client's calls, in order (a ``webhook_sms`` source)."""
    validator = RequestValidator(TOKEN)
    number = sender_base + client * 100_000
    while True:
        for kind, path, form in call_requests(number):
            signature = validator.compute_signature(PUBLIC_URL + path, form)
            yield kind, path, urllib.parse.urlencode(form), signature
        number += 1


# --------------------------------------------------------------------------- server side
def bench_app():  # type: ignore[no-untyped-def]
    """What gunicorn serves: the real app, timed by :class:`ServerTimer`."""
    from citoyen.web import create_app

    app = create_app()
    app.wsgi_app = ServerTimer(app.wsgi_app)  # type: ignore[method-assign]
    return app


# --------------------------------------------------------------------------- figures
def percentiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    q = statistics.quantiles(values, n=100)
    return q[49], q[98]


def print_by_kind(samples: Iterable[tuple[str, float, float | None]]) -> None:
    """p50/p99 of server time (and client latency when measured) per step kind, then all."""
    server: dict[str, list[float]] = defaultdict(list)
    client: dict[str, list[float]] = defaultdict(list)
    for kind, latency, server_ms in samples:
        if server_ms is not None:
            server[kind].append(server_ms)
            server["all"].append(server_ms)
        if latency:
            client[kind].append(latency * 1000)
            client["all"].append(latency * 1000)
    print(f"  {'step':<10} {'n':>6} {'server p50':>11} {'p99':>7} {'client p50':>11} {'p99':>7}")
    for kind in [*KINDS, "all"]:
        s50, s99 = percentiles(server[kind])
        c50, c99 = percentiles(client[kind]) if client[kind] else (float("nan"),) * 2
        print(f"  {kind:<10} {len(server[kind]):6d} {s50:11.1f} {s99:7.1f} {c50:11.1f} {c99:7.1f}")


def in_process(url: str, instance: Path, calls: int, profile: Path | None) -> None:
    """Walk ``calls`` calls through the Flask test client: per step kind the server time, the
    CPU time of this process (the database server's own is not in it: a figure the rest of the
    machine's load barely moves) and the SQL statements sent."""
    from sqlalchemy import event

    from citoyen.config import Settings
    from citoyen.runtime import Runtime
    from citoyen.web import create_app

    settings = Settings(
        database_url=url,
        instance_dir=instance,
        public_url=PUBLIC_URL,
        twilio_auth_token=TOKEN,
        twilio_account_sid=ACCOUNT,
        inbound_limit=1000,
    )
    runtime = Runtime(settings)
    app = create_app(runtime=runtime)
    timer = ServerTimer(app.wsgi_app, keep=True)
    app.wsgi_app = timer  # type: ignore[method-assign]
    statements = [0]

    @event.listens_for(runtime.engine, "before_cursor_execute")
    def _count(*_args: Any) -> None:
        statements[0] += 1

    client = app.test_client()
    validator = RequestValidator(TOKEN)
    steps: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    profiler = cProfile.Profile() if profile else None
    for number in range(-20, calls):  # 20 warm-up calls (imports, caches, pools)
        for kind, path, form in call_requests(8_000_000 + number):
            headers = {"X-Twilio-Signature": validator.compute_signature(PUBLIC_URL + path, form)}
            if profiler and number >= 0:
                profiler.enable()
            before = statements[0]
            response = client.post(path, data=form, headers=headers)
            if profiler:
                profiler.disable()
            if response.status_code != 200:
                raise SystemExit(f"{path}: {response.status_code}")
            if number >= 0:
                _path, ms, cpu_ms = timer.samples[-1]
                for key in (kind, "all"):
                    steps[key].append((ms, cpu_ms, statements[0] - before))
    body = response.get_data(as_text=True)
    if "<Hangup" not in body:
        raise SystemExit(f"the last step did not end the call: {body[:300]}")
    print(f"in process (Flask test client), {calls} calls, {len(steps['all'])} steps:")
    print(f"  {'step':<10} {'n':>6} {'server p50':>11} {'p99':>7} {'CPU p50':>8} {'SQL':>5}")
    for kind in [*KINDS, "all"]:
        rows = steps[kind]
        p50, p99 = percentiles([r[0] for r in rows])
        cpu = statistics.median(r[1] for r in rows)
        sql = sum(r[2] for r in rows) / len(rows)
        print(f"  {kind:<10} {len(rows):6d} {p50:11.1f} {p99:7.1f} {cpu:8.2f} {sql:5.1f}")
    if profiler and profile:
        profiler.dump_stats(profile)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    runtime.engine.dispose()


def under_gunicorn(url: str, instance: Path, args: argparse.Namespace) -> None:
    server = start_server(url, instance, args.workers, args.port, app="voice_step:bench_app()")
    try:
        run_load(args.port, signed_calls, args.clients, 2, None, 9_000_000)  # warm-up
        peak = run_load(args.port, signed_calls, args.clients, args.peak_seconds, None, 1_000_000)
        print(
            f"gunicorn {args.workers} sync workers, {args.clients} clients, closed loop: "
            f"{peak['rps']:.1f} req/s, {peak['errors']} errors of {peak['requests']}"
        )
        print_by_kind(peak["samples"])
        print_minutes(peak)
        paced = run_load(args.port, signed_calls, args.clients, args.seconds, args.rate, 2_000_000)
        latencies = sorted(sample[1] * 1000 for sample in paced["samples"])
        print(
            f"at {paced['rps']:.1f} req/s (scheduled {args.rate:g}/s), {paced['errors']} errors "
            f"of {paced['requests']}; from the schedule: p50 {paced['p50_ms']:.1f} ms, "
            f"p99 {paced['p99_ms']:.1f} ms (max {latencies[-1]:.1f} ms)"
        )
        print_by_kind(paced["samples"])
        print_minutes(paced)
        print_worker_rss(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2, help="the Procfile's 2")
    parser.add_argument("--rate", type=float, default=20, help="steps a second, paced run")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10, help="the paced run")
    parser.add_argument(
        "--peak-seconds", type=float, default=None, help="the closed-loop run (--seconds)"
    )
    parser.add_argument("--port", type=int, default=8927)
    parser.add_argument("--pg-admin", default=PG_ADMIN)
    parser.add_argument("--pg-db", default="citoyen_bench_voice", help="throwaway database's name")
    parser.add_argument("--no-gunicorn", action="store_true")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile the in-process part")
    args = parser.parse_args()
    if args.peak_seconds is None:
        args.peak_seconds = args.seconds
    print(machine_line())
    for kind in args.db:
        with (
            (
                deployed_postgres(args.pg_admin)
                if kind == "postgresql"
                else nullcontext(args.pg_admin)
            ) as pg_admin,
            throwaway_database(kind, pg_admin, args.pg_db) as (url, tmp),
        ):
            print(f"\n== {kind}")
            prepare_database(url, tmp)
            in_process(url, tmp, args.calls, args.profile)
            if not args.no_gunicorn:
                under_gunicorn(url, tmp, args)


if __name__ == "__main__":
    main()
