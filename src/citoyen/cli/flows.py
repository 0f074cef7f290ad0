"""Flows and texts: checking flows, syncing stakeholders, locale status."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table

from citoyen.cli.common import console, runtime_of
from citoyen.runtime import Runtime


@click.group()
def flows() -> None:
    """Conversation flows."""


@flows.command("check")
@click.option(
    "--areas-from-db",
    is_flag=True,
    help="Check area codes against the database's areas instead of the shipped sample.",
)
@click.pass_context
def flows_check(ctx: click.Context, areas_from_db: bool) -> None:
    """Validate flows, locales, stakeholders and routing rules; exit 1 on any error."""
    from citoyen import routing
    from citoyen.engine import check
    from citoyen.services.areas.trees import database_area_tree, shipped_area_tree

    runtime = runtime_of(ctx)
    settings = runtime.settings
    # Recordings are counted from the prompt library below, not per text from shipped files.
    problems = check(settings.flows_dir, settings.locales_dir, audio=False)
    if not any(p.level == "error" for p in problems):
        problems += _prompt_problems(runtime)
    if areas_from_db:
        from sqlmodel import Session

        with Session(runtime.engine) as session:
            areas = database_area_tree(session)
    else:
        areas = shipped_area_tree()
    problems += routing.check(settings.flows_dir, settings.locales_dir, areas=areas)
    problems += _survey_problems(settings, areas)
    errors = [p for p in problems if p.level == "error"]
    warnings = [p for p in problems if p.level != "error"]
    out = Console()
    for p in errors:
        out.print(f"error: {p}", markup=False, highlight=False)
    for p in warnings:
        out.print(f"warning: {p}", markup=False, highlight=False)
    out.print(f"{len(errors)} error(s), {len(warnings)} warning(s)", highlight=False)
    sys.exit(1 if errors else 0)


def _prompt_problems(runtime: Runtime) -> list:
    """Warnings per language from the prompt library (shipped files only when the database is
    not migrated: the check must work before the first start)."""
    from citoyen.engine import Problem
    from citoyen.services.prompts import check_warnings

    try:
        database = not runtime.needs_migration()
    except Exception:  # an unreachable database: check what is shipped
        database = False
    return [
        Problem("warning", runtime.bundle.catalog.file(lang), None, None, message)
        for lang, message in check_warnings(runtime, database=database)
    ]


def _survey_problems(settings: object, areas: object) -> list:
    """Problems of flows/surveys/*.yaml, checked against the flows when these load."""
    from citoyen.engine import FlowError, load_bundle
    from citoyen.services.surveys import load_surveys

    try:
        bundle = load_bundle(settings.flows_dir, settings.locales_dir)  # type: ignore[attr-defined]
    except FlowError:
        bundle = None  # the flows' own errors are printed already
    return load_surveys(settings.flows_dir, bundle, areas).problems  # type: ignore[attr-defined]


@click.group()
def stakeholders() -> None:
    """Stakeholders and their queues (flows/stakeholders.yaml)."""


@stakeholders.command("sync")
@click.pass_context
def stakeholders_sync(ctx: click.Context) -> None:
    """Load flows/stakeholders.yaml into the database (on-call addresses encrypted)."""
    from citoyen.routing import RoutingError
    from citoyen.services.queues import SyncError, sync_from_settings

    runtime = runtime_of(ctx)
    if runtime.needs_migration():
        raise SystemExit("database not migrated: run `citoyen db upgrade` first")
    try:
        result = sync_from_settings(runtime)
    except RoutingError as exc:
        for problem in exc.errors:
            console.print(f"error: {problem}", markup=False, highlight=False)
        raise SystemExit("stakeholders or routing rules are broken: nothing was loaded") from None
    except SyncError as exc:
        for problem in exc.problems:
            console.print(f"error: {problem}", markup=False, highlight=False)
        raise SystemExit("unknown areas (import or seed them first): nothing was loaded") from None
    console.print(f"stakeholders: {result}")


@click.group()
def locales() -> None:
    """Texts per language."""


@locales.command("status")
@click.pass_context
def locales_status(ctx: click.Context) -> None:
    """Coverage and review state per language."""
    from citoyen.i18n import Catalog

    catalog = Catalog.load(runtime_of(ctx).settings.locales_dir)
    table = Table("language", "texts", "missing", "needs review", "recorded audio")
    for lang, row in catalog.coverage().items():
        table.add_row(
            f"{lang} ({catalog.meta(lang).name})",
            str(row["keys"]),
            str(row["missing"]),
            str(row["needs_review"]),
            str(row["audio"]),
        )
    Console().print(table)
