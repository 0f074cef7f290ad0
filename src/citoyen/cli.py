"""The ``citoyen`` command: run the service, check flows, talk to flows, manage data.

Commands are thin: they parse arguments, call services and print results. Long work shows a
progress bar; failures exit non-zero with a message that says what to do.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from citoyen.runtime import Runtime, build_runtime

console = Console(stderr=True)


def _runtime(ctx: click.Context) -> Runtime:
    obj = ctx.ensure_object(dict)
    if "runtime" not in obj:
        obj["runtime"] = build_runtime(obj.get("settings"))
    return obj["runtime"]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _load_bundle_or_exit(runtime: Runtime) -> object:
    """The validated flows and routing, or exit naming every problem."""
    from citoyen.engine import FlowError
    from citoyen.routing import RoutingError

    try:
        bundle = runtime.bundle
        _ = runtime.router
        return bundle
    except (FlowError, RoutingError) as exc:
        for problem in exc.problems:
            if problem.level == "error":
                console.print(f"error: {problem}", markup=False, highlight=False)
        raise SystemExit(
            "flows or routing are broken: fix them, then run `citoyen flows check`"
        ) from None


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """citoyen: security concerns from citizens to the stakeholders who act."""
    from citoyen import logredact

    logredact.install()  # before any record: no phone number or Telegram id in any log
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        # A line per scheduler tick or migration step would bury what people need to read.
        for noisy in ("apscheduler", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    # python-telegram-bot's debug lines carry whole updates: citizens' words, names and
    # usernames, which the redaction of numbers does not hide. Never below INFO.
    logging.getLogger("telegram").setLevel(logging.INFO)
    ctx.ensure_object(dict)


# --- run ---------------------------------------------------------------------------------------


@main.command()
@click.option("--host", default=None, help="Listen address (default CITOYEN_HOST, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default CITOYEN_PORT, 8000).")
@click.pass_context
def run(ctx: click.Context, host: str | None, port: int | None) -> None:
    """The whole service on one machine: web, worker and scheduler."""
    from citoyen.services.setup import ensure_ready
    from citoyen.web import create_app
    from citoyen.worker import Worker

    runtime = _runtime(ctx)
    _load_bundle_or_exit(runtime)
    result = ensure_ready(runtime)
    host = host or runtime.settings.host
    port = port or runtime.settings.port
    base = f"http://{host}:{port}"
    if result.migrated:
        console.print(f"Database ready at {runtime.settings.resolved_database_url}")
    if result.areas_created:
        console.print(f"Loaded {result.areas_created} areas (regions, cercles, communes).")
    if result.admin_password:
        console.print(
            "\n[bold]First start.[/bold] Log in to the admin at "
            f"{base}/admin/ with\n  email:    {result.admin_email}\n"
            f"  password: {result.admin_password}\n(shown once: write it down, "
            "or create another account with `citoyen users create`).\n"
        )
    command = sys.argv[0] if Path(sys.argv[0]).name == "citoyen" else "citoyen"
    console.print(
        f"Try the flows in a terminal:  {command} chat --channel sms --from +22376000000\n"
        f"Providers: Twilio {'on' if runtime.settings.twilio_enabled else 'off (simulator/log)'}, "
        f"Telegram {'on' if runtime.settings.telegram_enabled else 'off'}.\n"
        f"Serving on {base}  (Ctrl-C to stop)"
    )
    worker = Worker(runtime)
    worker.start(background=True)
    app = create_app(runtime=runtime)
    from werkzeug.serving import make_server

    server = make_server(host, port, app, threaded=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        worker.shutdown()
        console.print("stopped")


@main.command()
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Scheduler and outbox dispatcher alone (one per deployment schedules)."""
    from citoyen.worker import Worker

    runtime = _runtime(ctx)
    _load_bundle_or_exit(runtime)
    if runtime.needs_migration():
        raise SystemExit("database not migrated: run `citoyen db upgrade` first")
    Worker(runtime).start(background=False)


@main.group(invoke_without_command=True)
@click.pass_context
def telegram(ctx: click.Context) -> None:
    """The Telegram bot alone, by long polling (no public URL needed).

    It also delivers the Telegram replies queued in the outbox, so the bot alone answers.
    `citoyen telegram set-webhook` switches to webhook mode instead.
    """
    if ctx.invoked_subcommand is not None:
        return
    runtime = _runtime(ctx)
    if not runtime.settings.telegram_enabled:
        raise SystemExit(
            "TELEGRAM_BOT_TOKEN is not set: the Telegram bot is off. Set it to run the bot "
            "(long polling needs no public URL)."
        )
    _load_bundle_or_exit(runtime)
    if runtime.needs_migration():
        raise SystemExit("database not migrated: run `citoyen db upgrade` first")
    from citoyen.channels.telegram_bot import run_polling

    run_polling(runtime)


@telegram.command("set-webhook")
@click.pass_context
def telegram_set_webhook(ctx: click.Context) -> None:
    """Register CITOYEN_PUBLIC_URL/telegram/webhook (https) with TELEGRAM_WEBHOOK_SECRET."""
    from citoyen.channels.telegram_bot import TelegramSetupError, set_webhook

    runtime = _runtime(ctx)
    try:
        url = set_webhook(runtime)
    except TelegramSetupError as exc:
        raise SystemExit(f"error: {exc}") from None
    click.echo(f"webhook set: {url}")
    click.echo("Telegram now sends updates there; `citoyen telegram` (polling) would remove it.")


# --- db ------------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.argument("revision", default="head")
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Apply migrations (up to REVISION, default the latest)."""
    from citoyen import db as dbmod

    runtime = _runtime(ctx)
    dbmod.upgrade(runtime.settings.resolved_database_url, revision)
    console.print(f"database at revision {dbmod.current_revision(runtime.engine)}")


@db.command("revision")
@click.option("-m", "--message", required=True)
@click.option("--autogenerate/--empty", default=True)
@click.pass_context
def db_revision(ctx: click.Context, message: str, autogenerate: bool) -> None:
    """Write a new migration from the models (for developers)."""
    from alembic import command

    from citoyen import db as dbmod

    runtime = _runtime(ctx)
    command.revision(
        dbmod.alembic_config(runtime.settings.resolved_database_url),
        message=message,
        autogenerate=autogenerate,
    )


# --- flows and texts ---------------------------------------------------------------------------


@main.group()
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

    runtime = _runtime(ctx)
    settings = runtime.settings
    problems = check(settings.flows_dir, settings.locales_dir)
    areas: routing.AreaTree | str = "shipped"
    if areas_from_db:
        from sqlmodel import Session

        with Session(runtime.engine) as session:
            areas = routing.database_area_tree(session)
    problems += routing.check(settings.flows_dir, settings.locales_dir, areas=areas)
    errors = [p for p in problems if p.level == "error"]
    warnings = [p for p in problems if p.level != "error"]
    out = Console()
    for p in errors:
        out.print(f"error: {p}", markup=False, highlight=False)
    for p in warnings:
        out.print(f"warning: {p}", markup=False, highlight=False)
    out.print(f"{len(errors)} error(s), {len(warnings)} warning(s)", highlight=False)
    sys.exit(1 if errors else 0)


@main.group()
def stakeholders() -> None:
    """Stakeholders and their queues (flows/stakeholders.yaml)."""


@stakeholders.command("sync")
@click.pass_context
def stakeholders_sync(ctx: click.Context) -> None:
    """Load flows/stakeholders.yaml into the database (on-call addresses encrypted)."""
    from citoyen.routing import RoutingError
    from citoyen.services.queues import SyncError, sync_from_settings

    runtime = _runtime(ctx)
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


@main.group()
def locales() -> None:
    """Texts per language."""


@locales.command("status")
@click.pass_context
def locales_status(ctx: click.Context) -> None:
    """Coverage and review state per language."""
    from citoyen.i18n import Catalog

    catalog = Catalog.load(_runtime(ctx).settings.locales_dir)
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


# --- simulator ---------------------------------------------------------------------------------


@main.command()
@click.option(
    "--channel", type=click.Choice(["sms", "voice", "telegram"]), default="sms", show_default=True
)
@click.option(
    "--from",
    "sender",
    default="+22376000000",
    show_default=True,
    help="Phone number (sms, voice) or Telegram user id.",
)
@click.pass_context
def chat(ctx: click.Context, channel: str, sender: str) -> None:
    """Talk to the flows in a terminal, as that channel would show them."""
    from citoyen.channels.simulator import Simulator
    from citoyen.services.setup import ensure_ready

    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger().setLevel(logging.WARNING)  # keep the dialogue readable
    runtime = _runtime(ctx)
    _load_bundle_or_exit(runtime)
    ensure_ready(runtime)
    Simulator(runtime, channel, sender).repl()


# --- users, reports, areas ---------------------------------------------------------------------


@main.group()
def users() -> None:
    """Admin accounts."""


@users.command("create")
@click.option("--email", required=True)
@click.option(
    "--role", type=click.Choice(["admin", "coordinator", "agent", "analyst"]), required=True
)
@click.option("--stakeholder", default=None, help="Stakeholder code (agents and coordinators).")
@click.option(
    "--area",
    default=None,
    help="Area code a coordinator coordinates (default: their stakeholder's area).",
)
@click.option(
    "--language", type=click.Choice(["fr", "en"]), default=None, help="Admin pages' language."
)
@click.option(
    "--password",
    default=None,
    help="Default: a random password, printed once. Prefer the prompt to the flag.",
)
@click.option("--prompt-password", is_flag=True, help="Type the password instead.")
@click.pass_context
def users_create(
    ctx: click.Context,
    email: str,
    role: str,
    stakeholder: str | None,
    area: str | None,
    language: str | None,
    password: str | None,
    prompt_password: bool,
) -> None:
    """Create an admin, coordinator, agent or analyst account."""
    from citoyen.db import write_session
    from citoyen.services.users import UserError, create_user, generate_password

    runtime = _runtime(ctx)
    if prompt_password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    shown = password is None
    password = password or generate_password()
    try:
        with write_session(runtime.engine) as session:
            user = create_user(
                session, email, role, password, stakeholder, area_code=area, language=language
            )
    except UserError as exc:
        raise SystemExit(f"error: {exc}") from None
    click.echo(f"created {user.role} {user.email}")
    if shown:
        click.echo(f"password: {password}  (shown once)")


@main.group()
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
    from sqlmodel import Session

    from citoyen.services.reports import export_rows, write_export

    runtime = _runtime(ctx)
    with Session(runtime.engine) as session:
        if output:
            with output.open("w", encoding="utf-8", newline="") as fh:
                n = write_export(export_rows(session), fmt, fh)
        else:
            n = write_export(export_rows(session), fmt, sys.stdout)
    console.print(f"{n} report(s) exported")


@main.group()
def keys() -> None:
    """The data key that encrypts phone numbers and Telegram ids (docs/security.md)."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a new data key (to put first in CITOYEN_DATA_KEY before `keys rotate`)."""
    from cryptography.fernet import Fernet

    click.echo(Fernet.generate_key().decode())


@keys.command("rotate")
@click.option("--batch-size", default=500, show_default=True, help="Rows per transaction.")
@click.pass_context
def keys_rotate(ctx: click.Context, batch_size: int) -> None:
    """Re-encrypt and re-hash every stored address under the first key of CITOYEN_DATA_KEY.

    Set CITOYEN_DATA_KEY=NEW,OLD first (every process reads both meanwhile); run this; remove
    OLD when it reports nothing left. Interrupted, it resumes where it stopped.
    """
    from citoyen.services.keyrotation import remaining, rotate_keys

    runtime = _runtime(ctx)
    if runtime.needs_migration():
        raise SystemExit("database not migrated: run `citoyen db upgrade` first")
    vault = runtime.vault
    if vault.key_count < 2:
        console.print(
            "only one data key is configured: stored addresses are re-encrypted under it. "
            "To change the key, set CITOYEN_DATA_KEY=NEW,OLD (see docs/security.md)."
        )
    try:
        with _progress() as progress:
            task = progress.add_task("re-encrypting addresses", total=None)

            def tick(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            result = rotate_keys(runtime.engine, vault, batch_size=batch_size, progress=tick)
    except ValueError as exc:
        raise SystemExit(
            f"error: {exc}: is every key the data was written with in CITOYEN_DATA_KEY? "
            "Rows done so far are kept; run again once fixed."
        ) from None
    console.print(str(result))
    left = remaining(runtime.engine, vault)
    if left:
        raise SystemExit(
            f"{left} address(es) still under an old key: run `citoyen keys rotate` again"
        )
    if vault.key_count > 1:
        console.print("every address is under the first key: the other key(s) can be removed")


@main.command()
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

    from sqlmodel import Session

    from citoyen.services.retention import due_reports
    from citoyen.services.retention import purge as purge_reports

    runtime = _runtime(ctx)
    if runtime.needs_migration():
        raise SystemExit("database not migrated: run `citoyen db upgrade` first")
    days = days or runtime.settings.retention_days
    if days <= 0:
        raise SystemExit("retention is off (CITOYEN_RETENTION_DAYS=0): give --days to purge")
    if dry_run:
        with Session(runtime.engine) as session:
            n = len(due_reports(session, days, datetime.now(UTC)))
        console.print(f"{n} report(s) resolved or closed more than {days} days ago would be purged")
        return
    with _progress() as progress:
        task = progress.add_task("purging reports", total=None)

        def tick(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = purge_reports(runtime.engine, runtime.settings.instance_dir, days, progress=tick)
    console.print(str(result))


@main.group()
def areas() -> None:
    """Administrative areas (regions, cercles, communes)."""


@areas.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def areas_import(ctx: click.Context, path: Path) -> None:
    """Load an OCHA COD-AB style table (admin1/2/3 names and P-codes)."""
    from citoyen.db import write_session
    from citoyen.services.areas import import_cod_ab

    runtime = _runtime(ctx)
    with _progress() as progress, write_session(runtime.engine) as session:
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
    from citoyen.services.areas import seed_shipped_areas

    runtime = _runtime(ctx)
    with write_session(runtime.engine) as session:
        n = seed_shipped_areas(session)
    console.print(f"{n} area(s) created")


if __name__ == "__main__":
    main()
