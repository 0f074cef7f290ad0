"""Talking to the flows in a terminal, through the same conversation service as the channels."""

from __future__ import annotations

import logging

import click

from citoyen.cli.common import load_bundle_or_exit, runtime_of


@click.command()
@click.option(
    "--channel",
    type=click.Choice(["sms", "voice", "telegram", "whatsapp"]),
    default="sms",
    show_default=True,
)
@click.option(
    "--from",
    "sender",
    default="+22376000000",
    show_default=True,
    help="Phone number (sms, voice, whatsapp) or Telegram user id.",
)
@click.pass_context
def chat(ctx: click.Context, channel: str, sender: str) -> None:
    """Talk to the flows in a terminal, as that channel would show them."""
    from citoyen.cli.simulator import Simulator
    from citoyen.services.setup import ensure_ready

    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger().setLevel(logging.WARNING)  # keep the dialogue readable
    runtime = runtime_of(ctx)
    load_bundle_or_exit(runtime)
    ensure_ready(runtime)
    Simulator(runtime, channel, sender).repl()
