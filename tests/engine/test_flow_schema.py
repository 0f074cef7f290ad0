"""Flow versions and definitions: what a conversation is pinned to."""

from __future__ import annotations

import json
from pathlib import Path

from citoyen.engine import Flow, load_bundle
from citoyen.engine.loader import plain
from citoyen.engine.schema import duration_seconds
from citoyen.i18n import read_yaml
from tests.engine.support import VALID


def _flow(path: Path) -> Flow:
    return Flow.model_validate(plain(read_yaml(path)))


def test_definition_round_trip_keeps_version(bundle) -> None:  # type: ignore[no-untyped-def]
    for flow in bundle.flows.values():
        stored = json.loads(json.dumps(flow.to_definition()))
        again = Flow.from_definition(stored)
        assert again == flow
        assert again.version == flow.version
        assert len(flow.version) == 64


def test_version_ignores_comments_and_formatting(tmp_path: Path) -> None:
    source = (VALID / "flows/survey.yaml").read_text(encoding="utf-8")
    reformatted = "# a new comment\n" + source.replace("  lang:\n", "\n  lang:   # the menu\n")
    (tmp_path / "survey.yaml").write_text(reformatted, encoding="utf-8")
    assert _flow(tmp_path / "survey.yaml").version == _flow(VALID / "flows/survey.yaml").version


def test_version_changes_with_content(tmp_path: Path) -> None:
    source = (VALID / "flows/survey.yaml").read_text(encoding="utf-8")
    (tmp_path / "survey.yaml").write_text(source.replace("expiry: 1d", "expiry: 2d"), "utf-8")
    assert _flow(tmp_path / "survey.yaml").version != _flow(VALID / "flows/survey.yaml").version


def test_definition_uses_yaml_names() -> None:
    flow = _flow(VALID / "flows/demo.yaml")
    branch = flow.to_definition()["nodes"]["check"]["branches"][1]
    assert branch["if"] == {
        "all": [{"answer": "category", "in": ["fire"]}, {"not": {"answer": "place", "set": True}}]
    }


def test_expiry_and_defaults() -> None:
    bundle = load_bundle(VALID / "flows", VALID / "locales")
    assert bundle.flows["demo"].expiry_seconds == 1800
    assert bundle.flows["survey"].expiry_seconds == 86400
    assert bundle.flows["survey"].max_retries == 3
    assert duration_seconds("90s") == 90
    assert [t.kind for t in bundle.flows["demo"].triggers] == [
        "keyword",
        "first_contact",
        "incoming_call",
        "default",
    ]
    assert bundle.settings.keyword_map()["stop"] == ("STOP", "DABILA", "A DABILA")
