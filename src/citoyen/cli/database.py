"""The database: migrations, and the retention purge."""

from __future__ import annotations

import click

from citoyen.cli.common import console, progress_bar, runtime_of, warn_about_upkeep


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.argument("revision", default="head")
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Apply migrations (up to REVISION, default the latest)."""
    from citoyen import db as dbmod

    runtime = runtime_of(ctx)
    dbmod.upgrade(runtime.settings.resolved_database_url, revision)
    console.print(f"database at revision {dbmod.current_revision(runtime.engine)}")
    warn_about_upkeep(runtime)


@db.command("revision")
@click.option("-m", "--message", required=True)
@click.option("--autogenerate/--empty", default=True)
@click.pass_context
def db_revision(ctx: click.Context, message: str, autogenerate: bool) -> None:
    """Write a new migration from the models (for developers)."""
    from alembic import command

    from citoyen import db as dbmod

    runtime = runtime_of(ctx)
    command.revision(
        dbmod.alembic_config(runtime.settings.resolved_database_url),
        message=message,
        autogenerate=autogenerate,
    )


@click.command()
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=None,
    help="Retention in days (default CITOYEN_RETENTION_DAYS).",
)
@click.option("--dry-run", is_flag=True, help="Only count the reports that would be purged.")
@click.pass_context
def purge(ctx: click.Context, days: int | None, dry_run: bool) -> None:
    """Remove the free text, recordings and reporter link of reports closed long ago.

    Keeps what statistics need (category, place, dates, statuses); see docs/security.md.
    """
    from datetime import UTC, datetime

    from citoyen.services.retention import due_reports
    from citoyen.services.retention import purge as purge_reports

    runtime = runtime_of(ctx)
    if runtime.needs_migration():
        raise SystemExit("database not migrated: run `citoyen db upgrade` first")
    days = days or runtime.settings.retention_days
    if days <= 0:
        raise SystemExit("retention is off (CITOYEN_RETENTION_DAYS=0): give --days to purge")
    if dry_run:
        with runtime.session() as session:
            n = len(due_reports(session, days, datetime.now(UTC)))
        console.print(f"{n} report(s) resolved or closed more than {days} days ago would be purged")
        return
    with progress_bar() as progress:
        task = progress.add_task("purging reports", total=None)

        def tick(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = purge_reports(runtime.engine, runtime.settings.instance_dir, days, progress=tick)
    console.print(str(result))
