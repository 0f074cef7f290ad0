"""A deployment on the layout before (configuration in the flows folder): it still runs, says
so in `citoyen flows check` and in the service's log, and `citoyen flows migrate-layout` moves
it to the configuration folder (CITOYEN_CONFIG_DIR)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from citoyen.cli import main
from citoyen.config import Settings
from citoyen.engine.layout import default_config_dir
from citoyen.runtime import Runtime
from citoyen.services import flows as flows_service

ROOT = Path(__file__).resolve().parents[2]
MOVED = ("settings.yaml", "stakeholders.yaml", "routing.yaml")


@pytest.fixture
def before(settings: Settings, tmp_path: Path) -> Settings:
    """The shipped flows and configuration, all in one flows folder as deployments had them."""
    flows = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", flows)
    for name in MOVED:
        shutil.copy(ROOT / "config" / name, flows / name)
    flows_service.clear_cache()
    return settings.model_copy(update={"flows_dir": flows})


def invoke(settings: Settings, *args: str):
    return CliRunner().invoke(main, list(args), obj={"settings": settings})


def said(result) -> str:  # type: ignore[no-untyped-def]
    return " ".join(result.output.split())  # the console wraps long lines


def test_the_configuration_folder_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    flows = tmp_path / "deploy" / "flows"
    monkeypatch.setenv("CITOYEN_FLOWS_DIR", str(flows))
    monkeypatch.delenv("CITOYEN_CONFIG_DIR", raising=False)
    assert Settings().resolved_config_dir == default_config_dir(flows) == tmp_path / "deploy/config"
    monkeypatch.setenv("CITOYEN_CONFIG_DIR", str(tmp_path / "etc"))
    assert Settings().resolved_config_dir == tmp_path / "etc"


def test_flows_check_warns_about_each_file_of_the_layout_before_and_passes(
    before: Settings, tmp_path: Path
) -> None:
    result = invoke(before, "flows", "check")
    assert result.exit_code == 0, result.output
    for name in MOVED:
        warning = (
            f"flows/{name}: configuration in the flows folder is read for one more "
            f"release only: move it to {tmp_path / 'config' / name} (`citoyen flows "
            "migrate-layout` does)"
        )
        assert f"warning: {warning}" in said(result)


def test_in_a_terminal_flows_check_prints_each_warning_once(before: Settings, tmp_path: Path):
    """The command as an operator runs it, logging configured by the CLI: the warning the
    bundle's loading logs is not printed beside the command's own list."""
    env = {
        **os.environ,
        "CITOYEN_FLOWS_DIR": str(before.flows_dir),
        "CITOYEN_INSTANCE_DIR": str(tmp_path / "instance"),
    }
    env.pop("CITOYEN_CONFIG_DIR", None)
    env.pop("CITOYEN_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "citoyen.cli", "flows", "check"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    printed = " ".join((done.stdout + done.stderr).split())
    for name in MOVED:
        assert printed.count(f"flows/{name}: configuration in the flows folder") == 1, printed


def test_the_service_logs_the_layout_before_at_start(
    before: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = Runtime(before)
    with caplog.at_level(logging.WARNING, logger="citoyen.services.flows"):
        assert runtime.bundle.settings.languages.default == "fr"
        assert runtime.router.config.fallback == "moderation"
    logged = [r.getMessage() for r in caplog.records if r.name == "citoyen.services.flows"]
    assert [m.split(":")[0] for m in logged] == [f"flows/{name}" for name in MOVED]
    assert all(str(tmp_path / "config") in m for m in logged)


def test_migrate_layout_moves_the_files_and_the_check_passes(
    before: Settings, tmp_path: Path
) -> None:
    shipped = {name: (ROOT / "config" / name).read_text("utf-8") for name in MOVED}
    dry = invoke(before, "flows", "migrate-layout", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"would move: {tmp_path / 'flows' / 'settings.yaml'} ->" in said(dry)
    assert all((tmp_path / "flows" / name).is_file() for name in MOVED)

    result = invoke(before, "flows", "migrate-layout")
    assert result.exit_code == 0, result.output
    for name in MOVED:
        assert f"moved: {tmp_path / 'flows' / name} -> {tmp_path / 'config' / name}" in said(result)
        assert not (tmp_path / "flows" / name).exists()
        assert (tmp_path / "config" / name).read_text("utf-8") == shipped[name]

    flows_service.clear_cache()
    check = invoke(before, "flows", "check")
    assert check.exit_code == 0, check.output
    assert "flows folder" not in check.output
    again = invoke(before, "flows", "migrate-layout")
    assert (again.exit_code, said(again)) == (
        0,
        f"nothing to move: the configuration is in {tmp_path / 'config'}",
    )


def test_migrate_layout_leaves_a_file_in_both_places_and_fails(
    before: Settings, tmp_path: Path
) -> None:
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config" / "routing.yaml", tmp_path / "config" / "routing.yaml")
    check = invoke(before, "flows", "check")
    assert check.exit_code == 1
    assert (
        f"error: flows/routing.yaml: also in {tmp_path / 'config' / 'routing.yaml'}, which is "
        "the one read: delete one of the two"
    ) in said(check)

    result = invoke(before, "flows", "migrate-layout")
    assert result.exit_code == 1
    assert f"left: {tmp_path / 'flows' / 'routing.yaml'}: " in said(result)
    assert "keep one copy of each file left in both places" in said(result)
    assert (tmp_path / "flows" / "routing.yaml").is_file()
    assert (tmp_path / "config" / "settings.yaml").is_file()  # the others moved


def test_flows_check_names_the_configuration_folder_in_its_errors(
    settings: Settings, tmp_path: Path
) -> None:
    shutil.copytree(ROOT / "flows", tmp_path / "flows")
    shutil.copytree(ROOT / "config", tmp_path / "config")
    path = tmp_path / "config" / "settings.yaml"
    path.write_text(path.read_text("utf-8").replace("  default: fr\n", "  default: wo\n"), "utf-8")
    result = invoke(settings.model_copy(update={"flows_dir": tmp_path / "flows"}), "flows", "check")
    assert result.exit_code == 1
    assert re.search(
        r"^error: config/settings\.yaml:4: default language 'wo' is not enabled",
        result.output,
        re.M,
    ), result.output
