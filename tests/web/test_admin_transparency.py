"""Scorecards and kept bulletins in the admin: figures equal the queue's, scope decides."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlmodel import Session, select

from citoyen.models import QueueEntry, Stakeholder
from citoyen.services.bulletin.jobs import make_monthly
from tests.web.conftest import sign_in
from tests.web.test_public import seed

APRIL_2 = datetime(2026, 4, 2, 9, 40, tzinfo=UTC)


def test_scorecards_count_each_stakeholders_entries(app, rt) -> None:
    seed(rt)
    with Session(rt.engine) as session:
        police = session.exec(select(Stakeholder).where(Stakeholder.code == "bko-police-c4")).one()
        entries = session.exec(
            select(QueueEntry).where(
                QueueEntry.stakeholder_id == police.id, QueueEntry.status != "declined"
            )
        ).all()
    on_time = sum(e.acknowledged_at is not None and e.acknowledged_at <= e.due_at for e in entries)
    client = sign_in(app, "coord@example.org", "coordinator", area="ML-BKO")
    html = client.get("/admin/scorecards?month=2026-03").get_data(as_text=True)
    row = re.search(rf'<tr data-stakeholder="{police.id}">(.*?)</tr>', html).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row)
    assert cells[1] == str(len(entries)) == "15"
    assert cells[2].startswith(f"{on_time} / {len(entries)}")  # all past their deadline by April
    assert cells[3] == "1.0"  # six taken in hand after exactly one hour
    assert client.get("/admin/scorecards?month=2026-13").status_code == 400
    # An agent sees their own stakeholder only.
    agent = sign_in(app, "agent@example.org", "agent", stakeholder="bko-police-c1")
    assert f'data-stakeholder="{police.id}"' not in agent.get(
        "/admin/scorecards?month=2026-03"
    ).get_data(as_text=True)


def test_bulletins_download_within_scope_only(app, rt) -> None:
    seed(rt)
    assert make_monthly(rt, APRIL_2)["made"] == 3
    coordinator = sign_in(app, "coord@example.org", "coordinator", area="ML-BKO")
    listing = coordinator.get("/admin/bulletins").get_data(as_text=True)
    links = re.findall(r'href="(/admin/bulletins/\d+\.pdf)"', listing)
    assert len(links) == 3
    pdf = coordinator.get(links[0])
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    # A coordinator of another region sees none and gets 404, like a report out of scope.
    other = sign_in(app, "kayes@example.org", "coordinator", area="ML-1")
    assert "/admin/bulletins/" not in other.get("/admin/bulletins").get_data(as_text=True)
    assert other.get(links[0]).status_code == 404
    analyst = sign_in(app, "analyst@example.org", "analyst")
    assert analyst.get(links[0]).status_code == 404
    assert coordinator.get("/admin/bulletins/99999.pdf").status_code == 404
