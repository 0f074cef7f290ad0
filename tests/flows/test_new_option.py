"""A new option of a choice needs its text once per language and nothing else: its text key
follows from the flow, node and option (``report.category.fraud``). ``flows check`` passes, the
option works in a conversation, and a language that lacks the text is named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from citoyen.cli import main
from tests.dialog import (
    REFERENCE,
    Dialog,
    choose,
    language_menu,
    menu,
    places,
    question,
    ready_runtime,
    say,
    verify_dialog,
)
from tests.flows.test_report_transcripts import (
    ANONYMOUS,
    BAMAKO_COMMUNE_IV,
    CATEGORIES,
    CONSENT,
    REGIONS,
)

FRAUD = {
    "fr": "Escroquerie, faux agent",
    "bm": "Nanbara, jamanatigi nalonma",
    "en": "Fraud, fake official",
}


def add_option(settings, texts: dict[str, str], tmp_path: Path):  # type: ignore[no-untyped-def]
    """Copies of the shipped files with one more category: one line in the flow (the key), one
    text per language, as the docs tell an author to do it."""
    for name in ("flows", "locales"):
        shutil.copytree(getattr(settings, f"{name}_dir"), tmp_path / name)
    shutil.copytree(settings.resolved_config_dir, tmp_path / "config")
    flow = tmp_path / "flows" / "report.yaml"
    source = flow.read_text()
    assert "      - key: other\n" in source
    flow.write_text(
        source.replace("      - key: other\n", "      - key: other\n      - key: fraud\n")
    )
    for lang, text in texts.items():
        with (tmp_path / "locales" / f"{lang}.yaml").open("a", encoding="utf-8") as fh:
            fh.write(f'  report.category.fraud: "{text}"\n')
    return settings.model_copy(
        update={"flows_dir": tmp_path / "flows", "locales_dir": tmp_path / "locales"}
    )


def flows_check(settings):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["flows", "check"], obj={"settings": settings})


def raise_first_exchange_budget(settings) -> None:  # type: ignore[no-untyped-def]
    """One more segment for the first exchange (and, in Bambara, for the help at the first
    question, which repeats it) in every language, in the copy's settings."""
    path = settings.resolved_config_dir / "settings.yaml"
    text = path.read_text(encoding="utf-8")
    for lang, before in (("fr", 2), ("en", 2), ("bm", 3)):
        old = f"{lang}: {{first_exchange: {before},"
        assert old in text
        text = text.replace(old, f"{lang}: {{first_exchange: {before + 1},")
    text = text.replace("bm: {first_exchange: 4, help: 3,", "bm: {first_exchange: 4, help: 4,")
    path.write_text(text, encoding="utf-8")


def test_new_option_with_one_text_per_language(settings, tmp_path: Path) -> None:
    settings = add_option(settings, FRAUD, tmp_path)
    # The category question is the first one: a ninth category makes the first SMS exchange
    # longer than its budget, and the check says so; the author raises the budget (or shortens).
    over = flows_check(settings)
    assert over.exit_code == 1
    assert "the first exchange of flow 'report'" in over.output
    raise_first_exchange_budget(settings)
    result = flows_check(settings)
    assert result.exit_code == 0, result.output
    assert "0 error(s)" in result.output

    d = Dialog(ready_runtime(settings), "sms", lang="fr")
    verify_dialog(
        d,
        [
            ("Bonjour", language_menu(lang="fr")),
            (
                choose(1, "fr"),
                [
                    say("report.welcome"),
                    menu("report.category", *CATEGORIES, "report.category.fraud"),
                ],
            ),
            (
                choose(9, "fraud"),
                [say("report.place"), places("system.place_region", REGIONS, more=True)],
            ),
            *BAMAKO_COMMUNE_IV,
            (choose(2, "no"), question("report.describe")),
            ("Un faux agent des impôts a pris de l'argent.", menu("report.anonymous", *ANONYMOUS)),
            (choose(1, "yes"), menu("report.consent", *CONSENT)),
            (choose(2, "no"), say("report.confirm", reference=REFERENCE)),
        ],
    )
    [report] = d.reports()
    assert report.category == "fraud"
    assert d.t("report.category.fraud") == "Escroquerie, faux agent"


@pytest.mark.parametrize("missing", ["bm", "en"])
def test_a_language_without_the_text_is_named(settings, tmp_path: Path, missing: str) -> None:
    texts = {lang: text for lang, text in FRAUD.items() if lang != missing}
    result = flows_check(add_option(settings, texts, tmp_path))
    assert result.exit_code == 1
    present = ", ".join(lang for lang in ("fr", "bm", "en") if lang != missing)
    assert (
        f"error: locales/{missing}.yaml: text 'report.category.fraud' is missing "
        f"(present in {present})"
    ) in result.output
