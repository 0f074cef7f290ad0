"""Inbound SMS webhook end to end against a bare baseline, each served by gunicorn with the
Procfile's workers (budget: p99 under 50 ms, timed from the schedule, at 50 messages a second).

- ``/twilio/sms``: the real app — twilio signature check, MessageSid dedupe, contact, engine
  step, persistence, TwiML;
- ``/bench/baseline``: a separate minimal Flask app (``bench/baseline_app.py``) that checks the
  same signature and inserts one row, on the same database, served by its own gunicorn with the
  same workers.

The load comes from separate processes (``multiprocessing``), one new connection per request (a
sync gunicorn worker closes it anyway). Each request is signed with twilio's own
``RequestValidator``; every sender has its own From number and walks a report conversation
(keyword, language, category, places, danger, description, anonymity, consent) with a fresh
MessageSid per message, so the webhook does the work of real conversations. A sender's messages
are sent in order by one client process. The load processes sign and encode their requests
before the clock starts and send them as raw bytes on a socket, so that what they spend during
the run (and take from the server) is little.

For each route: the maximum throughput (closed loop, ``--clients`` concurrent senders), in
``--rounds`` alternated runs (baseline, webhook, ...; the median round's ratio is printed), then
the latency at ``--rate`` messages a second (open loop: each send has its due time on a fixed
schedule, and its latency is counted from that due time, so a sender held up by a slow answer
counts the wait of the sends behind it). PostgreSQL runs as a deployment runs it, autovacuum on:
when the server of ``--pg-admin`` has it off, a private server is started for the run
(``common.deployed_postgres``). Run on SQLite and on PostgreSQL (a database
``citoyen_bench_sms`` is created and dropped afterwards)::

    .venv/bin/python bench/webhook_sms.py [--db sqlite postgresql] [--workers 2] [--seconds 10]
        [--rounds 3] [--rate 50]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import multiprocessing as mp
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from common import (
    PG_ADMIN,
    SERVER_TIME,
    ServerTimer,
    deployed_postgres,
    machine_line,
    print_worker_rss,
    throwaway_database,
)
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_URL = "https://bench.citoyen.example"
TOKEN = "bench-auth-token-0123456789abcdef"
PG_DB = "citoyen_bench_sms"
# One report conversation in French; a wrong answer is simply asked again, which is real too.
CONVERSATION = [
    "SIGNALER",
    "1",
    "2",
    "1",
    "1",
    "1",
    "2",
    "Des hommes armés ont volé des motos près du marché hier soir",
    "1",
    "1",
]
BASELINE_TABLE = "bench_baseline"
# A request to send: (label, path, form body, X-Twilio-Signature).
Request = tuple[str, str, str, str]
# Per client process: (client index, sender base) -> endless requests (a picklable callable).
Source = Callable[[int, int], Iterator[Request]]
# Requests a closed-loop client signs ahead, per second of the run: above what one client has
# been seen to send (some 250 a second with 8 clients on 2 cores).
MAX_RATE = 500


# --------------------------------------------------------------------------- server side
def bench_app():  # type: ignore[no-untyped-def]
    """What gunicorn serves for the webhook: the real app, timed."""
    from citoyen.web import create_app

    app = create_app()
    app.wsgi_app = ServerTimer(app.wsgi_app)  # type: ignore[method-assign]
    return app


def prepare_database(url: str, instance: Path) -> None:
    from citoyen.config import Settings
    from citoyen.runtime import Runtime
    from citoyen.services.setup import ensure_ready

    runtime = Runtime(Settings(database_url=url, instance_dir=instance, public_url=PUBLIC_URL))
    ensure_ready(runtime)
    with runtime.engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE {BASELINE_TABLE} (id INTEGER PRIMARY KEY "
                + ("AUTOINCREMENT" if url.startswith("sqlite") else "GENERATED ALWAYS AS IDENTITY")
                + ", sid VARCHAR(64) UNIQUE NOT NULL, sender VARCHAR(40) NOT NULL, body TEXT)"
            )
        )
    runtime.engine.dispose()


def server_env(url: str, instance: Path) -> dict[str, str]:
    """The settings the served app reads: this database, the bench token, no inbound limit."""
    return {
        "CITOYEN_DATABASE_URL": url,
        "CITOYEN_INSTANCE_DIR": str(instance),
        "CITOYEN_PUBLIC_URL": PUBLIC_URL,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "CITOYEN_INBOUND_LIMIT": "1000",
    }


def start_server(
    url: str, instance: Path, workers: int, port: int, app: str = "webhook_sms:bench_app()"
) -> subprocess.Popen[bytes]:
    """gunicorn serving ``app`` (a module of bench/ and its factory) on ``url``, once healthy."""
    env = {**os.environ, **server_env(url, instance)}
    gunicorn = Path(sys.executable).with_name("gunicorn")
    proc = subprocess.Popen(
        [
            str(gunicorn),
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--pythonpath",
            str(ROOT / "bench"),
            "--log-level",
            "error",
            app,
        ],
        env=env,
        cwd=ROOT,
        stderr=open(instance / "gunicorn.log", "wb"),  # noqa: SIM115 - lives as long as the server
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"gunicorn did not start; see {instance / 'gunicorn.log'}")


# --------------------------------------------------------------------------- load side
def _messages(path: str, client: int, sender_base: int) -> Iterator[Request]:
    """Endless signed requests of conversations owned by this client."""
    validator = RequestValidator(TOKEN)
    url = PUBLIC_URL + path
    n = 0
    while True:
        sender = f"+2237{sender_base + client * 10_000 + n:07d}"
        for i, text in enumerate(CONVERSATION):
            params = {
                "MessageSid": "SM" + uuid.uuid4().hex,
                "AccountSid": "AC" + "0" * 32,
                "From": sender,
                "To": "+22370000000",
                "Body": text,
            }
            yield (
                "report" if i == len(CONVERSATION) - 1 else "sms",
                path,
                urllib.parse.urlencode(params),
                validator.compute_signature(url, params),
            )
        n += 1


def _wire(port: int, request: Request) -> tuple[str, bytes]:
    """``(label, the HTTP request's bytes)``, built before the clock starts."""
    label, path, body, signature = request
    data = body.encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(data)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return label, head.encode() + data


_SERVER_TIME_HEADER = SERVER_TIME.lower().encode() + b":"


def _post(port: int, wire: bytes) -> tuple[bool, float | None]:
    """One request on a new connection (read to the end; a sync gunicorn worker closes it):
    (answered 200, server time from SERVER_TIME). Raw bytes on a socket, not http.client: the
    load processes share the server's cores, and every microsecond they spend is taken from it."""
    chunks = []
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(wire)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError:
        return False, None
    head = b"".join(chunks).split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    server = None
    for line in head[1:]:
        if line.lower().startswith(_SERVER_TIME_HEADER):
            server = float(line.split(b":", 1)[1])
    return head[0].split(b" ", 2)[1:2] == [b"200"], server


def _client(
    port: int,
    source: Source,
    client: int,
    sender_base: int,
    seconds: float,
    interval: float | None,
    phase: float,
    start: Any,
    out: mp.Queue,
) -> None:
    """Send for ``seconds``; closed loop when ``interval`` is None, else one send per interval,
    ``phase`` intervals after the start (the clients' phases spread their sends evenly). Paced,
    a send's latency counts from its due time, not from when it went out: a send held up behind
    a slow answer is late, and its wait is part of what the sender sees.

    The requests are signed and encoded before the start (as many as the run can use at
    :data:`MAX_RATE`; more are made on the way only past that). Puts ``(samples, errors,
    elapsed, finished)``; a sample is ``(label, latency s, server ms or None)``, and
    ``finished`` holds when each sample's answer came, in seconds from the start.
    """
    gen = source(client, sender_base)
    budget = int(seconds / interval) + 2 if interval else int(seconds * MAX_RATE)
    ready = [_wire(port, request) for request in itertools.islice(gen, budget)]
    samples: list[tuple[str, float, float | None]] = []
    finished: list[float] = []
    errors = 0
    start.wait()  # every client has its requests ready
    t0 = time.perf_counter()
    end = t0 + seconds
    i = 0
    while True:
        if interval is not None:
            due = t0 + (i + phase) * interval
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
        if time.perf_counter() >= end:
            break
        label, wire = ready[i] if i < len(ready) else _wire(port, next(gen))
        sent = time.perf_counter()
        if interval is not None:
            sent = t0 + (i + phase) * interval  # the schedule, however late the send went out
        ok, server_ms = _post(port, wire)
        done = time.perf_counter()
        samples.append((label, done - sent, server_ms))
        finished.append(done - t0)
        errors += not ok
        i += 1
    out.put((samples, errors, time.perf_counter() - t0, finished))


def run_load(
    port: int, source: Source, clients: int, seconds: float, rate: float | None, sender_base: int
) -> dict[str, Any]:
    """``clients`` processes sending ``source``'s requests; totals, percentiles and samples."""
    out: mp.Queue = mp.Queue()
    start = mp.Barrier(clients + 1)
    interval = clients / rate if rate else None
    procs = [
        mp.Process(
            target=_client,
            args=(port, source, c, sender_base, seconds, interval, c / clients, start, out),
        )
        for c in range(clients)
    ]
    for p in procs:
        p.start()
    start.wait()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    samples = [s for r in results for s in r[0]]
    latencies = sorted(s[1] for s in samples)
    errors = sum(r[1] for r in results)
    elapsed = max(r[2] for r in results)
    q = statistics.quantiles(latencies, n=100)
    server = sorted(s[2] for s in samples if s[2] is not None)
    qs = statistics.quantiles(server, n=100) if len(server) > 1 else [float("nan")] * 99
    # The message that completes a report (one in ten) does the most work: its own tail.
    by_minute: dict[int, list[float]] = {}
    for r in results:
        for sample, at in zip(r[0], r[3], strict=True):
            by_minute.setdefault(int(at // 60), []).append(sample[1] * 1000)
    report = sorted(s[2] for s in samples if s[0] == "report" and s[2] is not None)
    other = sorted(s[2] for s in samples if s[0] != "report" and s[2] is not None)
    return {
        "server_p50_ms": qs[49],
        "server_p99_ms": qs[98],
        "server_p99_report_ms": _p99(report),
        "server_p99_other_ms": _p99(other),
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "samples": samples,
        # Per whole minute of the run: (answers a second, p99 ms); the last, partial minute and
        # runs shorter than two minutes give none.
        "minutes": [
            (len(v) / 60, _p99(sorted(v)))
            for m, v in sorted(by_minute.items())
            if (m + 1) * 60 <= elapsed
        ]
        if elapsed >= 120
        else [],
    }


def print_minutes(result: dict[str, Any]) -> None:
    """The run minute by minute, and the last full minute's throughput against the first's:
    a database slowing down as dead rows pile up shows here, not in the run's totals."""
    minutes = result["minutes"]
    if not minutes:
        return
    print("  minute  req/s  p99 ms")
    for m, (rps, p99) in enumerate(minutes, 1):
        print(f"  {m:6d} {rps:6.1f} {p99:7.1f}")
    first, last = minutes[0][0], minutes[-1][0]
    print(f"  last minute / first: {last / first:.2f}")


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else float("nan")


def count_rows(url: str) -> tuple[int, int, int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        baseline = conn.execute(sa.text(f"SELECT count(*) FROM {BASELINE_TABLE}")).scalar_one()
        inbound = conn.execute(sa.text("SELECT count(*) FROM reports")).scalar_one()
        messages = conn.execute(sa.text("SELECT count(*) FROM contacts")).scalar_one()
    engine.dispose()
    return baseline, inbound, messages


def bench_database(kind: str, args: argparse.Namespace, pg_admin: str) -> None:
    with throwaway_database(kind, pg_admin, args.pg_db) as (url, tmp):
        servers = []
        try:
            prepare_database(url, tmp)
            ports = {"webhook": args.port, "baseline": args.port + 1}
            servers.append(start_server(url, tmp, args.workers, ports["webhook"]))
            (tmp / "baseline").mkdir()
            servers.append(
                start_server(
                    url, tmp / "baseline", args.workers, ports["baseline"], "baseline_app:create()"
                )
            )
            print(f"\n== {kind}: gunicorn {args.workers} sync workers each, {args.clients} clients")
            routes = (("baseline", "/bench/baseline", 0), ("webhook", "/twilio/sms", 1_000_000))
            # Warm-up (imports, pools, caches) on both apps, then the measured runs.
            for name, path, _base in routes:
                run_load(ports[name], partial(_messages, path), args.clients, 2, None, 9_000_000)
            # Peaks alternate, baseline then webhook, ``--rounds`` times: on a shared machine
            # a slow spell then weighs on both sides of one round's ratio.
            peaks: dict[str, list[float]] = {"baseline": [], "webhook": []}
            ratios = []
            for r in range(args.rounds):
                for name, path, base in routes:
                    peak = run_load(
                        ports[name],
                        partial(_messages, path),
                        args.clients,
                        args.seconds if name == "webhook" else args.baseline_seconds,
                        None,
                        base + r * 100_000,
                    )
                    peaks[name].append(peak["rps"])
                    print(
                        f"round {r + 1} {name:9} max {peak['rps']:7.1f} req/s "
                        f"(p50 {peak['p50_ms']:.1f} ms, p99 {peak['p99_ms']:.1f} ms, "
                        f"{peak['errors']} errors of {peak['requests']})"
                    )
                    print_minutes(peak)
                ratios.append(peaks["webhook"][-1] / peaks["baseline"][-1])
            for name, path, base in routes:
                paced = run_load(
                    ports[name],
                    partial(_messages, path),
                    args.clients,
                    args.paced_seconds if name == "webhook" else args.baseline_seconds,
                    args.rate,
                    base + 2_000_000,
                )
                print(
                    f"{name:9} at {paced['rps']:.1f} req/s (scheduled {args.rate:g}/s), "
                    f"from the schedule: p50 {paced['p50_ms']:.1f} ms, "
                    f"p99 {paced['p99_ms']:.1f} ms ({paced['errors']} errors of "
                    f"{paced['requests']}); in the app: p50 {paced['server_p50_ms']:.1f} ms, "
                    f"p99 {paced['server_p99_ms']:.1f} ms"
                    + (
                        f" (messages completing a report: p99 "
                        f"{paced['server_p99_report_ms']:.1f} ms, the others: "
                        f"{paced['server_p99_other_ms']:.1f} ms)"
                        if name == "webhook"
                        else ""
                    )
                )
                print_minutes(paced)
            print(
                f"ratio webhook/baseline at the peak: median {statistics.median(ratios):.2f} "
                f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)})"
            )
            print_worker_rss(servers[0].pid)
            baseline_rows, reports, contacts = count_rows(url)
            print(f"rows: {baseline_rows} baseline, {reports} reports, {contacts} contacts")
        finally:
            for server in servers:
                server.send_signal(signal.SIGTERM)
                server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--workers", type=int, default=2, help="per app (the Procfile's 2)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10, help="each run of the webhook")
    parser.add_argument(
        "--baseline-seconds", type=float, default=None, help="each run of the baseline (--seconds)"
    )
    parser.add_argument(
        "--paced-seconds", type=float, default=None, help="the webhook's paced run (--seconds)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternated peak runs per route")
    parser.add_argument("--rate", type=float, default=50, help="messages a second, paced run")
    parser.add_argument("--port", type=int, default=8917)
    parser.add_argument("--pg-admin", default=PG_ADMIN)
    parser.add_argument("--pg-db", default=PG_DB, help="a database name no one else uses")
    args = parser.parse_args()
    if args.baseline_seconds is None:
        args.baseline_seconds = args.seconds
    if args.paced_seconds is None:
        args.paced_seconds = args.seconds
    print(machine_line())
    for kind in args.db:
        if kind == "postgresql":
            with deployed_postgres(args.pg_admin) as pg_admin:
                bench_database(kind, args, pg_admin)
        else:
            bench_database(kind, args, args.pg_admin)


if __name__ == "__main__":
    main()
