"""Staff accounts."""

from __future__ import annotations

import click

from citoyen.cli.common import runtime_of


@click.group()
def users() -> None:
    """Admin accounts."""


@users.command("create")
@click.option("--email", required=True)
@click.option(
    "--role",
    type=click.Choice(["admin", "coordinator", "agent", "analyst", "reviewer"]),
    required=True,
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
    from citoyen.services.users import UserError, audit_creation, create_user, generate_password

    runtime = runtime_of(ctx)
    if prompt_password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    shown = password is None
    password = password or generate_password()
    try:
        with write_session(runtime.engine) as session:
            user = create_user(
                session, email, role, password, stakeholder, area_code=area, language=language
            )
            # Audited as the admin's user form does, by no staff member ("system") and made
            # with the command line, in the same transaction as the account.
            audit_creation(
                session, None, user, stakeholder=stakeholder, area=area, via="citoyen users create"
            )
    except UserError as exc:
        raise SystemExit(f"error: {exc}") from None
    click.echo(f"created {user.role} {user.email}")
    if shown:
        click.echo(f"password: {password}  (shown once)")
