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
log = logging.getLogger(__name__)


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


def _warn_about_upkeep(runtime: Runtime) -> None:
    """Warn, in the log (where an operator's monitoring looks), when the database's own upkeep
    is off: the service runs, but slows down as its tables grow."""
    from citoyen.db import maintenance_warning

    warning = maintenance_warning(runtime.engine)
    if warning:
        log.warning("%s", warning)


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
    _warn_about_upkeep(runtime)
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
    _surveys_or_exit(runtime)
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
    _surveys_or_exit(runtime)
    _warn_about_upkeep(runtime)
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
    _warn_about_upkeep(runtime)


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
    # Recordings are counted from the prompt library below, not per text from shipped files.
    problems = check(settings.flows_dir, settings.locales_dir, audio=False)
    if not any(p.level == "error" for p in problems):
        problems += _prompt_problems(runtime)
    areas: routing.AreaTree | str = "shipped"
    if areas_from_db:
        from sqlmodel import Session

        with Session(runtime.engine) as session:
            areas = routing.database_area_tree(session)
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
    from citoyen import routing
    from citoyen.engine import FlowError, load_bundle
    from citoyen.services.surveys import load_surveys

    try:
        bundle = load_bundle(settings.flows_dir, settings.locales_dir)  # type: ignore[attr-defined]
    except FlowError:
        bundle = None  # the flows' own errors are printed already
    tree = routing.shipped_area_tree() if areas == "shipped" else areas
    return load_surveys(settings.flows_dir, bundle, tree).problems  # type: ignore[attr-defined]


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


# --- voice prompts -------------------------------------------------------------------------------


@main.group()
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

    runtime = _runtime(ctx)
    _load_bundle_or_exit(runtime)
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

    runtime = _runtime(ctx)
    _load_bundle_or_exit(runtime)
    if runtime.needs_migration():
        raise SystemExit("database not migrated: run `citoyen db upgrade` first")
    try:
        with _progress() as progress:
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
    from sqlmodel import Session, select

    from citoyen.models import User
    from citoyen.services.prompts import PromptError
    from citoyen.services.prompts.pins import set_pin

    runtime = _runtime(ctx)
    with Session(runtime.engine) as session:
        user = session.exec(select(User).where(User.email == email.strip().lower())).first()
    if user is None or user.id is None:
        raise SystemExit(f"error: no user with email {email}")
    pin = click.prompt("PIN (4-8 digits)", hide_input=True, confirmation_prompt=True)
    try:
        set_pin(runtime, user.id, pin, by_user_id=None)
    except PromptError as exc:
        raise SystemExit(f"error: {exc}") from None
    click.echo(f"{user.email} may record prompts by phone: staff number {user.id}")


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


# --- surveys ----------------------------------------------------------------------------------


def _surveys_or_exit(runtime: Runtime) -> dict:
    """The valid survey definitions, or exit naming every problem."""
    from citoyen.services.surveys import SurveyConfigError, surveys_for

    try:
        return surveys_for(runtime)
    except SurveyConfigError as exc:
        for problem in exc.problems:
            if problem.level == "error":
                console.print(f"error: {problem}", markup=False, highlight=False)
        raise SystemExit(
            "survey definitions are broken: fix them, then run `citoyen flows check`"
        ) from None


def _survey_or_exit(runtime: Runtime, name: str) -> object:
    surveys = _surveys_or_exit(runtime)
    if name not in surveys:
        known = ", ".join(sorted(surveys)) or "none"
        raise SystemExit(f"unknown survey {name!r} (surveys in flows/surveys/: {known})")
    return surveys[name]


@main.group()
def survey() -> None:
    """Perceived-safety surveys (flows/surveys/*.yaml)."""


@survey.command("run")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Only say whom it would invite, per channel.")
@click.pass_context
def survey_run(ctx: click.Context, name: str, dry_run: bool) -> None:
    """Start a run of survey NAME now (quiet hours still defer the messages)."""
    from datetime import UTC, datetime

    from sqlmodel import Session, select

    from citoyen.services.surveys.runs import estimated_segments, plan, start_run

    runtime = _runtime(ctx)
    _load_bundle_or_exit(runtime)
    if runtime.needs_migration():
        raise SystemExit("database not migrated: run `citoyen db upgrade` first")
    definition = _survey_or_exit(runtime, name)
    now = datetime.now(UTC)
    if dry_run:
        from citoyen.models import Contact

        with Session(runtime.engine) as session:
            the_plan = plan(session, definition, f"dry-run:{now.isoformat()}", now)
            sms_ids = [c.contact_id for c in the_plan.drawn if c.channel == "sms"]
            languages = (
                session.exec(select(Contact.language).where(Contact.id.in_(sms_ids))).all()
                if sms_ids
                else []
            )
        segments = estimated_segments(runtime.bundle.catalog, runtime.bundle, definition, languages)
        table = Table("channel", "would be invited")
        for channel in ("sms", "telegram", "voice"):
            table.add_row(channel, str(the_plan.per_channel.get(channel, 0)))
        table.add_row("total", str(len(the_plan.drawn)))
        Console().print(table)
        click.echo(
            f"{the_plan.eligible} eligible contact(s); {len(the_plan.drawn)} drawn; "
            f"about {segments} SMS segment(s) for the SMS invitations (first message only). "
            "Nothing was sent."
        )
        return
    with _progress() as progress:
        task = progress.add_task(f"inviting ({name})", total=None)

        def tick(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = start_run(runtime, definition, now, progress=tick)
    skipped = ", ".join(f"{k}: {v}" for k, v in sorted(result.skipped.items())) or "none"
    channels = ", ".join(f"{k}: {v}" for k, v in sorted(result.per_channel.items())) or "none"
    click.echo(
        f"run {result.key}: {result.eligible} eligible, {result.sampled} drawn, "
        f"{result.invited} invited ({channels}), skipped: {skipped}"
    )
    if result.send_at is not None and result.send_at > now:
        local = result.send_at.astimezone(definition.timezone)  # type: ignore[attr-defined]
        click.echo(f"quiet hours: the messages and calls go out from {local:%Y-%m-%d %H:%M} local")


@survey.command("results")
@click.argument("name")
@click.option(
    "--by",
    type=click.Choice(["region", "cercle", "commune", "national"]),
    default="commune",
    show_default=True,
)
@click.option("--period", type=click.Choice(["week", "month"]), default="month", show_default=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.option(
    "--min-n",
    type=click.IntRange(min=1),
    default=None,
    help="Suppress cells below this n (default: the survey's, 10).",
)
@click.pass_context
def survey_results(
    ctx: click.Context, name: str, by: str, period: str, fmt: str, min_n: int | None
) -> None:
    """The perceived-safety indicator of survey NAME per area and period (docs/surveys.md)."""
    import csv
    import json

    from sqlmodel import Session

    from citoyen.services.surveys.indicators import series

    runtime = _runtime(ctx)
    _load_bundle_or_exit(runtime)
    definition = _survey_or_exit(runtime, name)
    with Session(runtime.engine) as session:
        cells = series(session, definition, by, period, min_n=min_n)  # type: ignore[arg-type]
    rows = [cell.to_dict() for cell in cells]
    if fmt == "json":
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if fmt == "csv":
        fields = list(rows[0]) if rows else cells_fields()
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:.1f}%"

    def change(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:+.1f} pts"

    table = Table("area", "period", "n", "feel safe", "95% CI", "change", "don't know")
    for c in cells:
        interval = "suppressed (n < min)" if c.suppressed else f"{pct(c.low)} – {pct(c.high)}"
        table.add_row(
            f"{c.area_name} ({c.area_code})",
            c.period,
            str(c.n),
            pct(c.share),
            interval,
            change(c.change),
            str(c.excluded),
        )
    Console().print(table)
    if not cells:
        click.echo("no answers yet")


def cells_fields() -> list[str]:
    from dataclasses import fields

    from citoyen.services.surveys.indicators import Cell

    return [f.name for f in fields(Cell)]


if __name__ == "__main__":
    main()
