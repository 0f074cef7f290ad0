"""The worker's monthly bulletins: one per area and month, even with two workers at once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlmodel import Session, select

from citoyen.models import Bulletin
from citoyen.services.bulletin.jobs import make_monthly, scheduled_jobs
from tests.web.test_public import seed

APRIL_2 = datetime(2026, 4, 2, 9, 40, tzinfo=UTC)


def test_two_workers_make_each_bulletin_once(rt) -> None:
    seed(rt)  # March: Commune IV and Commune I of Bamako
    outcomes: list[dict[str, int]] = []
    workers = [
        threading.Thread(target=lambda: outcomes.append(make_monthly(rt, APRIL_2)))
        for _ in range(2)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    expected = {"ML-BKO", "ML-BKO.commune-i", "ML-BKO.commune-iv"}
    with Session(rt.engine) as session:
        rows = session.exec(select(Bulletin)).all()
    assert {r.area_code for r in rows} == expected and len(rows) == 3
    assert {(r.month, r.status) for r in rows} == {("2026-03", "done")}
    assert sum(o["made"] for o in outcomes) == 3 and sum(o["failed"] for o in outcomes) == 0
    folder = rt.settings.instance_dir / "bulletins" / "2026-03"
    for row in rows:
        data = (rt.settings.instance_dir / "bulletins" / row.file_name).read_bytes()
        assert data.startswith(b"%PDF") and len(data) == row.size_bytes
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{c}.pdf" for c in expected)
    # A later firing of the same days makes nothing again.
    assert make_monthly(rt, APRIL_2) == {"made": 0, "skipped": 3, "failed": 0}


def test_the_job_fires_on_the_first_days_of_the_month(rt) -> None:
    [job] = scheduled_jobs(rt)
    assert (job["trigger"], job["day"], job["id"]) == ("cron", "1-3", "monthly_bulletins")
