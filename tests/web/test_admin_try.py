"""Trying a flow in the admin: test conversations go through the conversation service, and what
they make stays in the simulator (no queue, no count, no export) and is removed after a day."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, func, select

from citoyen.models import Contact, Conversation, Message, QueueEntry, Report, ReportEvent
from citoyen.runtime import Runtime
from citoyen.services import dashboard, trial
from citoyen.services.access import Staff, report_in_scope
from citoyen.services.reports import export_rows
from citoyen.web import create_app
from tests.routing.support import make_report
from tests.web.conftest import csrf_token, sign_in

# The report flow on SMS in French: theft, the Bamako district (first region: its communes come
# next) and its first commune, nobody in danger, a description, anonymous, no surveys.
SMS_REPORT = ["2", "1", "1", "2", "Vol de moto devant le marché", "1", "2"]


@pytest.fixture
def app(rt: Runtime) -> Flask:
    return create_app({"TESTING": True}, runtime=rt)


def start(client: FlaskClient, flow: str, channel: str, language: str) -> str:
    token = csrf_token(client, "/admin/try")
    response = client.post(
        "/admin/try/start",
        data={"csrf_token": token, "flow": flow, "channel": channel, "language": language},
    )
    assert response.status_code == 303
    return client.get("/admin/try").get_data(as_text=True)


def send(client: FlaskClient, **data: str) -> str:
    token = csrf_token(client, "/admin/try")
    assert client.post("/admin/try/send", data={"csrf_token": token, **data}).status_code == 303
    return client.get("/admin/try").get_data(as_text=True)


def test_only_authors_may_try(app: Flask) -> None:
    agent = sign_in(app, "agent@example.org", "agent", stakeholder="bko-police-c4")
    assert agent.get("/admin/try").status_code == 403
    analyst = sign_in(app, "analyst@example.org", "analyst")
    assert analyst.get("/admin/try").status_code == 403
    admin = sign_in(app, "admin@example.org", "admin")
    token = csrf_token(admin, "/admin/try")
    refused = admin.post(
        "/admin/try/start",
        data={"csrf_token": token, "flow": "nope", "channel": "sms", "language": "fr"},
    )
    assert refused.status_code == 303
    assert "Not started: There is no flow nope." in admin.get("/admin/try").get_data(as_text=True)


def test_a_test_report_stays_in_the_simulator(app: Flask, rt: Runtime) -> None:
    real = make_report(rt, category="theft", now=datetime.now(UTC))
    client = sign_in(app, "admin@example.org", "admin")
    html = start(client, "report", "sms", "fr")
    catalog = rt.bundle.catalog
    question = catalog.text("report.category", "fr", "sms")
    assert question in html and "1. Attaque ou menace armée" in html
    for line in SMS_REPORT:
        html = send(client, text=line)
    reference = re.search(r"Référence : (\d{3}-\d{4})", html)
    assert reference, html
    with Session(rt.engine) as s:
        report = s.exec(select(Report).where(Report.reference == reference.group(1))).one()
        assert (report.category, report.description) == ("theft", "Vol de moto devant le marché")
        assert (report.urgency, report.anonymous, report.channel) == ("normal", True, "sms")
        assert s.get(Contact, report.contact_id).channel == "test"
        # no stakeholder's queue, only the report's own first event
        assert s.exec(select(QueueEntry).where(QueueEntry.report_id == report.id)).all() == []
        kinds = s.exec(select(ReportEvent.kind).where(ReportEvent.report_id == report.id)).all()
        assert kinds == ["created"]
        admin = Staff(
            id=0, email="a", role="admin", stakeholder_id=None, area_id=None, language="fr"
        )
        assert not report_in_scope(s, admin, report)
        assert report_in_scope(s, admin, real)
        assert dashboard.build(s, admin).total == 1  # the real report only
        assert [row["reference"] for row in export_rows(s)] == [real.reference]
    found = client.get(f"/admin/find?reference={reference.group(1)}")
    assert f"/admin/reports/{report.id}" not in found.headers["Location"]
    assert client.get(f"/admin/reports/{report.id}").status_code == 404


def test_telegram_buttons_and_voice_keypad(app: Flask, rt: Runtime) -> None:
    client = sign_in(app, "admin@example.org", "admin")
    html = start(client, "report", "telegram", "bm")
    assert 'name="choice" value="theft"' in html and ">Sonyali</button>" in html
    html = send(client, choice="theft")
    assert '<p class="citizen">Sonyali</p>' in html  # the button pressed, by its label
    html = start(client, "report", "voice", "en")
    assert 'name="digits" value="1"' in html
    assert "For a new problem, press 1." in html or "press 1" in html
    html = send(client, digits="1")
    assert rt.bundle.catalog.text("report.category", "en", "voice") in html


def test_test_conversations_are_removed_after_a_day(app: Flask, rt: Runtime) -> None:
    real = make_report(rt, category="theft", now=datetime.now(UTC))
    client = sign_in(app, "admin@example.org", "admin")
    start(client, "report", "sms", "fr")
    for line in SMS_REPORT:
        send(client, text=line)
    start(client, "perceived_safety", "sms", "bm")

    def count(model: type) -> int:
        with Session(rt.engine) as s:
            return s.exec(select(func.count()).select_from(model)).one()

    before = {m: count(m) for m in (Contact, Conversation, Message, Report)}
    now = datetime.now(UTC)
    assert trial.purge(rt.engine, now=now + timedelta(hours=23)) == 0
    assert trial.purge(rt.engine, now=now + timedelta(hours=25)) == 2
    with Session(rt.engine) as s:
        assert s.exec(select(Contact).where(Contact.channel == "test")).all() == []
        assert [r.id for r in s.exec(select(Report)).all()] == [real.id]
    after = {m: count(m) for m in (Contact, Conversation, Message, Report)}
    assert after[Report] == before[Report] - 1 and after[Contact] == before[Contact] - 2
    assert after[Conversation] < before[Conversation] and after[Message] < before[Message]


def test_a_test_survey_never_reaches_the_indicator(app: Flask, rt: Runtime) -> None:
    from citoyen.models import SurveyAnswer
    from citoyen.services.surveys import surveys_for
    from citoyen.services.surveys.indicators import observations

    client = sign_in(app, "admin@example.org", "admin")
    html = start(client, "perceived_safety", "sms", "fr")
    for line in ("1", "1", "1"):  # very safe, never, never
        html = send(client, text=line)
    assert "Merci" in html
    [survey] = surveys_for(rt).values()
    with Session(rt.engine) as s:
        answers = s.exec(select(SurveyAnswer)).all()
        assert answers, "the test conversation's answers are stored like any other"
        assert {s.get(Contact, a.contact_id).channel for a in answers} == {"test"}
        # the indicator counts answers to invitations only: none for a test conversation
        assert observations(s, survey, "month") == []
