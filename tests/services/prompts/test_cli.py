"""`citoyen prompts ...` and the prompt warnings of `citoyen flows check`, through click."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from citoyen.cli import main
from citoyen.db import write_session
from citoyen.models import User
from citoyen.runtime import Runtime
from citoyen.services.prompts import catalogue, store_upload
from citoyen.services.prompts.pins import check_pin
from tests.services.prompts.sounds import wav


@pytest.fixture
def invoke(runtime: Runtime):  # type: ignore[no-untyped-def]
    def run(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(main, list(args), input=input, obj={"runtime": runtime})

    return run


def test_status_as_json_and_table(invoke, runtime: Runtime, staff: User) -> None:  # type: ignore[no-untyped-def]
    store_upload(runtime, "bm", "report.danger", wav(1.5), "d.wav", user_id=staff.id)
    result = invoke("prompts", "status", "--language", "bm", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    total = len(catalogue(runtime.bundle, "bm"))
    assert data["languages"]["bm"]["prompts"] == total
    assert data["languages"]["bm"]["recorded"] == 1
    row = next(p for p in data["prompts"] if p["key"] == "report.danger")
    assert (row["status"], row["source"], row["recorded_by"], row["duration_ms"]) == (
        "recorded",
        "upload",
        "awa@example.ml",
        1500,
    )
    table = invoke("prompts", "status")
    assert table.exit_code == 0, table.output
    assert re.search(r"│ bm\s+│ " + str(total) + r"\s+│ 1\s+│", table.stdout), table.stdout
    unknown = invoke("prompts", "status", "--language", "ff")
    assert unknown.exit_code == 1 and "language 'ff' is not enabled" in unknown.output


def test_import_reports_refused_files_and_exits_1(invoke, runtime: Runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "bm"
    folder.mkdir()
    (folder / "report.danger.wav").write_bytes(wav())
    (folder / "report.place.wav").write_bytes(b"hello")
    result = invoke("prompts", "import", str(folder), "--language", "bm")
    assert result.exit_code == 1
    assert "refused: bm/report.place.wav: this is not an audio file" in result.output
    assert "1 stored, 0 unchanged, 1 refused" in result.output


def test_set_pin(invoke, runtime: Runtime, staff: User) -> None:  # type: ignore[no-untyped-def]
    result = invoke("prompts", "set-pin", "--email", "awa@example.ml", input="5930\n5930\n")
    assert result.exit_code == 0, result.output
    assert f"staff number {staff.id}" in result.output
    with write_session(runtime.engine) as session:
        assert check_pin(session, str(staff.id), "5930", datetime.now(UTC))[0] == "ok"
    weak = invoke("prompts", "set-pin", "--email", "awa@example.ml", input="1111\n1111\n")
    assert weak.exit_code == 1 and "too easy to guess" in weak.output


def test_flows_check_counts_prompts_per_language(invoke, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    runtime.migrate()
    result = invoke("flows", "check")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert not any("no recorded audio for" in line for line in result.output.splitlines())
    prompt_warnings = [line for line in lines if "voice prompts have no recording" in line]
    assert len(prompt_warnings) == 1
    assert prompt_warnings[0].startswith("warning: locales/bm.yaml: ")
