"""Reports as an administrator sees them."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from citoyen.cli.common import console, runtime_of


@click.group()
def reports() -> None:
    """Reports."""


@reports.command("export")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (default: standard output).",
)
@click.pass_context
def reports_export(ctx: click.Context, fmt: str, output: Path | None) -> None:
    """Reports as an administrator sees them (reporters as aliases)."""
    from citoyen.services.reports import export_rows, write_export

    runtime = runtime_of(ctx)
    with runtime.session() as session:
        if output:
            with output.open("w", encoding="utf-8", newline="") as fh:
                n = write_export(export_rows(session), fmt, fh)
        else:
            n = write_export(export_rows(session), fmt, sys.stdout)
    console.print(f"{n} report(s) exported")
