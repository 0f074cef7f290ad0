"""`citoyen survey run` and `citoyen survey results` through click's runner."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select

from citoyen.cli import main
from citoyen.engine.sms import segments
from citoyen.models import Outbox, SurveyInvitation
from citoyen.runtime import Runtime
from citoyen.services.setup import ensure_ready
from tests.services.surveys.conftest import add_contact

ROOT = Path(__file__).resolve().parents[2]
SURVEY = """\
id: cli_survey
flow: perceived_safety
channels: [telegram, sms, voice]
quiet_hours:
  start: "00:00"
  end: "23:59"
expiry: 3d
"""


@pytest.fixture
def runtime(settings, tmp_path: Path) -> Runtime:
    flows = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", flows)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    (flows / "surveys" / "cli_survey.yaml").write_text(SURVEY, encoding="utf-8")
    runtime = Runtime(settings.model_copy(update={"flows_dir": flows}))
    ensure_ready(runtime)
    return runtime


def invoke(runtime: Runtime, *args: str):
    return CliRunner().invoke(main, ["survey", *args], obj={"runtime": runtime})


def test_dry_run_counts_per_channel_and_sends_nothing(runtime: Runtime) -> None:
    for i in range(3):
        add_contact(runtime, f"+2237640{i:04d}", last_channel="sms", language="fr")
    add_contact(runtime, "+22376409999", last_channel="voice")
    add_contact(runtime, "telegram:5554001")
    add_contact(runtime, "+22376408888", consent=False)
    result = invoke(runtime, "run", "cli_survey", "--dry-run")
    assert result.exit_code == 0, result.output
    rows = dict(re.findall(r"│\s*(sms|telegram|voice|total)\s*│\s*(\d+)\s*│", result.stdout))
    assert rows == {"sms": "3", "telegram": "1", "voice": "1", "total": "5"}
    # The SMS estimate: each French invitation as it would be sent, counted in segments.
    from citoyen.services.surveys import surveys_for
    from citoyen.services.surveys.runs import estimated_segments

    survey = surveys_for(runtime)["cli_survey"]
    one = estimated_segments(runtime.bundle.catalog, runtime.bundle, survey, ["fr"])
    assert one >= 1
    assert f"about {3 * one} SMS segment(s)" in result.stdout
    assert "5 eligible" in result.stdout and "Nothing was sent" in result.stdout
    # No sample: the dry run draws everyone eligible, as the real run does, so no caveat.
    assert "estimate" not in result.stdout
    with Session(runtime.engine) as session:
        assert session.exec(select(SurveyInvitation)).all() == []
        assert session.exec(select(Outbox)).all() == []


def test_estimate_matches_the_queued_invitation(runtime: Runtime) -> None:
    add_contact(runtime, "+22376401111", language="bm")
    from citoyen.services.surveys import surveys_for
    from citoyen.services.surveys.runs import estimated_segments

    survey = surveys_for(runtime)["cli_survey"]
    estimate = estimated_segments(runtime.bundle.catalog, runtime.bundle, survey, ["bm"])
    assert invoke(runtime, "run", "cli_survey").exit_code == 0
    with Session(runtime.engine) as session:
        bodies = [r.body for r in session.exec(select(Outbox).where(Outbox.kind == "survey"))]
    assert sum(segments(b) for b in bodies) == estimate


def test_run_invites_and_reports(runtime: Runtime) -> None:
    add_contact(runtime, "+22376402222")
    add_contact(runtime, "telegram:5554002")
    result = invoke(runtime, "run", "cli_survey")
    assert result.exit_code == 0, result.output
    assert re.search(r"2 eligible, 2 drawn, 2 invited \(sms: 1, telegram: 1\)", result.stdout)
    assert "76402222" not in result.output
    with Session(runtime.engine) as session:
        assert len(session.exec(select(SurveyInvitation)).all()) == 2


def test_unknown_survey_and_no_answers(runtime: Runtime) -> None:
    result = invoke(runtime, "run", "nope")
    assert result.exit_code != 0
    assert "unknown survey 'nope'" in result.output and "cli_survey" in result.output
    empty = invoke(runtime, "results", "cli_survey", "--format", "json")
    assert empty.exit_code == 0 and json.loads(empty.stdout) == []
    table = invoke(runtime, "results", "cli_survey")
    assert table.exit_code == 0 and "no answers yet" in table.stdout
    bad = invoke(runtime, "results", "cli_survey", "--by", "village")
    assert bad.exit_code == 2


def test_results_say_how_many_answers_when_every_cell_is_suppressed(runtime: Runtime) -> None:
    """Three answers in one commune, min-n 10: the cell exists but is suppressed; the command
    says there are answers and why nothing is shown, not "no answers yet"."""
    from datetime import UTC, datetime

    from citoyen.db import write_session
    from citoyen.models import SurveyRun
    from tests.services.surveys.test_indicators import _answer, add_contact_in

    when = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    with write_session(runtime.engine) as session:
        run = SurveyRun(survey="cli_survey", key="k", flow_id="perceived_safety")
        session.add(run)
        session.flush()
        for i in range(3):
            cid = add_contact_in(session, runtime, f"+2237620{i:04d}", "ML-BKO.commune-i")
            _answer(session, run, cid, "very_safe", when)
    table = invoke(runtime, "results", "cli_survey")
    assert table.exit_code == 0, table.output
    said = " ".join(table.stdout.split())
    assert "no answers yet" not in said
    assert "3 answer(s); every cell is suppressed (fewer than 10 answers, min-n" in said


def test_dry_run_of_a_sampled_survey_calls_its_figures_an_estimate(runtime: Runtime) -> None:
    sampled = SURVEY.replace("channels:", "audience:\n  sample:\n    size: 2\nchannels:")
    (runtime.settings.flows_dir / "surveys" / "cli_survey.yaml").write_text(sampled, "utf-8")
    for i in range(4):
        add_contact(runtime, f"+2237641{i:04d}", last_channel="sms", language="fr")
    result = invoke(runtime, "run", "cli_survey", "--dry-run")
    assert result.exit_code == 0, result.output
    said = " ".join(result.stdout.split())
    assert "4 eligible contact(s); 2 drawn (a sample drawn for this dry run" in said
    assert "the figures per channel are an estimate" in said


def test_dry_run_says_how_long_the_outbox_will_take(runtime: Runtime) -> None:
    """Two SMS contacts; 118 SMS already waiting; one SMS a minute: with the run's invitations
    the queue takes two hours. The clock is fixed; the survey's quiet hours are open."""
    from datetime import UTC, datetime

    import time_machine

    from citoyen.db import write_session
    from citoyen.services.outbox import enqueue_many, queued_row
    from citoyen.services.surveys import surveys_for
    from citoyen.services.surveys.runs import estimated_rows

    now = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    ids = [
        add_contact(runtime, f"+2237642{i:04d}", last_channel="sms", language="fr")
        for i in range(2)
    ]
    survey = surveys_for(runtime)["cli_survey"]
    per_invitation = estimated_rows(runtime.bundle.catalog, runtime.bundle, survey, "sms", ["fr"])
    waiting = 120 - 2 * per_invitation
    with write_session(runtime.engine) as session:
        enqueue_many(
            session,
            [
                queued_row(channel="sms", idempotency_key=f"t{i}", contact_id=ids[0], now=now)
                for i in range(waiting)
            ],
        )
    runtime.settings = runtime.settings.model_copy(update={"outbox_rate_sms": 1 / 60})
    with time_machine.travel(now):
        result = invoke(runtime, "run", "cli_survey", "--dry-run")
    assert result.exit_code == 0, result.output
    row = re.search(
        r"│\s*SMS\s*│\s*(\d+)\s*│\s*(\d+)\s*│\s*1/min\s*│([^│]*)│([^│]*)│([^│]*)│", result.stdout
    )
    assert row is not None, result.stdout
    assert (int(row[1]), int(row[2])) == (waiting, 2 * per_invitation)
    assert row[3].strip() == "28/11 10:00"  # starts now: the quiet hours are open
    assert row[4].strip() == "28/11 12:00"  # 120 SMS at one a minute
    assert row[5].strip() == "2 h 0 min"
