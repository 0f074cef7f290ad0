"""Commands for flow authors and translators: ``flows diagram``, ``locales export|import``."""

from __future__ import annotations

import shutil
from pathlib import Path
from xml.etree import ElementTree

import pytest
from babel.messages.pofile import read_po, write_po
from click.testing import CliRunner

from citoyen.cli import main
from citoyen.config import Settings
from citoyen.engine import load_bundle
from citoyen.i18n import Catalog

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


def test_flows_diagram_in_another_language_and_unknown_names(invoke, settings: Settings) -> None:
    result = invoke("flows", "diagram", "report", "--language", "en")
    assert result.exit_code == 0
    catalog = load_bundle(settings.flows_dir, settings.locales_dir).catalog
    question = catalog.text("report.category", "en")
    assert question != catalog.text("report.category", "fr")
    assert question in result.output
    unknown = invoke("flows", "diagram", "nope")
    assert unknown.exit_code == 2 and "no flow 'nope'" in unknown.output
    bad_lang = invoke("flows", "diagram", "report", "--language", "xx")
    assert bad_lang.exit_code == 2 and "'xx' is not enabled" in bad_lang.output


@pytest.fixture
def editable(settings: Settings, tmp_path: Path) -> Settings:
    """The shipped flows and locales copied, so a test may change them."""
    for name in ("flows", "locales"):
        shutil.copytree(getattr(settings, f"{name}_dir"), tmp_path / name)
    shutil.copytree(settings.resolved_config_dir, tmp_path / "config")
    return settings.model_copy(
        update={"flows_dir": tmp_path / "flows", "locales_dir": tmp_path / "locales"}
    )


def run_with(settings: Settings, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), obj={"settings": settings})


def edit_po(path: Path, key: str, text: str | None = None, *, fuzzy: bool, note: str = "") -> None:
    """What a translator does in Poedit: change a text, clear "needs work", write a comment."""
    po = read_po(path.open("rb"))
    message = next(m for m in po if m.context == key)
    if text is not None:
        message.string = text
    if fuzzy:
        message.flags.add("fuzzy")
    else:
        message.flags.discard("fuzzy")
    message.user_comments = [note] if note else []
    with path.open("wb") as fh:
        write_po(fh, po, width=0)


def test_po_round_trip_changes_text_and_review_state(editable: Settings, tmp_path: Path) -> None:
    po = tmp_path / "bm.po"
    result = run_with(
        editable, "locales", "export", "--language", "bm", "--format", "po", "-o", str(po)
    )
    assert result.exit_code == 0, result.output
    exported = read_po(po.open("rb"))
    theft = next(m for m in exported if m.context == "report.category.theft")
    assert (theft.id, theft.string, theft.fuzzy) == ("Vol ou cambriolage", "Sonyali", True)
    noted = [m for m in exported if m.user_comments]
    assert noted, "notes to reviewers travel as translator comments"

    before = (editable.locales_dir / "bm.yaml").read_text().splitlines()
    edit_po(
        po,
        "report.category.theft",
        "Sonyali walima so tiɲɛni",
        fuzzy=False,
        note="checked by A. Traoré",
    )
    result = run_with(editable, "locales", "import", str(po))
    assert result.exit_code == 0, result.output
    assert (
        "report.category.theft: text changed, needs-review -> reviewed; now 1 SMS (UCS-2)"
        in result.output
    )
    total = len(Catalog.load(editable.locales_dir).keys("bm"))
    assert f"bm: 1 text(s) changed, {total - 1} unchanged" in result.output

    catalog = Catalog.load(editable.locales_dir)
    entry = catalog.entry("report.category.theft", "bm")
    assert (entry.text, entry.review, entry.note) == (
        "Sonyali walima so tiɲɛni",
        "reviewed",
        "checked by A. Traoré",
    )
    after = (editable.locales_dir / "bm.yaml").read_text().splitlines()
    changed = [line for line in after if line not in before]
    assert changed == [
        "  report.category.theft:",
        '    text: "Sonyali walima so tiɲɛni"',
        '    review: "reviewed"',
        '    note: "checked by A. Traoré"',
    ]
    # and back: needs work again, no note, the file default -> a plain string once more
    edit_po(po, "report.category.theft", "Sonyali", fuzzy=True)
    assert run_with(editable, "locales", "import", str(po)).exit_code == 0
    assert (editable.locales_dir / "bm.yaml").read_text().splitlines() == before
    assert run_with(editable, "flows", "check").exit_code == 0


@pytest.mark.parametrize(
    ("key", "text", "problem"),
    [
        (
            "report.welcome",
            "Aw ni ce! Tasumafagalaw wele: {fire}.",
            "placeholders {fire} differ from {fire}, {police} in fr",
        ),
        ("report.category.theft", "Sonyali {who}", "placeholders {who} differ from none in fr"),
        ("report.category.theft", "Sonyali {", "malformed placeholder"),
    ],
)
def test_po_import_refuses_broken_placeholders(
    editable: Settings, tmp_path: Path, key: str, text: str, problem: str
) -> None:
    po = tmp_path / "bm.po"
    run_with(editable, "locales", "export", "--language", "bm", "-o", str(po))
    original = (editable.locales_dir / "bm.yaml").read_text()
    edit_po(po, key, text, fuzzy=False)
    result = run_with(editable, "locales", "import", str(po))
    assert result.exit_code == 1
    assert problem in result.output and "nothing imported" in result.output
    assert (editable.locales_dir / "bm.yaml").read_text() == original


def test_po_import_refuses_unknown_keys(editable: Settings, tmp_path: Path) -> None:
    po = tmp_path / "bm.po"
    run_with(editable, "locales", "export", "--language", "bm", "-o", str(po))
    catalogue = read_po(po.open("rb"))
    catalogue.add("Vol", "Sonyali", context="report.category.thef")
    with po.open("wb") as fh:
        write_po(fh, catalogue)
    original = (editable.locales_dir / "bm.yaml").read_text()
    result = run_with(editable, "locales", "import", str(po))
    assert result.exit_code == 1 and "unknown text key 'report.category.thef'" in result.output
    assert (editable.locales_dir / "bm.yaml").read_text() == original


def test_locales_status_counts_reviewed_texts(invoke, settings: Settings) -> None:
    result = invoke("locales", "status")
    assert result.exit_code == 0
    row = next(line for line in result.output.splitlines() if "bm (Bamanankan)" in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    catalog = Catalog.load(settings.locales_dir)
    total = len(catalog.keys("bm"))
    reviewed = sum(catalog.review_state(k, "bm") == "reviewed" for k in catalog.keys("bm"))
    assert cells[1:5] == [str(total), "0", str(reviewed), str(total - reviewed)]


def test_po_import_is_kept_in_the_history(editable: Settings, tmp_path: Path) -> None:
    from sqlmodel import Session, select

    from citoyen.models import TextChange
    from tests.dialog import ready_runtime

    runtime = ready_runtime(editable)  # a migrated database: imports are recorded
    po = tmp_path / "bm.po"
    run_with(editable, "locales", "export", "--language", "bm", "-o", str(po))
    edit_po(po, "report.danger.no", "Ayi, mɔgɔ si tɛ farati la", fuzzy=True)
    assert run_with(editable, "locales", "import", str(po)).exit_code == 0
    with Session(runtime.engine) as s:
        change = s.exec(select(TextChange)).one()
    assert (change.key, change.new_text, change.source, change.user_id) == (
        "report.danger.no",
        "Ayi, mɔgɔ si tɛ farati la",
        "import",
        None,
    )
