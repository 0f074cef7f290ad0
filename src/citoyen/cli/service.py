"""Running the service: the whole of it, the worker alone, the Telegram bot alone."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import click

from citoyen.cli.common import (
    console,
    load_bundle_or_exit,
    runtime_of,
    surveys_or_exit,
    warn_about_upkeep,
)


def port_problem(host: str, port: int) -> str | None:
    """Why the service could not listen on ``host:port`` (in use, not allowed), or None."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As the web server binds: an address in TIME_WAIT is free, one listened on is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return (
                f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                "(another program uses it? choose one with --port or CITOYEN_PORT)"
            )
    return None


@click.command()
@click.option("--host", default=None, help="Listen address (default CITOYEN_HOST, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default CITOYEN_PORT, 8000).")
@click.pass_context
def run(ctx: click.Context, host: str | None, port: int | None) -> None:
    """The whole service on one machine: web, worker and scheduler."""
    from citoyen.services.setup import ensure_ready
    from citoyen.web import create_app
    from citoyen.worker import Worker

    runtime = runtime_of(ctx)
    load_bundle_or_exit(runtime)
    host = host or runtime.settings.host
    port = port or runtime.settings.port
    # Before anything is created, printed or started: a busy port would otherwise leave a new
    # database and a one-time admin password shown for a service that never ran.
    problem = port_problem(host, port)
    if problem:
        raise SystemExit(problem)
    result = ensure_ready(runtime)
    warn_about_upkeep(runtime)
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
    from citoyen.services.prompts.live import channel_lines

    console.print("Languages live per channel:", highlight=False)
    for line in channel_lines(runtime):
        console.print(f"  {line}", markup=False, highlight=False)
    surveys_or_exit(runtime)
    app = create_app(runtime=runtime)
    from werkzeug.serving import make_server

    try:
        server = make_server(host, port, app, threaded=True)
    except OSError as exc:  # taken since the check above
        raise SystemExit(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    worker = Worker(runtime)
    worker.start(background=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        worker.shutdown()
        console.print("stopped")


@click.command()
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Scheduler and outbox dispatcher alone (one per deployment schedules)."""
    from citoyen.worker import Worker

    runtime = runtime_of(ctx)
    load_bundle_or_exit(runtime)
    if runtime.needs_migration():
        raise SystemExit("database not migrated: run `citoyen db upgrade` first")
    surveys_or_exit(runtime)
    warn_about_upkeep(runtime)
    Worker(runtime).start(background=False)


@click.group(invoke_without_command=True)
@click.pass_context
def telegram(ctx: click.Context) -> None:
    """The Telegram bot alone, by long polling (no public URL needed).

    It also delivers the Telegram replies queued in the outbox, so the bot alone answers.
    `citoyen telegram set-webhook` switches to webhook mode instead.
    """
    if ctx.invoked_subcommand is not None:
        return
    runtime = runtime_of(ctx)
    if not runtime.settings.telegram_enabled:
        raise SystemExit(
            "TELEGRAM_BOT_TOKEN is not set: the Telegram bot is off. Set it to run the bot "
            "(long polling needs no public URL)."
        )
    load_bundle_or_exit(runtime)
    if runtime.needs_migration():
        raise SystemExit("database not migrated: run `citoyen db upgrade` first")
    from citoyen.telegram_bot import run_polling

    run_polling(runtime)


@telegram.command("set-webhook")
@click.pass_context
def telegram_set_webhook(ctx: click.Context) -> None:
    """Register CITOYEN_PUBLIC_URL/telegram/webhook (https) with TELEGRAM_WEBHOOK_SECRET."""
    from citoyen.telegram_bot import TelegramSetupError, set_webhook

    runtime = runtime_of(ctx)
    try:
        url = set_webhook(runtime)
    except TelegramSetupError as exc:
        raise SystemExit(f"error: {exc}") from None
    click.echo(f"webhook set: {url}")
    click.echo("Telegram now sends updates there; `citoyen telegram` (polling) would remove it.")
