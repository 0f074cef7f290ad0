"""Outbox dispatcher sends per second against a local fake Twilio answering in 50 ms.

For each rate (default 1, 10, 50, 100 per second) the SMS limit is set to it
(``CITOYEN_OUTBOX_RATE_SMS``), ``--seconds`` worth of SMS replies are queued, and one
:class:`Dispatcher` sends them through the real Twilio client (``TwilioSmsProvider``, its base URL
pointed at the fake) on the worker's cadence: a pass every second, from the start of the last.
The fake answers every ``POST .../Messages.json`` after ``--answer-ms`` and notes when it got
it. Reported: the sustained rate, ``(sent - burst) / (last - first)`` (the bucket starts full,
so the first second's burst is free), and the whole run's messages per second of wall time.
Target: at least 90 % of each rate up to what one process can do.

    .venv/bin/python bench/dispatch_rate.py [--rates 1 10 50 100] [--seconds 10] [--db sqlite]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from common import PG_ADMIN, throwaway_database

from citoyen.config import Settings
from citoyen.db import write_session
from citoyen.runtime import Runtime
from citoyen.services.contacts import get_or_create_contact
from citoyen.services.dispatch import Dispatcher
from citoyen.services.outbox import enqueue
from citoyen.services.setup import ensure_ready

PG_DB = "citoyen_bench_dispatch_rate"
CONTACTS = 200


class FakeTwilio(ThreadingHTTPServer):
    """Twilio's Messages API, answering after ``delay`` seconds; ``times`` of each request."""

    daemon_threads = True
    request_queue_size = 256  # the default 5 would drop the SYNs of a second of parallel sends

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.times: list[float] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: FakeTwilio

    def do_POST(self) -> None:  # the http.server interface
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(self.server.delay)
        with self.server.lock:
            self.server.times.append(time.monotonic())
            n = len(self.server.times)
        body = json.dumps({"sid": f"SM{n:032x}", "status": "queued"}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def fill(runtime: Runtime, messages: int) -> None:
    now = datetime.now(UTC)
    with write_session(runtime.engine) as session:
        ids = []
        for i in range(CONTACTS):
            contact, _ = get_or_create_contact(
                session, runtime.vault, f"tel:+2236{5_000_000 + i:07d}", now
            )
            session.flush()
            ids.append(contact.id)
        for i in range(messages):
            enqueue(
                session,
                channel="sms",
                idempotency_key=f"bench:{i}",
                body=f"Votre signalement {i:05d} est reçu. Merci.",
                contact_id=ids[i % CONTACTS],
                now=now,
            )


def run(kind: str, rate: float, args: argparse.Namespace) -> None:
    fake = FakeTwilio(args.answer_ms / 1000)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    messages = max(10, int(rate * args.seconds))
    with throwaway_database(kind, args.pg_admin, PG_DB) as (url, tmp):
        settings = Settings(
            database_url=url,
            instance_dir=tmp,
            twilio_account_sid="AC" + "0" * 32,
            twilio_auth_token="bench-token",
            twilio_from_number="+22370000000",
            twilio_api_url=f"http://127.0.0.1:{fake.server_port}",
            outbox_rate_sms=rate,
        )
        runtime = Runtime(settings)
        ensure_ready(runtime)
        fill(runtime, messages)
        dispatcher = Dispatcher(runtime, pace_seconds=1.0)  # as the worker's
        wall0 = time.monotonic()
        sent = 0
        while sent < messages and time.monotonic() - wall0 < args.seconds * 3 + 30:
            started = time.monotonic()
            sent += dispatcher.run_once().sent
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        wall = time.monotonic() - wall0
        dispatcher.close()
        runtime.engine.dispose()
    fake.shutdown()
    times = sorted(fake.times)
    burst = math.ceil(rate)
    sustained = (len(times) - burst) / (times[-1] - times[0]) if len(times) > burst else 0.0
    print(
        f"{kind:10} rate {rate:>5g}/s: {len(times)} sent in {wall:5.1f} s; sustained "
        f"{sustained:6.1f}/s = {sustained / rate:4.0%} of the rate"
        f" (whole run {len(times) / wall:.1f}/s)"
    )
    assert sent == messages == len(times), (sent, messages, len(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", nargs="+", default=["sqlite"])
    parser.add_argument("--rates", nargs="+", type=float, default=[1, 10, 50, 100])
    parser.add_argument("--seconds", type=float, default=10, help="seconds of sends per rate")
    parser.add_argument("--answer-ms", type=float, default=50)
    parser.add_argument("--pg-admin", default=PG_ADMIN)
    args = parser.parse_args()
    print(
        f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; fake Twilio answering in "
        f"{args.answer_ms:g} ms"
    )
    for kind in args.db:
        for rate in args.rates:
            run(kind, rate, args)


if __name__ == "__main__":
    main()
