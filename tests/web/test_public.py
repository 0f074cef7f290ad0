"""The public pages and open data through Flask's test client: content, protection, caching.

Reports are made the real way (routed into queues) at fixed dates, with a fixed clock for the
pages; the reporters' numbers and descriptions are known strings, looked for everywhere public.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from markupsafe import escape
from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.models import Area, QueueEntry, Report
from citoyen.services.publication.figures import clear_cache
from citoyen.web import create_app
from tests.routing.support import make_report

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
MARCH = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
SECRET_TEXT = "Moussa Traoré derrière la pharmacie du marché"
NUMBERS = [f"+2237655{i:04d}" for i in range(40)]


@pytest.fixture
def public_app(rt) -> Flask:
    clear_cache()
    app = create_app({"TESTING": True, "PUBLIC_CLOCK": lambda: NOW}, runtime=rt)
    yield app
    clear_cache()


def seed(rt) -> list[Report]:
    """12 thefts in Commune IV in March (shown), 3 violence reports there (hidden), 2 thefts
    in Commune I (hidden), each with a known number, and a description on some."""
    plan = [("theft", "ML-BKO.commune-iv")] * 12 + [("violence", "ML-BKO.commune-iv")] * 3
    plan += [("theft", "ML-BKO.commune-i")] * 2
    reports = []
    for i, (category, area) in enumerate(plan):
        reports.append(
            make_report(
                rt, category=category, area=area, address=NUMBERS[i], now=MARCH + timedelta(hours=i)
            )
        )
    with write_session(rt.engine) as session:
        for r in reports[-5:]:
            session.get(Report, r.id).description = SECRET_TEXT
        # Half of Commune IV's thefts were taken in hand within an hour.
        for r in reports[:6]:
            for entry in session.exec(select(QueueEntry).where(QueueEntry.report_id == r.id)):
                entry.acknowledged_at = entry.created_at + timedelta(hours=1)
                entry.status = "acknowledged"
    return reports


def test_pages_show_protected_figures_without_sign_in(public_app: Flask, rt) -> None:
    seed(rt)
    client = public_app.test_client()
    assert client.get("/").headers["Location"].endswith("/public/")
    page = client.get("/public/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Mali · 2026" in html and "Signalements reçus" in html
    # Mali: 17 reports in 2026, all in March: Bamako region visible.
    assert re.search(r"Signalements reçus: 17", html)
    commune_iv = client.get("/public/area/ML-BKO.commune-iv").get_data(as_text=True)
    assert re.search(r"Signalements reçus: 15", commune_iv)
    row = re.search(r"<tr><th>Vol ou cambriolage</th>(.*?)</tr>", commune_iv).group(1)
    assert "<td>12</td>" in row  # March
    label = re.escape(escape(rt.bundle.catalog.text("report.category.violence", "fr")))
    violence = re.search(rf"<tr><th>{label}</th>(.*?)</tr>", commune_iv).group(1)
    assert "<td>3</td>" not in violence and "&lt;10" in violence
    # The total row would be 15 = 12 + 3: it stays, but then March's total cannot also give
    # 3 away: the cube's secondary suppression leaves every hidden cell unrecoverable.
    commune_i = client.get("/public/area/ML-BKO.commune-i").get_data(as_text=True)
    assert re.search(r"Signalements reçus: <span class=\"hidden\">&lt;10</span>", commune_i)
    # Bamako = IV + I + others: I is hidden, so is something beside it.
    bamako = client.get("/public/area/ML-BKO").get_data(as_text=True)
    assert "Commune I" in bamako  # the links to the communes below
    assert client.get("/public/area/NOPE").status_code == 404
    assert client.get("/public/area/ML-BKO?year=1999").status_code == 404


def test_languages_and_the_how_we_count_page(public_app: Flask, rt) -> None:
    seed(rt)
    client = public_app.test_client()
    bm = client.get("/public/?lang=bm").get_data(as_text=True)
    assert '<html lang="bm">' in bm and "Kunnafoni minnu sera" in bm
    en = client.get("/public/?lang=en").get_data(as_text=True)
    assert "Reports received" in en
    how = client.get("/public/how").get_data(as_text=True)
    assert "moins de 10" in how and "CC BY 4.0" in how and "<code>measure</code>" in how


def test_open_data_has_the_page_figures_and_a_licence(public_app: Flask, rt) -> None:
    seed(rt)
    client = public_app.test_client()
    data = client.get("/public/area/ML-BKO.commune-iv/2026.json")
    assert data.status_code == 200 and "attachment" in data.headers["Content-Disposition"]
    doc = json.loads(data.data)
    assert "CC BY 4.0" in doc["licence"] and doc["threshold"] == 10
    figures = {(r["table"], r["period"], r["group"], r["measure"]): r["value"] for r in doc["rows"]}
    assert figures[("reports", "2026-03", "theft", "count")] == 12
    assert figures[("reports", "2026-03", "violence", "count")] is None
    text = client.get("/public/area/ML-BKO.commune-iv/2026.csv").get_data(as_text=True)
    assert text.startswith("# Licence")
    rows = list(csv.DictReader(io.StringIO(text.split("\n", 1)[1])))
    assert {r["measure"] for r in rows} >= {"count", "entries", "on_time", "n"}
    theft = next(r for r in rows if (r["period"], r["group"]) == ("2026-03", "theft"))
    assert theft["value"] == "12"
    assert client.get("/public/area/ML-BKO.commune-iv/2026.xml").status_code == 404


def test_nothing_personal_appears_anywhere_public(public_app: Flask, rt) -> None:
    reports = seed(rt)
    client = public_app.test_client()
    with Session(rt.engine) as session:
        codes = ["ML", *session.exec(select(Area.code).where(Area.code.like("ML-BKO%"))).all()]
    bodies = [client.get("/public/how").get_data(as_text=True)]
    for code in codes:
        for lang in ("fr", "bm", "en"):
            bodies.append(client.get(f"/public/area/{code}?lang={lang}").get_data(as_text=True))
        for fmt in ("csv", "json"):
            bodies.append(client.get(f"/public/area/{code}/2026.{fmt}").get_data(as_text=True))
    everything = "\n".join(bodies)
    assert len(bodies) > 10
    for number in NUMBERS:
        assert number not in everything and number[4:] not in everything
    assert "Moussa" not in everything and "pharmacie" not in everything
    for report in reports:
        assert report.reference not in everything
        assert report.reference.replace("-", "") not in everything
    # No date finer than the month in the figures (the computation date is in the footer).
    assert not re.search(r"2026-03-\d\d", everything)


def test_pages_are_cached_and_say_so(public_app: Flask, rt) -> None:
    seed(rt)
    client = public_app.test_client()
    first = client.get("/public/area/ML-BKO.commune-iv")
    assert first.headers["Cache-Control"] == "public, max-age=300"
    assert re.search(r"Signalements reçus: 15", first.get_data(as_text=True))
    make_report(rt, category="theft", area="ML-BKO.commune-iv", now=MARCH)
    again = client.get("/public/area/ML-BKO.commune-iv").get_data(as_text=True)
    assert re.search(r"Signalements reçus: 15", again)  # from the cache, not the database
    clear_cache()
    fresh = client.get("/public/area/ML-BKO.commune-iv").get_data(as_text=True)
    assert re.search(r"Signalements reçus: 16", fresh)


def test_page_weight_stays_small(public_app: Flask, rt) -> None:
    seed(rt)
    client = public_app.test_client()
    for path in ("/public/", "/public/area/ML-BKO", "/public/area/ML-BKO.commune-iv"):
        html = client.get(path).data
        css = client.get("/static/public/public.css").data
        assert len(html) + len(css) < 100_000, path
        assert b"<script" not in html and b"style=" not in html


def test_stale_figures_are_served_while_the_next_are_computed(rt) -> None:
    """Past the cache time, readers get the last figures at once and one background thread
    computes the next (a country's figures take seconds); the following readers get those."""
    import time

    from citoyen.services.publication import figures as figures_module
    from citoyen.services.publication.figures import public_figures

    clear_cache()
    seed(rt)
    rt.settings.public_cache_seconds = 0  # every figure is already stale
    first = public_figures(rt, NOW)
    assert first.reports_count("ML-BKO.commune-iv", "2026") == 15
    for _ in range(10):
        make_report(rt, category="theft", area="ML-BKO.commune-iv", now=MARCH)
    assert public_figures(rt, NOW) is first  # stale, returned without waiting
    for _ in range(300):
        latest = public_figures(rt, NOW)
        if latest is not first:
            break
        time.sleep(0.1)
    assert latest is not first
    assert latest.reports_count("ML-BKO.commune-iv", "2026") == 25
    while figures_module._refreshing:  # let a refresh started meanwhile end before teardown
        time.sleep(0.1)
    clear_cache()
