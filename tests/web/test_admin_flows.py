"""The flows page ("Parcours"): a diagram per flow, the texts of each node in every language with
their SMS cost and voice state, and the problems of the files on disk."""

from __future__ import annotations

import shutil
from pathlib import Path
from xml.etree import ElementTree

import pytest
from flask import Flask

from citoyen.engine import sms
from citoyen.runtime import Runtime
from citoyen.web import create_app
from tests.web.conftest import sign_in

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def app(rt: Runtime) -> Flask:
    return create_app({"TESTING": True}, runtime=rt)


def diagram_of(html: str) -> ElementTree.Element:
    start, end = html.index("<svg"), html.index("</svg>") + len("</svg>")
    return ElementTree.fromstring(html[start:end])


def test_who_may_open_it(app: Flask) -> None:
    agent = sign_in(app, "agent@example.org", "agent", stakeholder="bko-police-c4")
    assert agent.get("/admin/flows").status_code == 403
    analyst = sign_in(app, "analyst@example.org", "analyst")
    assert analyst.get("/admin/flows").status_code == 403
    coordinator = sign_in(app, "coord@example.org", "coordinator", area="ML-BKO")
    assert coordinator.get("/admin/flows/report").status_code == 200
    assert coordinator.get("/admin/flows/nope").status_code == 404


def test_every_flow_has_its_diagram(app: Flask, rt: Runtime) -> None:
    client = sign_in(app, "admin@example.org", "admin")
    for flow_id, flow in rt.bundle.flows.items():
        html = client.get(f"/admin/flows/{flow_id}").get_data(as_text=True)
        svg = diagram_of(html)
        boxes = {g.get("data-node"): g for g in svg.iter(f"{SVG}g") if g.get("data-node")}
        assert set(boxes) == set(flow.nodes), flow_id
        arrows = [g for g in svg.iter(f"{SVG}g") if g.get("class") == "edge"]
        assert len(arrows) >= len(flow.nodes) - 1


def test_branches_options_and_actions_in_plain_words(app: Flask, rt: Runtime) -> None:
    client = sign_in(app, "admin@example.org", "admin")
    svg = diagram_of(client.get("/admin/flows/report").get_data(as_text=True))
    words = " ".join(t.text or "" for t in svg.iter(f"{SVG}text"))
    assert "channel is voice" in words and "otherwise" in words and "danger is yes" in words
    assert "create the report (urgent when danger is yes)" in words
    assert "record survey consent from consent" in words
    assert "1. armed_attack" in words  # options listed in their box
    # the default language's question in its box
    assert rt.bundle.catalog.text("report.category", "fr") in words


def test_texts_costs_and_voice_beside_each_node(app: Flask, rt: Runtime) -> None:
    client = sign_in(app, "admin@example.org", "admin")
    html = client.get("/admin/flows/report").get_data(as_text=True)
    catalog = rt.bundle.catalog
    for lang in ("fr", "bm", "en"):
        assert catalog.text("report.category.theft", lang).replace("'", "&#39;") in html
    # the category menu costs in Bambara what the SMS channel would send
    menu = sms.render_menu(
        catalog.text("report.category", "bm"),
        [
            catalog.text(f"report.category.{k}", "bm")
            for k in rt.bundle.flows["report"].nodes["category"].option_keys
        ],
    )
    row = html[html.index('id="texts-category"') :]
    row = row[: row.index('id="texts-place"')]
    assert f'data-lang="bm" data-segments="{sms.segments(menu)}"' in row
    assert "voice: not recorded" in row or "voice: shipped" in row


def test_errors_of_the_files_name_file_line_and_node(rt: Runtime, tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    shutil.copytree(rt.settings.flows_dir, flows)
    shutil.copytree(rt.settings.resolved_config_dir, tmp_path / "config")
    report = flows / "report.yaml"
    report.write_text(report.read_text().replace("text: report.danger\n", "text: report.dangr\n"))
    assert rt.bundle.flows and rt.router  # the service keeps what it started with
    rt.settings = rt.settings.model_copy(update={"flows_dir": flows})
    app = create_app({"TESTING": True}, runtime=rt)
    client = sign_in(app, "admin@example.org", "admin")
    html = client.get("/admin/flows").get_data(as_text=True)
    section = html[html.index('id="check"') : html.index("</section>")]
    assert "1 error" in section
    line = next(i for i, t in enumerate(report.read_text().splitlines(), 1) if "report.dangr" in t)
    assert (
        f"<td>flows/report.yaml</td><td>{line}</td><td>danger</td>"
        "<td>unknown text key &#39;report.dangr&#39;: add it to locales/fr.yaml, "
        "locales/bm.yaml, locales/en.yaml</td>"
    ) in section
