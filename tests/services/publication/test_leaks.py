"""The two leaks of `citoyen survey results`, through the command as an operator runs it.

1. A suppressed cell showed its count of "safe" answers beside a hidden n (``safe=1``).
2. No secondary suppression: a cercle with commune A (n large) and commune B (n small, hidden)
   showed the cercle's n, and the cercle minus A gave B.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select

from citoyen.cli import main
from citoyen.db import write_session
from citoyen.models import Area, SurveyRun
from citoyen.runtime import Runtime
from citoyen.services.setup import ensure_ready
from tests.services.surveys.test_indicators import _answer, add_contact_in

ROOT = Path(__file__).resolve().parents[3]
SURVEY = """\
id: leak_survey
flow: perceived_safety
channels: [sms]
"""
WHEN = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def runtime(settings, tmp_path: Path) -> Runtime:
    flows = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", flows)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    (flows / "surveys" / "leak_survey.yaml").write_text(SURVEY, encoding="utf-8")
    runtime = Runtime(settings.model_copy(update={"flows_dir": flows}))
    ensure_ready(runtime)
    return runtime


def two_communes_of_one_cercle(runtime: Runtime) -> tuple[str, str, str]:
    """(cercle, first commune, second commune) of a cercle with exactly two communes, if any,
    else of the first cercle with at least two."""
    with Session(runtime.engine) as session:
        for cercle in session.exec(select(Area).where(Area.level == "cercle").order_by(Area.code)):
            communes = session.exec(
                select(Area.code).where(Area.parent_id == cercle.id, Area.level == "commune")
            ).all()
            if len(communes) >= 2:
                return cercle.code, communes[0], communes[1]
    raise AssertionError("no cercle with two communes in the shipped areas")


def seed(runtime: Runtime, plan: list[tuple[str, str]]) -> None:
    with write_session(runtime.engine) as session:
        run = SurveyRun(survey="leak_survey", key="k", flow_id="perceived_safety")
        session.add(run)
        session.flush()
        for i, (area, answer) in enumerate(plan):
            _answer(
                session,
                run,
                add_contact_in(session, runtime, f"+2237630{i:04d}", area),
                answer,
                WHEN,
            )


def results(runtime: Runtime, *args: str):
    out = CliRunner().invoke(
        main, ["survey", "results", "leak_survey", *args], obj={"runtime": runtime}
    )
    assert out.exit_code == 0, out.output
    return out.stdout


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_a_suppressed_cell_shows_no_count_at_all(runtime: Runtime, fmt: str) -> None:
    _, a, b = two_communes_of_one_cercle(runtime)
    seed(runtime, [(a, "very_safe")] * 30 + [(b, "very_safe")] + [(b, "very_unsafe")] * 3)
    text = results(runtime, "--format", fmt)
    rows = json.loads(text) if fmt == "json" else list(csv.DictReader(io.StringIO(text)))
    cell = next(r for r in rows if r["area_code"] == b)
    assert cell["suppressed"] in (True, "True")
    for key in ("n", "safe", "excluded", "share", "low", "high", "change"):
        assert cell[key] in (None, ""), f"{key} leaks: {cell[key]!r}"


def test_the_cercle_minus_the_big_commune_does_not_give_the_small_one(runtime: Runtime) -> None:
    cercle, a, b = two_communes_of_one_cercle(runtime)
    seed(runtime, [(a, "fairly_safe")] * 55 + [(b, "very_safe")] * 5)
    published: dict[str, int | None] = {}
    for level in ("commune", "cercle", "region", "national"):
        for row in json.loads(results(runtime, "--by", level, "--format", "json")):
            if row["period"] == "2026-11":
                published[row["area_code"]] = row["n"]
    assert published[b] is None
    # With the cercle's n and every other commune's n shown, B would be their difference:
    with Session(runtime.engine) as session:
        cid = session.exec(select(Area.id).where(Area.code == cercle)).one()
        siblings = session.exec(select(Area.code).where(Area.parent_id == cid)).all()
    known = [published.get(code) for code in siblings if code != b]
    assert published[cercle] is None or None in known, (
        f"cercle {published[cercle]} minus the others {known} gives B"
    )
    # And the table says how many cells it withheld, never their figures.
    table = results(runtime, "--by", "commune")
    assert "suppressed" in table
