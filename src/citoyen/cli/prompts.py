"""Recorded voice prompts: status, import, and the PIN for recording by phone."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from citoyen.cli.common import console, load_bundle_or_exit, progress_bar, runtime_of


@click.group()
def prompts() -> None:
    """Recorded voice prompts (docs/voice-prompts.md)."""


@prompts.command("status")
@click.option("--language", "-l", default=None, help="One language (default: all enabled).")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.pass_context
def prompts_status(ctx: click.Context, language: str | None, fmt: str) -> None:
    """Per language: prompts recorded, shipped, stale and missing (one line per prompt with
    --language)."""
    import json

    from citoyen.services.prompts import PromptError, coverage, summary

    runtime = runtime_of(ctx)
    load_bundle_or_exit(runtime)
    if runtime.needs_migration():
        raise SystemExit("database not migrated: run `citoyen db upgrade` first")
    try:
        rows = coverage(runtime, language)
    except PromptError as exc:
        raise SystemExit(f"error: {exc}") from None
    out = Console()
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "languages": summary(rows),
                    "prompts": [
                        {
                            "language": r.language,
                            "number": r.number,
                            "key": r.key,
                            "status": r.status,
                            "needed": r.needed,
                            "source": r.source,
                            "file": r.file_name,
                            "duration_ms": r.duration_ms,
                            "recorded_by": r.user_email,
                            "recorded_at": r.recorded_at.isoformat() if r.recorded_at else None,
                            "text": r.text,
                        }
                        for r in rows
                    ],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    table = Table("language", "prompts", "recorded", "shipped", "stale", "missing", "needed")
    for lang, row in summary(rows).items():
        table.add_row(
            lang,
            *(str(row[k]) for k in ("prompts", "recorded", "shipped", "stale", "missing")),
            "yes" if row["needed"] else "no (text-to-speech)",
        )
    out.print(table)
    if language:
        detail = Table("#", "key", "status", "source", "by", "text")
        for r in rows:
            detail.add_row(
                str(r.number), r.key, r.status, r.source or "", r.user_email or "", r.text
            )
        out.print(detail)


@prompts.command("import")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--language", "-l", default=None, help="FOLDER holds this language's files directly.")
@click.pass_context
def prompts_import(ctx: click.Context, folder: Path, language: str | None) -> None:
    """Load recordings named <key>.wav|mp3 from FOLDER/<lang>/ (or FOLDER with --language)."""
    from citoyen.services.prompts import PromptError, import_dir

    runtime = runtime_of(ctx)
    load_bundle_or_exit(runtime)
    if runtime.needs_migration():
        raise SystemExit("database not migrated: run `citoyen db upgrade` first")
    try:
        with progress_bar() as progress:
            task = progress.add_task(f"importing {folder.name}", total=None)
            result = import_dir(
                runtime,
                folder,
                language=language,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    except PromptError as exc:
        raise SystemExit(f"error: {exc}") from None
    for error in result.errors:
        console.print(f"refused: {error}", markup=False, highlight=False)
    console.print(str(result))
    if result.errors:
        sys.exit(1)


@prompts.command("set-pin")
@click.option("--email", required=True, help="The staff member's admin account.")
@click.pass_context
def prompts_set_pin(ctx: click.Context, email: str) -> None:
    """Allow a user to record prompts by phone; asks for their 4-8 digit PIN."""
    from citoyen.services.prompts import PromptError
    from citoyen.services.prompts.pins import set_pin
    from citoyen.services.users import user_by_email

    runtime = runtime_of(ctx)
    with runtime.session() as session:
        user = user_by_email(session, email.strip().lower())
    if user is None or user.id is None:
        raise SystemExit(f"error: no user with email {email}")
    pin = click.prompt("PIN (4-8 digits)", hide_input=True, confirmation_prompt=True)
    try:
        set_pin(runtime, user.id, pin, by_user_id=None)
    except PromptError as exc:
        raise SystemExit(f"error: {exc}") from None
    click.echo(f"{user.email} may record prompts by phone: staff number {user.id}")
