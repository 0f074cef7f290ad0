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


def test_bulletins_are_emailed_to_the_ccs_accounts_once(rt) -> None:
    """A real SMTP conversation with a local aiosmtpd server: the CCS account of Commune IV
    gets its bulletin, as a PDF attachment, once; areas without a CCS account get nothing."""
    import email
    import socket

    from aiosmtpd.controller import Controller

    from citoyen.db import write_session
    from citoyen.runtime import Runtime
    from citoyen.services.users import create_user

    received: list[tuple[list[str], bytes]] = []

    class Inbox:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            received.append((list(envelope.rcpt_tos), envelope.content))
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Inbox(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        seed(rt)
        with write_session(rt.engine) as session:
            create_user(session, "ccs4@example.org", "agent", "pw-ccs-4-long", "bko-ccs-c4")
        mailing = Runtime(
            rt.settings.model_copy(
                update={"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_starttls": False}
            )
        )
        first = make_monthly(mailing, APRIL_2)
        again = make_monthly(mailing, APRIL_2)
    finally:
        controller.stop()
    assert first["made"] == 3 and first["emailed"] == 1 and again["emailed"] == 0
    [(to, content)] = received
    assert to == ["ccs4@example.org"]
    message = email.message_from_bytes(content)
    assert "Commune IV" in message["Subject"] and "2026-03" in message["Subject"]
    [pdf] = [p for p in message.walk() if p.get_content_type() == "application/pdf"]
    assert pdf.get_payload(decode=True).startswith(b"%PDF")
