"""Flows in the flows folder, configuration in its own folder; the layout before still read.

The valid fixture has the layout of a deployment: ``flows/`` (flows only), ``config/settings.yaml``
and ``locales/``. The layout before kept ``settings.yaml`` (and the routing files) in ``flows/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from citoyen.engine import FlowError, check, load_bundle
from citoyen.engine.layout import CONFIG_FILES, Layout, default_config_dir
from tests.engine.support import VALID

MIGRATE = "`citoyen flows migrate-layout` does"


def deployment(tmp_path: Path) -> Path:
    root = tmp_path / "deploy"
    shutil.copytree(VALID, root)
    return root


def layout_before(tmp_path: Path) -> Path:
    """The valid fixture with its settings in the flows folder, as deployments had it."""
    root = deployment(tmp_path)
    (root / "config" / "settings.yaml").rename(root / "flows" / "settings.yaml")
    (root / "config").rmdir()
    return root


def test_the_configuration_folder_is_beside_the_flows_folder() -> None:
    assert default_config_dir(Path("/srv/citoyen/flows")) == Path("/srv/citoyen/config")
    assert Layout.of(VALID / "flows").config_dir == VALID / "config"


def test_flows_and_configuration_in_their_own_folders_load_without_warning() -> None:
    problems = check(VALID / "flows", VALID / "locales")
    assert [p for p in problems if p.level == "error"] == []
    assert not [p for p in problems if "flows folder" in p.message]
    bundle = load_bundle(VALID / "flows", VALID / "locales")
    assert sorted(bundle.flows) == ["demo", "survey"]
    assert bundle.settings.languages.enabled == ["fr", "bm"]


def test_settings_in_the_flows_folder_still_load_with_a_warning(tmp_path: Path) -> None:
    root = layout_before(tmp_path)
    problems = check(root / "flows", root / "locales")
    assert [p for p in problems if p.level == "error"] == []
    [warning] = [p for p in problems if "flows folder" in p.message]
    assert (warning.level, warning.file) == ("warning", "flows/settings.yaml")
    assert warning.message == (
        "configuration in the flows folder is read for one more release only: move it to "
        f"{root / 'config' / 'settings.yaml'} ({MIGRATE})"
    )
    bundle = load_bundle(root / "flows", root / "locales")
    assert sorted(bundle.flows) == ["demo", "survey"]  # settings.yaml is not taken for a flow
    assert bundle.settings == load_bundle(VALID / "flows", VALID / "locales").settings
    assert warning in bundle.warnings


def test_a_file_in_both_places_is_an_error(tmp_path: Path) -> None:
    root = deployment(tmp_path)
    shutil.copy(root / "config" / "settings.yaml", root / "flows" / "settings.yaml")
    with pytest.raises(FlowError) as raised:
        load_bundle(root / "flows", root / "locales")
    [error] = raised.value.errors
    assert str(error) == (
        f"flows/settings.yaml: also in {root / 'config' / 'settings.yaml'}, which is the one "
        "read: delete one of the two"
    )


def test_errors_in_the_settings_name_their_new_place(tmp_path: Path) -> None:
    root = deployment(tmp_path)
    settings = root / "config" / "settings.yaml"
    settings.write_text(settings.read_text("utf-8").replace("default: fr", "default: en"), "utf-8")
    errors = [str(p) for p in check(root / "flows", root / "locales") if p.level == "error"]
    assert errors == ["config/settings.yaml:4: default language 'en' is not enabled"]


def test_a_configuration_folder_given_by_name(tmp_path: Path) -> None:
    """CITOYEN_CONFIG_DIR elsewhere: read from there, and messages name that folder."""
    root = deployment(tmp_path)
    elsewhere = tmp_path / "etc-citoyen"
    (root / "config").rename(elsewhere)
    assert load_bundle(root / "flows", root / "locales", config_dir=elsewhere).settings
    (elsewhere / "settings.yaml").unlink()
    problems = check(root / "flows", root / "locales", config_dir=elsewhere)
    [error] = [p for p in problems if p.file.endswith("settings.yaml")]
    assert str(error) == "etc-citoyen/settings.yaml: settings.yaml not found"


def test_migrate_moves_every_configuration_file_and_the_result_loads(tmp_path: Path) -> None:
    root = layout_before(tmp_path)
    flows = root / "flows"
    texts = {"settings.yaml": (flows / "settings.yaml").read_text("utf-8")}
    for name in ("stakeholders.yaml", "routing.yaml", "whatsapp/templates.yaml"):
        (flows / name).parent.mkdir(exist_ok=True)
        texts[name] = f"# {name}\n"
        (flows / name).write_text(texts[name], "utf-8")
    layout = Layout.of(flows)
    assert [p.file for p in layout.problems()] == [f"flows/{name}" for name in CONFIG_FILES]

    planned = layout.migrate(dry_run=True)
    assert [(m.source, m.target, m.done) for m in planned] == [
        (flows / name, root / "config" / name, False) for name in CONFIG_FILES
    ]
    assert all((flows / name).is_file() for name in CONFIG_FILES)  # a dry run moves nothing

    moves = layout.migrate()
    assert [(m.source, m.target, m.done, m.reason) for m in moves] == [
        (flows / name, root / "config" / name, True, "") for name in CONFIG_FILES
    ]
    assert {n: (root / "config" / n).read_text("utf-8") for n in CONFIG_FILES} == texts
    assert sorted(p.name for p in flows.iterdir()) == ["demo.yaml", "survey.yaml"]
    assert layout.problems() == []
    assert layout.migrate() == []
    problems = check(flows, root / "locales")
    assert [p for p in problems if p.level == "error" or "flows folder" in p.message] == []


def test_migrate_never_overwrites_a_file_already_in_the_configuration_folder(
    tmp_path: Path,
) -> None:
    root = deployment(tmp_path)
    (root / "flows" / "settings.yaml").write_text("# the old copy\n", "utf-8")
    kept = (root / "config" / "settings.yaml").read_text("utf-8")
    [move] = Layout.of(root / "flows").migrate()
    assert (move.done, move.reason) == (
        False,
        f"{root / 'config' / 'settings.yaml'} exists already",
    )
    assert (root / "flows" / "settings.yaml").read_text("utf-8") == "# the old copy\n"
    assert (root / "config" / "settings.yaml").read_text("utf-8") == kept
