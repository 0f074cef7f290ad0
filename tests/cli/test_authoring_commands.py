"""Commands for flow authors and translators: ``flows diagram``."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner

from citoyen.cli import main
from citoyen.config import Settings
from citoyen.engine import load_bundle

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def invoke(settings: Settings):
    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        return runner.invoke(main, list(args), input=input, obj={"settings": settings})

    return run


@pytest.mark.parametrize("flow_id", ["report", "follow", "perceived_safety"])
def test_flows_diagram_writes_an_svg_of_every_node(
    invoke, settings: Settings, tmp_path: Path, flow_id: str
) -> None:
    out = tmp_path / f"{flow_id}.svg"
    result = invoke("flows", "diagram", flow_id, "-o", str(out))
    assert result.exit_code == 0, result.output
    svg = ElementTree.parse(out).getroot()
    assert svg.tag == f"{SVG}svg"
    nodes = {g.get("data-node") for g in svg.iter(f"{SVG}g") if g.get("data-node")}
    flow = load_bundle(settings.flows_dir, settings.locales_dir).flows[flow_id]
    assert nodes == set(flow.nodes)


def test_flows_diagram_in_another_language_and_unknown_names(invoke) -> None:
    result = invoke("flows", "diagram", "report", "--language", "en")
    assert result.exit_code == 0
    assert "What is the problem?" in result.output
    unknown = invoke("flows", "diagram", "nope")
    assert unknown.exit_code == 2 and "no flow 'nope'" in unknown.output
    bad_lang = invoke("flows", "diagram", "report", "--language", "xx")
    assert bad_lang.exit_code == 2 and "'xx' is not enabled" in bad_lang.output
