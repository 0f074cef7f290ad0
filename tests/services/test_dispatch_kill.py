"""A `citoyen worker` killed with SIGKILL five times while it sends 1,000 SMS: none lost, the
duplicates within :func:`duplicate_bound` per crash, and the rows the dead worker held sent again
by its restarted self well within the heartbeat (30 s), not after their 120 s lease.

Real worker processes against a local fake Twilio (the real twilio client, pointed at it by
``CITOYEN_TWILIO_API_URL``) answering in 50 ms, at 100 SMS a second. PostgreSQL: the restarted
worker and this test share the database. About 30 seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.models import Outbox
from citoyen.runtime import Runtime
from citoyen.services.contacts import get_or_create_contact
from citoyen.services.dispatch import duplicate_bound
from citoyen.services.outbox import enqueue
from citoyen.services.setup import ensure_ready

MESSAGES = 1_000
RATE = 100.0
ANSWER_SECONDS = 0.05
KILLS = 5
# The provider call as the worker sees it: the fake's 50 ms plus waiting for a core, which its
# hundred sending threads do on a shared 2-core CI machine (load average 12 when this was
# written: 40-90 results of sends the fake had answered were still unwritten at a kill).
CALL_SECONDS = ANSWER_SECONDS + 0.45
HEARTBEAT_SECONDS = 30.0  # citoyen.services.leases.LEASE_SECONDS: a dispatcher's registration


class FakeTwilio(ThreadingHTTPServer):
    """Twilio's Messages API: notes each message's body and when it came, answers after 50 ms."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(self) -> None:
        self.received: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: FakeTwilio

    def do_POST(self) -> None:  # the http.server interface
        form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        time.sleep(ANSWER_SECONDS)
        with self.server.lock:
            self.server.received.append((time.monotonic(), form["Body"][0]))
            n = len(self.server.received)
        body = f'{{"sid": "SM{n:032x}", "status": "queued"}}'.encode()
        try:
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the worker was killed while waiting: the message counts as received

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def fake_twilio():
    server = FakeTwilio()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def _start_worker(settings, tmp_path: Path, api_url: str, n: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "CITOYEN_DATABASE_URL": settings.database_url,
        "CITOYEN_FLOWS_DIR": str(settings.flows_dir),
        "CITOYEN_LOCALES_DIR": str(settings.locales_dir),
        "CITOYEN_DATA_KEY": settings.data_key,
        "CITOYEN_SECRET_KEY": "test-secret",
        "CITOYEN_INSTANCE_DIR": str(tmp_path / "instance"),
        "CITOYEN_TWILIO_API_URL": api_url,
        "CITOYEN_OUTBOX_RATE_SMS": str(RATE),
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "kill-test-token",
        "TWILIO_FROM_NUMBER": "+22370000000",
    }
    env.pop("TELEGRAM_BOT_TOKEN", None)
    log = (tmp_path / f"worker{n}.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "citoyen.cli", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )


def _queue(runtime: Runtime) -> None:
    now = datetime.now(UTC)
    with write_session(runtime.engine) as session:
        contacts = []
        for i in range(50):
            contact, _ = get_or_create_contact(session, runtime.vault, f"tel:+2237640{i:04d}", now)
            session.flush()
            contacts.append(contact.id)
        for i in range(MESSAGES):
            enqueue(
                session,
                channel="sms",
                idempotency_key=f"kill:{i}",
                body=f"kill-test {i}",
                contact_id=contacts[i % len(contacts)],
                now=now,
            )


def _held(runtime: Runtime) -> set[str]:
    """The bodies of the rows a dead worker left in ``sending``."""
    with Session(runtime.engine) as session:
        return set(session.exec(select(Outbox.body).where(Outbox.status == "sending")).all())


def _sent_count(server: FakeTwilio) -> int:
    with server.lock:
        return len({body for _t, body in server.received})


def test_a_worker_killed_five_times_loses_nothing(
    settings, db_url: str, tmp_path: Path, fake_twilio: FakeTwilio
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("a killed worker and its restart share a server database (PostgreSQL)")
    runtime = Runtime(settings)
    ensure_ready(runtime)
    _queue(runtime)
    api_url = f"http://127.0.0.1:{fake_twilio.server_port}"

    restarts: list[tuple[float, set[str]]] = []  # (restart time, bodies held by the dead one)
    worker = _start_worker(settings, tmp_path, api_url, 0)
    try:
        for n in range(1, KILLS + 1):
            # Kill it mid-stream: once it has sent another ~120 messages.
            target = min(MESSAGES - 50, _sent_count(fake_twilio) + 120)
            deadline = time.monotonic() + 60
            while _sent_count(fake_twilio) < target and time.monotonic() < deadline:
                assert worker.poll() is None, (tmp_path / f"worker{n - 1}.log").read_text()
                time.sleep(0.02)
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            held = _held(runtime)
            worker = _start_worker(settings, tmp_path, api_url, n)
            restarts.append((time.monotonic(), held))
        deadline = time.monotonic() + 90
        while _sent_count(fake_twilio) < MESSAGES and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # the last results written
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()

    with fake_twilio.lock:
        received = list(fake_twilio.received)
    counts = Counter(body for _t, body in received)
    assert set(counts) == {f"kill-test {i}" for i in range(MESSAGES)}  # none lost
    duplicates = sum(c - 1 for c in counts.values())
    assert duplicates <= KILLS * duplicate_bound(RATE, CALL_SECONDS), duplicates
    with Session(runtime.engine) as session:
        statuses = Counter(session.exec(select(Outbox.status)).all())
    assert statuses == {"sent": MESSAGES}
    # What each dead worker held went out again soon after its restart, not after the lease.
    assert any(held for _at, held in restarts), "no kill caught a worker holding rows"
    for restarted_at, held in restarts:
        for body in held:
            again = [t for t, b in received if b == body and t >= restarted_at]
            assert again, body
            assert again[0] - restarted_at < HEARTBEAT_SECONDS / 3, (body, again[0] - restarted_at)
    print(
        f"{duplicates} duplicates over {KILLS} kills; held rows: {[len(h) for _a, h in restarts]}"
    )
