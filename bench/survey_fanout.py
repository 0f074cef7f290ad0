"""Survey fan-out: 100,000 invitations queued (target: < 10 s, peak RSS < 300 MB).

Fills a database with N consenting SMS contacts (default 100,000) in a child process, then runs
the shipped ``perceived_safety_monthly`` survey once with its sample lifted (everyone eligible is
invited) through ``citoyen.services.surveys.runs.start_run`` — the work of ``citoyen survey run``
and of the worker's scheduled firing: the draw, then per contact an invitation, a conversation
started on the survey flow and the invitation SMS queued in the outbox — in a second child
process, and reports its wall time and peak RSS (``resource.getrusage``, the child alone: imports
included, the fill excluded).

    .venv/bin/python bench/survey_fanout.py [--db sqlite postgresql] [--contacts 100000]

PostgreSQL: a database ``citoyen_bench_survey`` (``--pg-db``) is created on ``--pg-admin``'s server
and dropped afterwards.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from common import PG_ADMIN, machine_line, throwaway_database

PG_DB = "citoyen_bench_survey"
SURVEY = "perceived_safety_monthly"


def _settings(url: str, instance: Path):  # type: ignore[no-untyped-def]
    from citoyen.config import Settings

    return Settings(database_url=url, instance_dir=instance)


def fill(url: str, instance: Path, count: int) -> None:
    """N phone contacts who consented to surveys, spread over the communes (bulk insert)."""
    from rich.progress import Progress

    from citoyen.models import Area, Contact
    from citoyen.runtime import Runtime
    from citoyen.services.setup import ensure_ready

    runtime = Runtime(_settings(url, instance))
    ensure_ready(runtime)
    vault = runtime.vault
    now = datetime.now(UTC)
    with runtime.engine.connect() as conn:
        areas = [r[0] for r in conn.execute(sa.select(Area.__table__.c.id))]
    table = Contact.__table__
    with Progress() as progress:
        task = progress.add_task("contacts", total=count)
        for start in range(0, count, 5_000):
            rows = []
            for i in range(start, min(count, start + 5_000)):
                address = f"tel:+2237{i:07d}"
                rows.append(
                    {
                        "address_hash": vault.hash(address),
                        "address_enc": vault.encrypt(address),
                        "channel": "tel",
                        "alias": 1000 + i % 9000,
                        "language": ("fr", "bm", "en")[i % 3],
                        "area_id": areas[i % len(areas)],
                        "survey_consent": True,
                        "opted_out": False,
                        "blocked": False,
                        "created_at": now,
                        "last_seen_at": now,
                    }
                )
            with runtime.engine.begin() as conn:
                conn.execute(table.insert(), rows)
            progress.update(task, advance=len(rows))
    runtime.engine.dispose()


def fan_out(url: str, instance: Path, out: mp.Queue) -> None:
    from citoyen.runtime import Runtime
    from citoyen.services.surveys import surveys_for
    from citoyen.services.surveys.runs import start_run

    runtime = Runtime(_settings(url, instance))
    survey = surveys_for(runtime)[SURVEY]
    survey = survey.model_copy(
        update={"audience": survey.audience.model_copy(update={"sample": None})}
    )
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    result = start_run(runtime, survey, datetime.now(UTC), key="bench")
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    with runtime.engine.connect() as conn:
        queued = conn.execute(
            sa.text("SELECT count(*) FROM outbox WHERE kind = 'survey'")
        ).scalar_one()
    out.put(
        {
            "eligible": result.eligible,
            "invited": result.invited,
            "skipped": dict(result.skipped),
            "queued": queued,
            "wall": wall,
            "cpu": cpu,
            "rss_before_mb": rss_before / 1024,
            "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


def bench(kind: str, args: argparse.Namespace) -> None:
    with throwaway_database(kind, args.pg_admin, args.pg_db) as (url, tmp):
        child = mp.Process(target=fill, args=(url, tmp, args.contacts))
        child.start()
        child.join()
        if child.exitcode:
            raise SystemExit(f"fill failed ({child.exitcode})")
        out: mp.Queue = mp.Queue()
        child = mp.Process(target=fan_out, args=(url, tmp, out))
        child.start()
        child.join()
        if child.exitcode:
            raise SystemExit(f"fan-out failed ({child.exitcode})")
        r = out.get()
        print(
            f"{kind:10} {r['invited']} invited of {r['eligible']} eligible "
            f"(skipped {r['skipped'] or 'none'}), {r['queued']} SMS queued: "
            f"{r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU, "
            f"{r['invited'] / r['wall']:.0f} invitations/s; "
            f"peak RSS {r['rss_peak_mb']:.0f} MB (after imports {r['rss_before_mb']:.0f} MB)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--pg-admin", default=PG_ADMIN)
    parser.add_argument("--pg-db", default=PG_DB, help="a name no one else is using")
    args = parser.parse_args()
    print(machine_line())
    for kind in args.db:
        bench(kind, args)


if __name__ == "__main__":
    main()
