"""Flows: checking them (with stakeholders and routing), drawing them, moving configuration out
of the flows folder, syncing stakeholders."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from citoyen.cli.common import console, load_bundle_or_exit, runtime_of
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
    from citoyen.services.areas.trees import database_area_tree, shipped_area_tree
    from citoyen.services.flowcheck import problems as all_problems

    runtime = runtime_of(ctx)
    # This command lists every problem itself: the warning the bundle's loading logs for a file
    # left in the flows folder would print each of them twice.
    loading = logging.getLogger("citoyen.services.flows")
    level = loading.level
    loading.setLevel(logging.ERROR)
    try:
        if areas_from_db:
            with runtime.session() as session:
                areas = database_area_tree(session)
        else:
            areas = shipped_area_tree()
        problems = all_problems(runtime, areas)
    finally:
        loading.setLevel(level)
    problems += _voice_problems(runtime)
    problems += _whatsapp_problems(runtime)
    errors = [p for p in problems if p.level == "error"]
    warnings = [p for p in problems if p.level != "error"]
    out = Console()
    for p in errors:  # one line each, never wrapped: editors and grep jump to file:line
        out.print(f"error: {p}", markup=False, highlight=False, soft_wrap=True)
    for p in warnings:
        out.print(f"warning: {p}", markup=False, highlight=False, soft_wrap=True)
    if not errors:
        out.print("Languages live per channel:", highlight=False)
        for line in _live_lines(runtime):
            out.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    out.print(f"{len(errors)} error(s), {len(warnings)} warning(s)", highlight=False)
    sys.exit(1 if errors else 0)


@flows.command("diagram")
@click.argument("name")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="SVG file to write (default: standard output).",
)
@click.option("--language", help="Language of the texts in the boxes (default: the default one).")
@click.pass_context
def flows_diagram(ctx: click.Context, name: str, output: str | None, language: str | None) -> None:
    """Draw flow NAME as an SVG diagram (the admin's flows page shows the same)."""
    from citoyen.services.diagram import diagram_svg

    runtime = runtime_of(ctx)
    bundle = load_bundle_or_exit(runtime)
    if name not in bundle.flows:  # type: ignore[attr-defined]
        known = ", ".join(sorted(bundle.flows))  # type: ignore[attr-defined]
        raise click.BadParameter(f"no flow '{name}' (flows: {known})", param_hint="NAME")
    languages = bundle.settings.languages  # type: ignore[attr-defined]
    if language is not None and language not in languages.enabled:
        raise click.BadParameter(
            f"'{language}' is not enabled ({', '.join(languages.enabled)})",
            param_hint="--language",
        )
    svg = diagram_svg(bundle, name, language or languages.default)
    if output is None:
        click.echo(svg)
        return
    Path(output).write_text(svg, encoding="utf-8")
    console.print(f"{output}: diagram of flow '{name}' written")


@flows.command("migrate-layout")
@click.option("--dry-run", is_flag=True, help="Say what would move, move nothing.")
@click.pass_context
def flows_migrate_layout(ctx: click.Context, dry_run: bool) -> None:
    """Move settings, stakeholders, routing and WhatsApp templates from the flows folder to the
    configuration folder (CITOYEN_CONFIG_DIR); exit 1 if one is in both places."""
    from citoyen.services.flows import layout_of

    layout = layout_of(runtime_of(ctx).settings)
    moves = layout.migrate(dry_run=dry_run)
    out = Console()

    def say(line: str) -> None:  # one line each, never wrapped: paths stay whole
        out.print(line, markup=False, highlight=False, soft_wrap=True)

    for move in moves:
        if move.reason:
            say(f"left: {move.source}: {move.reason}")
        else:
            say(f"{'moved' if move.done else 'would move'}: {move.source} -> {move.target}")
    if not moves:
        say(f"nothing to move: the configuration is in {layout.config_dir}")
    if any(move.reason for move in moves):
        raise SystemExit("keep one copy of each file left in both places, then run this again")


def _database_usable(runtime: Runtime) -> bool:
    try:
        return not runtime.needs_migration()
    except Exception:  # an unreachable database: check what is shipped
        return False


def _live_lines(runtime: Runtime) -> list[str]:
    """Which languages are live on which channel (recordings from the library when it can be
    read, else the shipped files)."""
    from citoyen.services.prompts.live import channel_lines

    return channel_lines(runtime, database=_database_usable(runtime))


def _voice_problems(runtime: Runtime) -> list:
    """``tts_voices`` naming a voice Twilio does not list for the language's <Say> language, and
    forced or configured languages that are not enabled."""
    from citoyen.channels.twilio_voice import sayable, voice_problem
    from citoyen.engine import Problem
    from citoyen.engine.layout import SETTINGS_FILE
    from citoyen.services.flows import layout_of

    try:
        bundle = runtime.bundle
    except Exception:  # flows that do not load: reported above
        return []
    settings, catalog = bundle.settings, bundle.catalog
    file = layout_of(runtime.settings).config_file(SETTINGS_FILE).file
    out = []
    for lang, voice in settings.tts_voices.items():
        tag = sayable(catalog.meta(lang).tts) if lang in catalog.languages else None
        if tag is None:
            message = f"tts_voices: '{lang}' has no text-to-speech language (meta.tts)"
        else:
            problem = voice_problem(tag, voice)
            message = f"tts_voices: {lang}: {problem}" if problem else ""
        if message:
            out.append(Problem("error", file, None, None, message))
    for lang in settings.languages.voice_forced:
        if lang not in settings.languages.enabled:
            message = f"languages.voice_forced: '{lang}' is not an enabled language"
            out.append(Problem("error", file, None, None, message))
    return out


def _whatsapp_problems(runtime: Any) -> list:
    """Problems of config/whatsapp/templates.yaml (templates for outside the 24-hour window)."""
    from citoyen.channels.whatsapp_templates import load_templates
    from citoyen.engine import FlowError

    try:
        languages = tuple(runtime.bundle.settings.languages.enabled)
    except FlowError:
        languages = ()  # the flows' own errors are printed already
    settings = runtime.settings
    on = bool(settings.twilio_enabled and settings.twilio_whatsapp_from)
    return load_templates(
        settings.flows_dir, languages, whatsapp_on=on, config_dir=settings.resolved_config_dir
    ).problems


@click.group()
def stakeholders() -> None:
    """Stakeholders and their queues (config/stakeholders.yaml)."""


@stakeholders.command("sync")
@click.pass_context
def stakeholders_sync(ctx: click.Context) -> None:
    """Load config/stakeholders.yaml into the database (on-call addresses encrypted)."""
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
