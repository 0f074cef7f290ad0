"""Admin dashboard with many reports (target: < 500 ms with 1,000,000 reports).

The database is filled by ``admin_queue.fill`` (N reports over three years, each with a queue
entry, 5 % still open), so about 1 in 13 reports falls in the dashboard's 12-week window. Timed,
for an administrator (every report), a coordinator (Bamako district and its stakeholders) and an
analyst (every report, counts only):

- ``build``: the service's aggregates (per category, region and week, SLA per week);
- the page: ``GET /admin/dashboard`` through the Flask app, signed in as that user (aggregates,
  perceived safety, region names, the template).

    .venv/bin/python bench/dashboard.py [--db sqlite postgresql] [--reports 1000000] [--runs 7]

A PostgreSQL database ``citoyen_bench_dashboard_voice`` is created and dropped; ``--url`` with
``--reuse`` times an already filled database instead.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from admin_queue import filled_runtime
from common import PG_ADMIN, machine_line, throwaway_database
from sqlmodel import Session, func, select

from citoyen.db import write_session
from citoyen.models import Report, User
from citoyen.runtime import Runtime
from citoyen.services import dashboard
from citoyen.services.access import Staff
from citoyen.services.users import create_user

PASSWORD = "bench-password-0123456789"
# (role, stakeholder code, area code) of the users timed.
USERS = {
    "admin": ("admin", None, None),
    "coordinator": ("coordinator", "bko-police-c4", "ML-BKO"),
    "analyst": ("analyst", None, None),
}


def timed(work: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median and maximum in ms of ``runs`` runs, after one untimed run (caches, plans)."""
    work()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


def staff_of(runtime: Runtime) -> dict[str, Staff]:
    """The bench users (created once) as the services see them."""
    out: dict[str, Staff] = {}
    with write_session(runtime.engine) as s:
        for name, (role, stakeholder, area) in USERS.items():
            email = f"{name}@bench.example.org"
            user = s.exec(select(User).where(User.email == email)).first()
            if user is None:
                user = create_user(s, email, role, PASSWORD, stakeholder, area, language="en")
                s.flush()
            out[name] = Staff.of(user)
    return out


def signed_in(app, email: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    html = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token, "no CSRF token on the login page"
    response = client.post(
        "/admin/login", data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert response.status_code == 302, response.status_code
    return client


def bench(runtime: Runtime, runs: int) -> None:
    from citoyen.web import create_app

    users = staff_of(runtime)
    app = create_app(runtime=runtime)
    with Session(runtime.engine) as s:
        total = s.exec(select(func.count()).select_from(Report)).one()
        start = dashboard.window_start(time_now())
        window = s.exec(select(func.count()).where(Report.created_at >= start)).one()
    print(f"{total:,} reports, {window:,} in the 12-week window")
    print(f"{'who':<12} {'build p50':>10} {'max':>8} {'page p50':>10} {'max':>8} {'total':>8}")
    for name, staff in users.items():

        def build(staff: Staff = staff) -> dashboard.Dashboard:
            with Session(runtime.engine) as s:
                return dashboard.build(s, staff)

        client = signed_in(app, staff.email)

        def page(client=client) -> None:  # type: ignore[no-untyped-def]
            response = client.get("/admin/dashboard")
            assert response.status_code == 200, response.status_code

        b50, bmax = timed(build, runs)
        p50, pmax = timed(page, runs)
        board = build()
        print(f"{name:<12} {b50:10.1f} {bmax:8.1f} {p50:10.1f} {pmax:8.1f} {board.total:8,}")


def time_now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.now(UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--reports", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--url", default=None, help="an already filled database (with --reuse)")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--pg-admin", default=PG_ADMIN)
    args = parser.parse_args()
    print(machine_line())
    if args.url:
        tmp = Path(f"/tmp/bench-dashboard-{args.url.rsplit('/', 1)[-1]}")
        bench(filled_runtime(args.url, tmp, args.reports, reuse=args.reuse), args.runs)
        return
    for kind in args.db:
        with throwaway_database(kind, args.pg_admin, "citoyen_bench_dashboard_voice") as (
            url,
            tmp,
        ):
            print(f"\n== {kind}")
            runtime = filled_runtime(url, tmp, args.reports)
            bench(runtime, args.runs)
            runtime.engine.dispose()


if __name__ == "__main__":
    main()
