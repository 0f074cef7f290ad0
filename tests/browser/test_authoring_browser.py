"""Authoring pages in a real browser: the flows page draws every shipped flow, and staff complete
a report in the simulator on each channel style in French and Bambara; the test report appears
nowhere outside the simulator (queues, report page, export, dashboard)."""

from __future__ import annotations

import json
import re

import pytest
from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.models import Contact, QueueEntry, Report
from citoyen.services.users import create_user
from tests.browser.conftest import LiveAdmin, shot
from tests.browser.test_admin_browser import _login as sign_in

PASSWORD = "correct horse battery"
REFERENCE = re.compile(r"\b(\d{3}-\d{4})\b")


def _login(page, live: LiveAdmin, email: str = "author@example.org") -> None:  # type: ignore[no-untyped-def]
    """An administrator, signed in as a person would (two-factor enrolment included)."""
    with write_session(live.runtime.engine) as session:
        create_user(session, email, "admin", PASSWORD)
    sign_in(page, email)


def test_flows_page_draws_every_shipped_flow(page, live: LiveAdmin) -> None:  # type: ignore[no-untyped-def]
    _login(page, live)
    page.goto("/admin/flows")
    assert page.locator("#check").is_visible()
    for flow_id, flow in live.runtime.bundle.flows.items():
        page.click(f"nav.counts a[href^='/admin/flows/{flow_id}']")
        page.wait_for_url(f"**/admin/flows/{flow_id}*")
        diagram = page.locator(f"svg.flow-diagram[data-flow='{flow_id}']")
        assert diagram.is_visible()
        assert diagram.bounding_box()["height"] > 100
        drawn = set(diagram.locator("g.node").evaluate_all("gs => gs.map(g => g.dataset.node)"))
        assert drawn == set(flow.nodes)
        shot(page, f"flows-{flow_id}")


def _say(page, **field: str) -> None:  # type: ignore[no-untyped-def]
    """Fill the simulator's input (text, digits, recording) or press a button (choice/key)."""
    ((name, value),) = field.items()
    form = "form.trial-input"
    if name in ("choice", "key"):
        attr = "choice" if name == "choice" else "digits"
        selector = (
            f"{form} button[name={attr}]"
            if value == "first"
            else f"{form} button[name={attr}][value='{value}']"
        )
        page.locator(selector).first.click()
    else:
        page.fill(f"{form} input[name={name}]", value)
        page.press(f"{form} input[name={name}]", "Enter")
    page.wait_for_load_state()


# One report per channel style: theft, the Bamako district and its first commune, nobody in
# danger, a description, anonymous, no surveys (a call first says it is a new problem).
SCRIPTS = {
    "sms": [{"text": t} for t in ("2", "1", "1", "2", "Moto volée au marché", "1", "2")],
    "telegram": [
        {"choice": "theft"},
        {"choice": "first"},
        {"choice": "first"},
        {"choice": "no"},
        {"text": "Moto volée au marché"},
        {"choice": "yes"},
        {"choice": "no"},
    ],
    "voice": [
        *({"key": k} for k in ("1", "2", "1", "1", "2")),
        {"recording": "Moto volée au marché"},
        {"key": "1"},
        {"key": "2"},
    ],
}


@pytest.mark.parametrize("language", ["fr", "bm"])
@pytest.mark.parametrize("channel", ["sms", "telegram", "voice"])
def test_report_in_the_simulator_stays_there(
    page, live: LiveAdmin, channel: str, language: str
) -> None:  # type: ignore[no-untyped-def]
    _login(page, live)
    page.goto("/admin/try")
    page.select_option("#try-start select[name=flow]", "report")
    page.select_option("#try-start select[name=channel]", channel)
    page.select_option("#try-start select[name=language]", language)
    page.click("#try-start button[type=submit]")
    page.wait_for_load_state()
    assert page.locator(f"#trial[data-channel={channel}]").is_visible()
    catalog = live.runtime.bundle.catalog
    first = "report.intent" if channel == "voice" else "report.category"  # calls can follow up
    assert catalog.text(first, language, channel) in page.inner_text("#trial")
    for step in SCRIPTS[channel]:
        _say(page, **step)
    transcript = page.inner_text("#trial .transcript")
    found = REFERENCE.findall(page.locator("#trial .service").last.inner_text())
    assert found, transcript
    reference = found[-1]
    shot(page, f"try-{channel}-{language}")

    with Session(live.runtime.engine) as session:
        report = session.exec(select(Report).where(Report.reference == reference)).one()
        assert (report.category, report.channel, report.language) == ("theft", channel, language)
        assert session.get(Contact, report.contact_id).channel == "test"
        assert session.exec(select(QueueEntry).where(QueueEntry.report_id == report.id)).all() == []
    # nowhere outside the simulator
    page.goto("/admin/")
    assert reference not in page.content()
    assert page.goto(f"/admin/reports/{report.id}").status == 404
    export = page.request.get("/admin/export.csv")  # the signed-in browser's download
    assert export.ok and reference not in export.text()
    page.goto("/admin/dashboard")
    data = json.loads(page.locator("#dashboard-data").text_content())
    assert sum(data["week"]["values"]) == 0 and data["category"]["values"] == [], data
