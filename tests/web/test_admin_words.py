"""The admin speaks the moderator's language: labels, not codes, on the report page and the
audit log; "Transmettre à" grouped by kind and area; a voice report's recording where its
description would be. Pages are read in French (the default), as a moderator sees them.
Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

from sqlmodel import Session

from citoyen.db import write_session
from citoyen.models import Attachment, Report
from citoyen.services import queues
from tests.web.conftest import Desk

COMMUNE_IV = "ML-BKO.commune-iv"


class _Select(HTMLParser):
    """The options of the forward form's <select name="stakeholder">, with their optgroup."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = False
        self.group: str | None = None
        self.options: list[tuple[str | None, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "select":
            self.inside = values.get("name") == "stakeholder"
        elif self.inside and tag == "optgroup":
            self.group = values.get("label")
        elif self.inside and tag == "option" and values.get("value"):
            self.options.append((self.group, values["value"] or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self.inside = False
        elif tag == "optgroup":
            self.group = None


def _page(desk: Desk, report: Report) -> str:
    return desk.client.get(f"/admin/reports/{report.id}").get_data(as_text=True)


def test_report_page_names_channels_and_groups_stakeholders(desk: Desk) -> None:
    report = desk.report(category="theft", area=COMMUNE_IV, channel="voice")
    desk.user("coord@example.org", "admin", None)
    desk.login("coord@example.org")
    page = _page(desk, report)
    assert " · appel · fr" in page
    assert " · voice · " not in page
    select = _Select()
    select.feed(page)
    assert select.options, "no stakeholder to forward to"
    assert all(group for group, _code in select.options), "an option outside any optgroup"
    groups = {group for group, _code in select.options}
    assert any(g.startswith("Gendarmerie · ") for g in groups), groups
    assert "Police · Bamako" in groups, groups
    # Grouped, not one flat list: many stakeholders, far fewer groups.
    assert len(groups) < len(select.options)


def test_escalation_is_worded_in_french(desk: Desk) -> None:
    t0 = datetime.now(UTC)
    report = desk.report(category="armed_attack", area=COMMUNE_IV, urgency="emergency", now=t0)
    with write_session(desk.runtime.engine) as session:
        queues.escalate_due(session, now=t0 + timedelta(minutes=15))
    desk.user("coord@example.org", "admin", None)
    desk.login("coord@example.org")
    page = _page(desk, report)
    assert "non pris en charge à temps" in page
    assert re.search(r"déjà chez [^<;]*\w", page) or "non pris en charge à temps par " in page
    assert "not acknowledged" not in page


def test_voice_report_shows_its_recording_in_place_of_a_description(desk: Desk) -> None:
    report = desk.report(category="theft", area=COMMUNE_IV, channel="voice")
    with Session(desk.runtime.engine) as session:
        session.add(
            Attachment(
                report_id=report.id,
                channel="voice",
                kind="recording",
                provider_ref="RE0123",
                status="fetched",
                duration_seconds=12,
            )
        )
        session.commit()
    desk.user("coord@example.org", "admin", None)
    desk.login("coord@example.org")
    page = _page(desk, report)
    description = page.split("<h2>Description</h2>", 1)[1].split("<h2>", 1)[0]
    assert "Dit par l'auteur du signalement (enregistrement)" in description.replace("&#39;", "'")
    assert "<audio controls" in description
    assert "<p>—</p>" not in description


def test_audit_log_names_targets_and_details(desk: Desk) -> None:
    report = desk.report(category="theft", area=COMMUNE_IV)
    desk.user("coord@example.org", "admin", None)
    desk.login("coord@example.org")
    reason = "messages insultants répétés"
    assert desk.post(f"/admin/reports/{report.id}/block", reason=reason).status_code == 302
    page = desk.client.get("/admin/audit").get_data(as_text=True)
    assert "auteur du signalement n° " in page
    assert f"signalement : {report.reference}" in page
    assert "contact: " not in page and ">contact " not in page


def test_refusals_are_worded_without_codes(desk: Desk) -> None:
    report = desk.report(category="theft", area=COMMUNE_IV)
    desk.user("agent4@example.org", "agent", "bko-police-c4")
    desk.login("agent4@example.org")
    base = f"/admin/reports/{report.id}"
    expected = {
        ("status", "closed", ""): "Pour clore un signalement, choisissez un motif.",
        ("status", "resolved", "spam"): "Un motif ne se donne qu&#39;en clôturant",
        ("reply", "", ""): "La réponse : vide.",
    }
    for (action, status, extra), words in expected.items():
        form = {"status": status, "reason": extra} if action == "status" else {"message": status}
        page = desk.post(f"{base}/{action}", **form).get_data(as_text=True)
        [flash] = re.findall(r'<p class="flash error" role="status">(.*?)</p>', page)
        assert words in flash, (action, form, flash)
        for english in ("closing needs", "one of:", "no_further_action", "is empty", "only given"):
            assert english not in flash, (action, english)
    forwarded = desk.post(f"{base}/forward", stakeholder="bko-police-c4").get_data(as_text=True)
    assert "a déjà ce signalement." in forwarded


def test_every_refusal_code_has_words() -> None:
    """Each code the services raise (citoyen.services.refusals) is worded in the admin."""
    from pathlib import Path

    from citoyen.web.admin.labels import REFUSALS

    root = Path(__file__).resolve().parents[2] / "src" / "citoyen" / "services"
    raised: set[str] = set()
    for path in (root / "casework.py", root / "queues" / "status.py"):
        source = path.read_text(encoding="utf-8")
        for call in re.finditer(
            r"(?:StatusError|CaseworkError)\((.*?)\)\s*(?:from|\n)", source, re.S
        ):
            found = re.search(r",\s*\"([a-z_]+)\"", call.group(1))
            if found:
                raised.add(found.group(1))
    assert len(raised) >= 20
    assert raised - set(REFUSALS) == set()
