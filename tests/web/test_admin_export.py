"""The export: per role, the right rows and columns; every download audited."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select

from citoyen.models import AuditEvent
from citoyen.runtime import Runtime
from citoyen.services.reports import ANONYMISED_FIELDS, EXPORT_FIELDS, export_rows, write_export
from citoyen.web import create_app
from tests.routing.support import make_report, new_address
from tests.web.conftest import sign_in

NOW = datetime.now(UTC)


@pytest.fixture
def scene(rt: Runtime) -> dict[str, Any]:
    numbers = [new_address() for _ in range(3)]
    return {
        "numbers": numbers,
        "c4": make_report(rt, area="ML-BKO.commune-iv", address=numbers[0], now=NOW),
        "c1": make_report(rt, area="ML-BKO.commune-i", address=numbers[1], now=NOW),
        "seg": make_report(
            rt,
            area="ML-4.segou.segou",
            address=numbers[2],
            now=NOW - timedelta(days=3, hours=5),
        ),
    }


@pytest.fixture
def app(rt: Runtime) -> Flask:
    return create_app({"TESTING": True}, runtime=rt)


def download(client: FlaskClient, fmt: str) -> str:
    response = client.get(f"/admin/export.{fmt}")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    return response.get_data(as_text=True)


def csv_rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames or []), list(reader)


def exports(rt: Runtime) -> list[AuditEvent]:
    with Session(rt.engine) as s:
        return list(
            s.exec(select(AuditEvent).where(AuditEvent.action == "export").order_by(AuditEvent.id))
        )


def test_admin_gets_what_the_command_gives(app: Flask, rt: Runtime, scene) -> None:
    client = sign_in(app, "admin@example.org", "admin")
    expected = io.StringIO()
    with Session(rt.engine) as s:
        write_export(export_rows(s), "csv", expected)
    text = download(client, "csv")
    assert text == expected.getvalue()
    fields, rows = csv_rows(text)
    assert fields == list(EXPORT_FIELDS) and len(rows) == 3
    for number in scene["numbers"]:
        assert number not in text and number.lstrip("+") not in text
    expected = io.StringIO()
    with Session(rt.engine) as s:
        write_export(export_rows(s), "json", expected)
    assert download(client, "json") == expected.getvalue()
    assert [(e.data["format"], e.data["rows"], e.data["role"]) for e in exports(rt)] == [
        ("csv", 3, "admin"),
        ("json", 3, "admin"),
    ]
    assert all(e.data["complete"] for e in exports(rt))


def test_agent_gets_their_queue_only(app: Flask, rt: Runtime, scene) -> None:
    client = sign_in(app, "agent@example.org", "agent", stakeholder="bko-police-c4")
    _fields, rows = csv_rows(download(client, "csv"))
    assert [r["reference"] for r in rows] == [scene["c4"].reference]
    data = json.loads(download(client, "json"))
    assert [r["reference"] for r in data] == [scene["c4"].reference]
    assert [(e.data["rows"], e.data["role"]) for e in exports(rt)] == [(1, "agent"), (1, "agent")]


def test_coordinator_gets_their_area_only(app: Flask, scene) -> None:
    client = sign_in(app, "coord@example.org", "coordinator", area="ML-BKO")
    _fields, rows = csv_rows(download(client, "csv"))
    assert sorted(r["reference"] for r in rows) == sorted(
        [scene["c4"].reference, scene["c1"].reference]
    )


def test_analyst_gets_anonymised_rows(app: Flask, rt: Runtime, scene) -> None:
    client = sign_in(app, "analyst@example.org", "analyst")
    text = download(client, "csv")
    fields, rows = csv_rows(text)
    assert fields == list(ANONYMISED_FIELDS)
    for column in ("reference", "reporter", "description", "recording_url", "created_at"):
        assert column not in fields
    for report in scene.values():
        if hasattr(report, "reference"):
            assert report.reference not in text
    assert "Citoyen " not in text
    assert len(rows) == 3
    by_area = sorted((r["area_code"], r["created_on"]) for r in rows)
    assert by_area == sorted(
        [
            ("ML-BKO.commune-iv", scene["c4"].created_at.date().isoformat()),
            ("ML-BKO.commune-i", scene["c1"].created_at.date().isoformat()),
            # A commune outside Bamako is given at cercle level.
            ("ML-4.segou", scene["seg"].created_at.date().isoformat()),
        ]
    )
    data = json.loads(download(client, "json"))
    assert {tuple(sorted(r)) for r in data} == {tuple(sorted(ANONYMISED_FIELDS))}
    assert [(e.data["format"], e.data["rows"], e.data["role"]) for e in exports(rt)] == [
        ("csv", 3, "analyst"),
        ("json", 3, "analyst"),
    ]


def test_agent_without_reports_gets_a_header_only(app: Flask, rt: Runtime) -> None:
    client = sign_in(app, "agent@example.org", "agent", stakeholder="bko-police-c6")
    assert download(client, "csv").strip() == ",".join(EXPORT_FIELDS)
    assert json.loads(download(client, "json")) == []


@pytest.mark.parametrize("role", ["admin", "coordinator", "agent", "analyst"])
def test_page_for_every_role(app: Flask, role: str) -> None:
    scope = {"agent": {"stakeholder": "bko-police-c4"}, "coordinator": {"area": "ML-BKO"}}
    client = sign_in(app, f"{role}@example.org", role, **scope.get(role, {}))
    html = client.get("/admin/export").get_data(as_text=True)
    assert "/admin/export.csv" in html and "/admin/export.json" in html
    assert ("<code>reference, created_at" in html) is (role != "analyst")


def test_export_needs_sign_in(client: FlaskClient) -> None:
    for url in ("/admin/export", "/admin/export.csv", "/admin/export.json"):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login" in response.headers["Location"]
