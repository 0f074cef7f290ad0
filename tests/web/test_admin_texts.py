"""The texts page: a reviewer corrects a text and marks it reviewed; the locale file changes,
the history keeps who and when, and a broken placeholder is refused without any change."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from flask import Flask
from sqlmodel import Session, select

from citoyen.i18n import Catalog
from citoyen.models import TextChange, User
from citoyen.runtime import Runtime
from citoyen.web import create_app
from tests.web.conftest import csrf_token, sign_in


@pytest.fixture
def settings(settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The shipped flows and texts, copied: these tests change the files."""
    for name in ("flows", "locales"):
        shutil.copytree(getattr(settings, f"{name}_dir"), tmp_path / name)
    shutil.copytree(settings.resolved_config_dir, tmp_path / "config")
    return settings.model_copy(
        update={"flows_dir": tmp_path / "flows", "locales_dir": tmp_path / "locales"}
    )


@pytest.fixture
def app(rt: Runtime) -> Flask:
    return create_app({"TESTING": True}, runtime=rt)


def review(client, key: str, text: str, *, reviewed: bool, note: str = ""):  # type: ignore[no-untyped-def]
    token = csrf_token(client, "/admin/texts?language=bm")
    data = {"csrf_token": token, "text": text, "note": note}
    if reviewed:
        data["reviewed"] = "1"
    return client.post(f"/admin/texts/bm/{key}", data=data)


def test_who_may_review(app: Flask) -> None:
    agent = sign_in(app, "agent@example.org", "agent", stakeholder="bko-police-c4")
    assert agent.get("/admin/texts").status_code == 403
    coordinator = sign_in(app, "coord@example.org", "coordinator", area="ML-BKO")
    assert coordinator.get("/admin/texts").status_code == 403
    reviewer = sign_in(app, "reviewer@example.org", "reviewer")
    assert reviewer.get("/admin/").headers["Location"].endswith("/admin/texts")
    html = reviewer.get("/admin/texts?language=bm&state=needs-review").get_data(as_text=True)
    assert "report.category.theft" in html and "Vol ou cambriolage" in html
    assert "/admin/find" not in html  # no report for a reviewer


def test_correct_and_mark_reviewed_with_history(app: Flask, rt: Runtime) -> None:
    client = sign_in(app, "reviewer@example.org", "reviewer")
    response = review(
        client, "report.category.theft", "Sonyali walima so tiɲɛni", reviewed=True, note="ok"
    )
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "now 1 SMS (UCS-2)" in page
    entry = Catalog.load(rt.settings.locales_dir).entry("report.category.theft", "bm")
    assert (entry.text, entry.review, entry.note) == ("Sonyali walima so tiɲɛni", "reviewed", "ok")
    with Session(rt.engine) as s:
        change, email = s.exec(select(TextChange, User.email).join(User)).one()
    assert (change.key, change.old_text, change.new_text) == (
        "report.category.theft",
        "Sonyali",
        "Sonyali walima so tiɲɛni",
    )
    assert (change.old_review, change.new_review, change.source, email) == (
        "needs-review",
        "reviewed",
        "admin",
        "reviewer@example.org",
    )
    assert "reviewer@example.org" in page and "Sonyali walima so tiɲɛni" in page
    # the same form again changes nothing and records nothing
    review(client, "report.category.theft", "Sonyali walima so tiɲɛni", reviewed=True, note="ok")
    with Session(rt.engine) as s:
        assert len(s.exec(select(TextChange)).all()) == 1


def test_broken_placeholder_is_refused(app: Flask, rt: Runtime) -> None:
    client = sign_in(app, "admin@example.org", "admin")
    path = rt.settings.locales_dir / "bm.yaml"
    before = path.read_text()
    response = review(client, "report.welcome", "Aw ni ce! {polis}", reviewed=True)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert (
        "Not saved: report.welcome: the placeholders must be those of the reference text "
        "(Français): {fire}, {police}; this text has {polis}." in page
    )
    assert path.read_text() == before
    with Session(rt.engine) as s:
        assert s.exec(select(TextChange)).all() == []
