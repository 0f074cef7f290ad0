"""Survey definitions: the shipped one is valid; each broken fixture names file, line, problem.

Each file under ``fixtures/broken/`` is the shipped definition with one mistake, so a failure
here points at one rule. `citoyen flows check` prints the same problems and exits 1.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from citoyen.cli import main
from citoyen.engine import load_bundle
from citoyen.services.areas.trees import shipped_area_tree
from citoyen.services.surveys import load_surveys

ROOT = Path(__file__).resolve().parents[3]
BROKEN = Path(__file__).parent / "fixtures" / "broken"

# fixture -> (line, words the message must contain)
EXPECTED = {
    "bad_yaml": (15, "bad YAML"),
    "unknown_flow": (4, "unknown flow 'perceived_safty'"),
    "bad_cron": (6, "bad cron expression '0 25 1 * *'"),
    "unknown_field": (21, "unknown field 'expires'"),
    "bad_quiet_hours": (15, "'start' must be before 'end'"),
    "unknown_area": (9, "unknown area code 'ML-BKO.commune-ix'"),
    "unknown_language": (10, "unknown language 'wo'"),
    "sample_both": (11, "exactly one of 'size' or 'share'"),
    "indicator_unknown_answer": (30, "'quite_safe' is not an answer of 'safe_after_dark'"),
    "reminder_after_expiry": (19, "the reminder must come before the survey expires"),
    "unknown_channel": (14, "'sms', 'telegram' or 'voice'"),
    "bad_duration": (13, "bad duration '2 months'"),
    "id_mismatch": (3, "must be the file name 'id_mismatch'"),
}


def _flows_with(tmp_path: Path, kind: str) -> Path:
    flows = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", flows)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.rmtree(flows / "surveys")
    (flows / "surveys").mkdir()
    shutil.copy(BROKEN / f"{kind}.yaml", flows / "surveys" / f"{kind}.yaml")
    return flows


def test_every_broken_fixture_has_an_expectation() -> None:
    assert {p.stem for p in BROKEN.glob("*.yaml")} == set(EXPECTED)


def test_shipped_definitions_are_valid() -> None:
    bundle = load_bundle(ROOT / "flows", ROOT / "locales")
    result = load_surveys(ROOT / "flows", bundle, shipped_area_tree())
    assert result.problems == []
    survey = result.surveys["perceived_safety_monthly"]
    assert survey.flow == "perceived_safety" and survey.schedule is not None


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_broken_fixture_names_file_line_and_problem(tmp_path: Path, kind: str) -> None:
    flows = _flows_with(tmp_path, kind)
    bundle = load_bundle(flows, ROOT / "locales")
    result = load_surveys(flows, bundle, shipped_area_tree())
    line, words = EXPECTED[kind]
    assert kind not in result.surveys
    [error] = result.errors
    assert error.file == f"flows/surveys/{kind}.yaml"
    assert error.line == line, str(error)
    assert words in error.message, str(error)


@pytest.mark.parametrize("kind", ["bad_cron", "unknown_flow", "bad_yaml"])
def test_flows_check_prints_survey_problems(tmp_path: Path, settings, kind: str) -> None:
    flows = _flows_with(tmp_path, kind)
    broken = settings.model_copy(update={"flows_dir": flows})
    result = CliRunner().invoke(main, ["flows", "check"], obj={"settings": broken})
    assert result.exit_code == 1
    line, _ = EXPECTED[kind]
    assert re.search(rf"^error: flows/surveys/{kind}\.yaml:{line}: ", result.output, re.M), (
        result.output
    )


def test_the_surveys_folder_is_not_read_as_flows() -> None:
    bundle = load_bundle(ROOT / "flows", ROOT / "locales")
    assert "perceived_safety_monthly" not in bundle.flows
