"""Outbox dispatcher against a fake provider: CPU time per message (target: < 1 ms).

Queues N SMS replies (default 20,000) to 1,000 contacts, then lets one :class:`Dispatcher` send
them all through a Sender that only records what it is given (no network), and reports the
process CPU time (``time.process_time``) and wall time per message. Rate limits are lifted for the
measurement (channel and per-recipient buckets empty): the figure is the dispatcher's own cost —
claim, decrypt the address, hand over, record the result — not the providers' pacing. The
database server's CPU (PostgreSQL backend) is not in the process figure; the wall time includes
it.

    .venv/bin/python bench/dispatch_cpu.py [--db sqlite postgresql] [--messages 20000]

PostgreSQL: a database ``citoyen_bench_dispatch`` is created on ``--pg-admin``'s server and dropped
afterwards.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from common import PG_ADMIN, throwaway_database
from rich.progress import Progress

from citoyen.channels.base import OutboundMessage, SendResult
from citoyen.config import Settings
from citoyen.db import write_session
from citoyen.runtime import Runtime
from citoyen.services.contacts import get_or_create_contact
from citoyen.services.dispatch import Dispatcher
from citoyen.services.outbox import enqueue
from citoyen.services.setup import ensure_ready

PG_DB = "citoyen_bench_dispatch"
CONTACTS = 1_000


class RecordingSender:
    """The fake provider: keeps every message, answers with a provider id."""

    channel = "sms"

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    def send(self, message: OutboundMessage) -> SendResult:
        self.sent.append(message)
        return SendResult(provider_id=f"SM{message.outbox_id:032x}")


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
    with Progress() as progress:
        task = progress.add_task("queue", total=messages)
        done = 0
        while done < messages:
            n = min(2_000, messages - done)
            with write_session(runtime.engine) as session:
                for i in range(done, done + n):
                    enqueue(
                        session,
                        channel="sms",
                        idempotency_key=f"bench:{i}",
                        body=f"Votre signalement {i:05d} est reçu. Merci.",
                        contact_id=ids[i % CONTACTS],
                        now=now,
                    )
            done += n
            progress.update(task, advance=n)


def bench(kind: str, args: argparse.Namespace) -> None:
    with throwaway_database(kind, args.pg_admin, PG_DB) as (url, tmp):
        runtime = Runtime(Settings(database_url=url, instance_dir=tmp))
        ensure_ready(runtime)
        fill(runtime, args.messages)
        sender = RecordingSender()
        dispatcher = Dispatcher(runtime, {"sms": sender}, channel_limits={}, recipient_limits={})
        cpu0, wall0 = time.process_time(), time.perf_counter()
        sent = 0
        while True:
            stats = dispatcher.run_once(limit=args.batch)
            if not stats.claimed:
                break
            sent += stats.sent
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        with runtime.engine.connect() as conn:
            left = conn.execute(
                sa.text("SELECT count(*) FROM outbox WHERE status <> 'sent'")
            ).scalar_one()
        assert sent == args.messages == len(sender.sent) and left == 0, (sent, left)
        print(
            f"{kind:10} {sent} sent in batches of {args.batch}: CPU {cpu:.2f} s "
            f"= {cpu / sent * 1000:.3f} ms/message; wall {wall:.2f} s "
            f"= {wall / sent * 1000:.3f} ms/message ({sent / wall:.0f}/s)"
        )
        runtime.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100, help="run_once limit (worker: 100)")
    parser.add_argument("--pg-admin", default=PG_ADMIN)
    args = parser.parse_args()
    print(
        f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; rate limits lifted"
    )
    for kind in args.db:
        bench(kind, args)


if __name__ == "__main__":
    main()
