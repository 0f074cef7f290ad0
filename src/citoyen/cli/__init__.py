"""The ``citoyen`` command: run the service, check flows, talk to flows, manage data.

Commands are thin: they parse arguments, call services and print results. Long work shows a
progress bar; failures exit non-zero with a message that says what to do. Each topic has its
module in this package; this one holds the top-level group and adds them explicitly.
"""

from __future__ import annotations

import logging

import click

from citoyen.cli import (
    areas,
    bulletin,
    chat,
    database,
    flows,
    keys,
    locales,
    prompts,
    reports,
    service,
    surveys,
    users,
)


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


main.add_command(service.run)
main.add_command(service.worker)
main.add_command(service.telegram)
main.add_command(database.db)
main.add_command(database.purge)
main.add_command(flows.flows)
main.add_command(flows.stakeholders)
main.add_command(locales.locales)
main.add_command(prompts.prompts)
main.add_command(chat.chat)
main.add_command(users.users)
main.add_command(reports.reports)
main.add_command(keys.keys)
main.add_command(areas.areas)
main.add_command(surveys.survey)
main.add_command(bulletin.bulletin)
