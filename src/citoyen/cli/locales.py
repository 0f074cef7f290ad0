"""Texts per language, for translators: coverage and review state, PO export and import."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from citoyen.cli.common import console, load_bundle_or_exit, runtime_of


@click.group()
def locales() -> None:
    """Texts per language."""


@locales.command("status")
@click.pass_context
def locales_status(ctx: click.Context) -> None:
    """Coverage and review state per language."""
    from citoyen.i18n import Catalog

    catalog = Catalog.load(runtime_of(ctx).settings.locales_dir)
    table = Table("language", "texts", "missing", "reviewed", "needs review", "recorded audio")
    for lang, row in catalog.coverage().items():
        table.add_row(
            f"{lang} ({catalog.meta(lang).name})",
            str(row["keys"]),
            str(row["missing"]),
            str(row["keys"] - row["needs_review"]),
            str(row["needs_review"]),
            str(row["audio"]),
        )
    Console().print(table)


@locales.command("export")
@click.option("--language", required=True, help="Language to export (bm, en...).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["po"]),
    default="po",
    show_default=True,
    help="gettext PO, as Poedit and Weblate read it.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File (default: stdout).")
@click.pass_context
def locales_export(ctx: click.Context, language: str, fmt: str, output: str | None) -> None:
    """Write the texts of LANGUAGE as a PO catalogue (key, French source, review state, notes)."""
    from citoyen.i18n import Catalog
    from citoyen.services import translations

    runtime = runtime_of(ctx)
    bundle = load_bundle_or_exit(runtime)
    settings = bundle.settings  # type: ignore[attr-defined]
    catalog = Catalog.load(runtime.settings.locales_dir)
    if language not in catalog.languages:
        raise click.BadParameter(f"no locale file for '{language}'", param_hint="--language")
    data = translations.export_po(
        catalog, language, settings.languages.default, translations.sample_params(settings)
    )
    if output is None:
        click.echo(data.decode("utf-8"), nl=False)
        return
    Path(output).write_bytes(data)
    console.print(f"{output}: {len(catalog.keys(language))} texts in '{language}'")


@locales.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--language", help="Language of the file (default: the PO header's Language).")
@click.option("--dry-run", is_flag=True, help="Say what would change; write nothing.")
@click.pass_context
def locales_import(ctx: click.Context, file: str, language: str | None, dry_run: bool) -> None:
    """Read a PO catalogue back into locales/LANG.yaml: changed texts, review state (fuzzy =
    needs review) and notes; refuses unknown keys and broken placeholders (nothing written)."""
    from citoyen.i18n import Catalog
    from citoyen.services import translations

    runtime = runtime_of(ctx)
    bundle = load_bundle_or_exit(runtime)
    settings = bundle.settings  # type: ignore[attr-defined]
    locales_dir = runtime.settings.locales_dir
    catalog = Catalog.load(locales_dir)
    try:
        po = translations.read_catalogue(Path(file).read_bytes())
        lang = language or (str(po.locale) if po.locale else None)
        if lang not in catalog.languages:
            raise translations.TranslationError(
                [f"language {lang!r} has no locale file (give --language)"],
                "po_language",
                language=lang,
            )
        result = translations.plan_import(
            catalog, po, lang, settings.languages.default, translations.sample_params(settings)
        )
        if not dry_run and result.changes:
            translations.apply_import(runtime, lang, result.changes)
    except translations.TranslationError as exc:
        for problem in exc.problems:
            console.print(f"error: {problem}", markup=False, highlight=False, soft_wrap=True)
        raise SystemExit(f"{file}: nothing imported") from None
    out = Console()
    for change in result.changes:
        out.print(change.describe(), markup=False, highlight=False, soft_wrap=True)
    verb = "would change" if dry_run else "changed"
    out.print(
        f"{lang}: {len(result.changes)} text(s) {verb}, {result.unchanged} unchanged, "
        f"{len(result.untranslated)} left untranslated in the file",
        highlight=False,
    )
