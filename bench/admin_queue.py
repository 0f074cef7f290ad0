"""Admin queue page with many reports: time of one page of the queue service (target: < 150 ms
with 1,000,000 reports).

Fills a database with N reports (default 1,000,000), each with one queue entry, spread over the
shipped stakeholders' areas, categories and urgencies, 5 % of them still open and the rest
resolved or closed (a deployment after some years), then times ``queue_page`` — the query the
queue page runs, counts and emergencies box included — for an administrator (all queues), a
coordinator (Bamako) and an agent (one police station): the first page, a deep page reached by
cursor, and filtered pages.

    .venv/bin/python bench/admin_queue.py [--reports 1000000] [--url sqlite:////tmp/q.db]

The database is kept (``--url``), so a second run with ``--reuse`` skips the fill.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from rich.progress import Progress
from sqlmodel import Session, select

from citoyen.config import Settings
from citoyen.models import QueueEntry, Report, Stakeholder
from citoyen.runtime import Runtime
from citoyen.services.access import Staff
from citoyen.services.queues import sync_from_settings
from citoyen.services.queues.listing import QueueFilter, queue_page
from citoyen.services.setup import ensure_ready

ROOT = Path(__file__).resolve().parents[1]
CATEGORIES = ["armed_attack", "theft", "violence", "conflict", "disaster", "trafficking", "other"]
URGENCY = ["normal"] * 8 + ["high"] + ["emergency"]


def fill(runtime: Runtime, count: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    engine = runtime.engine
    with Session(engine) as session:
        holders = [(s.id, s.area_id) for s in session.exec(select(Stakeholder)).all() if s.area_id]
    batch = 20_000
    reports = Report.__table__
    entries = QueueEntry.__table__
    with Progress() as progress:
        task = progress.add_task("reports", total=count)
        done = 0
        while done < count:
            n = min(batch, count - done)
            rows, queue = [], []
            for i in range(done, done + n):
                holder, area = holders[rng.randrange(len(holders))]
                created = now - timedelta(minutes=rng.randrange(60 * 24 * 365 * 3))
                urgency = URGENCY[rng.randrange(len(URGENCY))]
                open_ = rng.random() < 0.05
                status = (
                    rng.choice(["new", "acknowledged", "in_progress"])
                    if open_
                    else rng.choice(["resolved", "closed"])
                )
                rows.append(
                    {
                        "id": i + 1,
                        "reference": f"{i // 10000:03d}-{i % 10000:04d}",
                        "channel": "sms",
                        "category": CATEGORIES[rng.randrange(len(CATEGORIES))],
                        "urgency": urgency,
                        "area_id": area,
                        "anonymous": True,
                        "callback_ok": False,
                        "incomplete": False,
                        "status": status,
                        "answers": {},
                        "created_at": created,
                        "updated_at": created,
                    }
                )
                queue.append(
                    {
                        "id": i + 1,
                        "report_id": i + 1,
                        "stakeholder_id": holder,
                        "status": ("open" if status == "new" else "acknowledged")
                        if open_
                        else "closed",
                        "via": "rule",
                        "chain": "default",
                        "escalation_level": 0,
                        "due_at": created + timedelta(hours=2 if urgency == "emergency" else 48),
                        "report_status": status,
                        "category": rows[-1]["category"],
                        "urgency": urgency,
                        "area_id": area,
                        "reported_at": created,
                        "created_at": created,
                        "updated_at": created,
                    }
                )
            with engine.begin() as conn:
                conn.execute(sa.insert(reports), rows)
                conn.execute(sa.insert(entries), queue)
            done += n
            progress.update(task, advance=n)
    if engine.dialect.name == "postgresql":
        # What autovacuum does in a living deployment: statistics and the visibility map (so
        # counts are index-only scans).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
        with engine.begin() as conn:
            for table in ("reports", "queue_entries"):
                conn.execute(
                    sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {count})")
                )
    else:
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))


def filled_runtime(url: str, tmp: Path, reports: int, *, reuse: bool = False) -> Runtime:
    """A runtime on ``url`` (migrated, stakeholders synced) holding ``reports`` reports; with
    ``reuse`` the database is already filled (statistics refreshed on PostgreSQL)."""
    settings = Settings(
        instance_dir=tmp / "instance",
        database_url=url,
        flows_dir=ROOT / "flows",
        locales_dir=ROOT / "locales",
        secret_key="bench",
        data_key="q3zkx8cQoB9o6c1ZCqbsb9Uu3mC1uHnP0E0y0F4l1yM=",
    )
    runtime = Runtime(settings)
    ensure_ready(runtime)
    sync_from_settings(runtime)
    if not reuse:
        fill(runtime, reports)
    elif runtime.engine.dialect.name == "postgresql":
        with runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    return runtime


def timed(
    session: Session, staff: Staff, flt: QueueFilter, cursor_pages: int = 0, runs: int = 7
) -> tuple[float, float, int]:
    samples = []
    rows = 0
    for _ in range(runs):
        cursor = None
        for _page in range(cursor_pages):
            cursor = queue_page(session, staff, flt, cursor=cursor).next_cursor
        started = time.perf_counter()
        page = queue_page(session, staff, flt, cursor=cursor)
        samples.append((time.perf_counter() - started) * 1000)
        rows = len(page.rows)
    return statistics.median(samples), max(samples), rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reports", type=int, default=1_000_000)
    parser.add_argument("--url", default=None)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    url = args.url or f"sqlite:///{tmp / 'queue.db'}"
    runtime = filled_runtime(url, tmp, args.reports, reuse=args.reuse)
    with Session(runtime.engine) as session:
        station = session.exec(select(Stakeholder).where(Stakeholder.code == "bko-police-c4")).one()
        admin = Staff(id=1, email="admin@bench", role="admin")
        coordinator = Staff(
            id=2, email="coord@bench", role="coordinator", area_id=None, stakeholder_id=station.id
        )
        agent = Staff(id=3, email="agent@bench", role="agent", stakeholder_id=station.id)
        total = session.exec(sa.select(sa.func.count()).select_from(Report)).scalar_one()
        print(
            f"{platform.node()} · {platform.processor() or platform.machine()} · {engine_name(url)} · {total:,} reports"
        )
        print(f"{'who':<12} {'page':<28} {'p50 ms':>8} {'max ms':>8} {'rows':>5}")
        for who, staff in (("admin", admin), ("coordinator", coordinator), ("agent", agent)):
            for label, flt, deep in (
                ("first (open)", QueueFilter(), 0),
                ("page 20 by cursor", QueueFilter(), 19),
                ("theft, emergency", QueueFilter(category="theft", urgency="emergency"), 0),
                (
                    "all statuses",
                    QueueFilter(
                        statuses=("new", "acknowledged", "in_progress", "resolved", "closed")
                    ),
                    0,
                ),
                ("older than 30 days", QueueFilter(age="older30d"), 0),
            ):
                p50, worst, rows = timed(session, staff, flt, deep)
                print(f"{who:<12} {label:<28} {p50:8.1f} {worst:8.1f} {rows:5d}")


def engine_name(url: str) -> str:
    return url.split(":", 1)[0]


if __name__ == "__main__":
    main()
