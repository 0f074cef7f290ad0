"""The monthly bulletin: made for a seeded month, read back from the PDF (pypdf's text
extraction), its figures compared with the database; no reporter and no description in it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select

from citoyen.cli import main
from citoyen.models import QueueEntry, Report, Stakeholder
from citoyen.services.bulletin.make import make_pdf
from tests.web.test_public import NUMBERS, SECRET_TEXT, seed

pypdf = pytest.importorskip("pypdf")
NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)


def text_of(pdf: bytes) -> str:
    reader = pypdf.PdfReader(BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_bulletin_figures_equal_the_database(rt) -> None:
    reports = seed(rt)
    pdf = make_pdf(rt, "ML-BKO.commune-iv", "2026-03", now=NOW)
    assert pdf.startswith(b"%PDF")
    text = text_of(pdf)
    assert "Bulletin mensuel de sécurité" in text and "Commune IV" in text
    with Session(rt.engine) as session:
        in_iv = session.exec(
            select(Report).where(Report.reference.in_([r.reference for r in reports[:15]]))
        ).all()
        thefts = sum(r.category == "theft" for r in in_iv)
        open_refs = [r.reference for r in in_iv if r.status in ("new", "acknowledged")]
        entries = session.exec(
            select(QueueEntry, Stakeholder)
            .join(Stakeholder, Stakeholder.id == QueueEntry.stakeholder_id)
            .where(QueueEntry.report_id.in_([r.id for r in in_iv]))
        ).all()
    # Reports by category for the month: thefts shown (12), violence hidden (3), total 15.
    theft_line = re.search(r"Vol ou cambriolage\s+(\S+)", text).group(1)
    assert theft_line == str(thefts) == "12"
    violence = rt.bundle.catalog.text("report.category.violence", "fr")
    assert re.search(re.escape(violence) + r"\s+<10", text)
    assert re.search(r"Total\s+15", text)
    # Every open case by reference, none of Commune I's.
    for ref in open_refs:
        assert ref in text
    for r in reports[15:]:
        assert r.reference not in text
    assert f"Dossiers ouverts à la fin du mois ({len(open_refs)})" in text
    # Per stakeholder: the police's entries as counted in the database.
    police = [e for e, s in entries if s.kind == "police" and e.status != "declined"]
    name = next(s.name for e, s in entries if s.kind == "police")
    flat = " ".join(text.split())  # table cells wrap over lines in the extracted text
    assert re.search(rf"{re.escape(name)} {len(police)} ", flat), flat
    # Nothing about the reporters.
    for number in NUMBERS:
        assert number not in text and number[4:] not in text
    assert SECRET_TEXT not in text and "Moussa" not in text


def test_cli_makes_the_file_and_refuses_bad_input(rt, tmp_path: Path) -> None:
    seed(rt)
    out = tmp_path / "b.pdf"
    runner = CliRunner()
    ok = runner.invoke(
        main,
        ["bulletin", "make", "--area", "ML-BKO", "--month", "2026-03", "-o", str(out)],
        obj={"runtime": rt},
    )
    assert ok.exit_code == 0, ok.output
    assert "Bamako" in text_of(out.read_bytes())
    bad = runner.invoke(
        main, ["bulletin", "make", "--area", "NOPE", "--month", "2026-03"], obj={"runtime": rt}
    )
    assert bad.exit_code != 0 and "unknown area 'NOPE'" in bad.output
    month = runner.invoke(
        main, ["bulletin", "make", "--area", "ML-BKO", "--month", "2026-13"], obj={"runtime": rt}
    )
    assert month.exit_code == 2 and "YYYY-MM" in month.output


def test_without_weasyprint_the_message_says_what_to_install(monkeypatch) -> None:
    import builtins

    from citoyen.services.bulletin import render

    real = builtins.__import__

    def no_weasyprint(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "weasyprint":
            raise OSError("cannot load library 'libpango-1.0-0'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_weasyprint)
    with pytest.raises(render.PdfUnavailable, match="apt-get install libpango"):
        render.pdf("<p>x</p>")
