"""Areas: loading Mali's regions, cercles and communes."""

from __future__ import annotations

from pathlib import Path

import click

from citoyen.cli.common import console, progress_bar, runtime_of


@click.group()
def areas() -> None:
    """Administrative areas (regions, cercles, communes)."""


@areas.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def areas_import(ctx: click.Context, path: Path) -> None:
    """Load an OCHA COD-AB style table (admin1/2/3 names and P-codes)."""
    from citoyen.db import write_session
    from citoyen.services.areas.cod_ab import import_cod_ab

    runtime = runtime_of(ctx)
    with progress_bar() as progress, write_session(runtime.engine) as session:
        task = progress.add_task(f"importing {path.name}", total=None)

        def tick(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = import_cod_ab(session, path, progress=tick)
        if result.errors:
            session.rollback()
    if result.errors:
        for error in result.errors:
            console.print(f"[red]{path.name}: {error}[/red]")
        raise SystemExit(f"{len(result.errors)} bad row(s): nothing was imported")
    console.print(str(result))


@areas.command("seed")
@click.pass_context
def areas_seed(ctx: click.Context) -> None:
    """Load the shipped sample areas (idempotent)."""
    from citoyen.db import write_session
    from citoyen.services.areas.seeding import seed_shipped_areas

    runtime = runtime_of(ctx)
    with write_session(runtime.engine) as session:
        n = seed_shipped_areas(session)
    console.print(f"{n} area(s) created")


@areas.command("list")
@click.option("--under", metavar="CODE", help="Only the areas below this one (its code).")
@click.option("--search", metavar="TEXT", help="Name or code containing TEXT (accents ignored).")
@click.pass_context
def areas_list(ctx: click.Context, under: str | None, search: str | None) -> None:
    """Find area codes (for routing rules, stakeholders, --area): code, level, name, place."""
    from rich.table import Table

    from citoyen.services.areas.listing import find_areas

    runtime = runtime_of(ctx)
    with runtime.session() as session:
        try:
            rows = find_areas(session, under=under, search=search)
        except KeyError:
            raise SystemExit(f"error: no area has the code {under!r}") from None
    table = Table("code", "level", "name", "place")
    for row in rows:
        table.add_row(row.code, row.level, row.name, row.place)
    console.print(table)
    console.print(f"{len(rows)} area(s)")
