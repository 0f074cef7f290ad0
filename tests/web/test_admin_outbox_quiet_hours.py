"""The outbox page counts the survey messages waiting for their quiet hours to open.

The page reads the wall clock, so the clock is fixed (time-machine): 22:00 in Bamako, the survey
window (08:00-20:00) closed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import time_machine
from flask import Flask

from citoyen.db import write_session
from citoyen.runtime import Runtime
from citoyen.services.contacts import get_or_create_contact
from citoyen.services.outbox import enqueue_many, queued_row
from citoyen.web import create_app
from tests.web.conftest import sign_in

NIGHT = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
OPENING = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
WINDOW = "08:00-20:00 Africa/Bamako"


def test_the_outbox_page_counts_the_survey_rows_waiting_for_their_window(rt: Runtime) -> None:
    """30 survey SMS of a wave (20 held at the close, 10 queued at night for the opening) and
    2 replies: 30 wait for their window; the replies go first, the wave from 08:00."""
    app: Flask = create_app({"TESTING": True}, runtime=rt)
    with write_session(rt.engine) as session:
        contact, _ = get_or_create_contact(session, rt.vault, "tel:+22376300001", NIGHT)
        session.flush()
        rows = [
            queued_row(
                channel="sms",
                idempotency_key=f"survey:{i}",
                contact_id=contact.id,
                kind="survey",
                now=NIGHT - timedelta(hours=14),
                send_at=OPENING if i >= 20 else NIGHT - timedelta(hours=14),
                quiet_hours=WINDOW,
            )
            for i in range(30)
        ]
        rows += [
            queued_row(
                channel="sms", idempotency_key=f"reply:{i}", contact_id=contact.id, now=NIGHT
            )
            for i in range(2)
        ]
        enqueue_many(session, rows)
    with time_machine.travel(NIGHT, tick=False):
        html = (
            sign_in(app, "admin@example.org", "admin").get("/admin/outbox").get_data(as_text=True)
        )
    row = re.search(r'<tr data-channel="sms">(.*?)</tr>', html, re.S)
    assert row is not None, html
    assert re.search(r"<td data-waiting>32</td>", row[1]), row[1]
    assert re.search(r"<td data-held>30</td>", row[1]), row[1]
    # From now (the replies), all sent by 08:00:30 (one SMS a second).
    assert re.search(r"<td data-finishes>[^<]*08:00", row[1]), row[1]
    assert "Surveys waiting for their hours" in html
