"""The monthly CCS bulletin of an area, on demand."""

from __future__ import annotations

import re
from pathlib import Path

import click

from citoyen.cli.common import load_bundle_or_exit, runtime_of


@click.group()
def bulletin() -> None:
    """Monthly bulletins for communal security councils (docs/transparency.md)."""


@bulletin.command("make")
@click.option("--area", "code", required=True, help="Area code (a commune, cercle or region).")
@click.option("--month", required=True, help="YYYY-MM, a month that has ended.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--language", default="fr", show_default=True, help="Language of the texts.")
@click.pass_context
def bulletin_make(
    ctx: click.Context, code: str, month: str, output: Path | None, language: str
) -> None:
    """Make the PDF bulletin of AREA for MONTH (default file: bulletin-AREA-MONTH.pdf)."""
    from citoyen.services.bulletin.make import make_pdf
    from citoyen.services.bulletin.render import PdfUnavailable

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise click.BadParameter("expected YYYY-MM", param_hint="--month")
    runtime = runtime_of(ctx)
    load_bundle_or_exit(runtime)
    try:
        data = make_pdf(runtime, code, month, language=language)
    except KeyError:
        raise SystemExit(f"unknown area {code!r} (see `citoyen areas list`)") from None
    except PdfUnavailable as exc:
        raise SystemExit(str(exc)) from None
    target = output or Path(f"bulletin-{code}-{month}.pdf")
    target.write_bytes(data)
    click.echo(f"{target} ({len(data) // 1024} KB)")
