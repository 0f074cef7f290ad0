"""Data keys: generate one, rotate every stored number to the first."""

from __future__ import annotations

import click

from citoyen.cli.common import console, progress_bar, runtime_of


@click.group()
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

    runtime = runtime_of(ctx)
    if runtime.needs_migration():
        raise SystemExit("database not migrated: run `citoyen db upgrade` first")
    vault = runtime.vault
    if vault.key_count < 2:
        console.print(
            "only one data key is configured: stored addresses are re-encrypted under it. "
            "To change the key, set CITOYEN_DATA_KEY=NEW,OLD (see docs/security.md)."
        )
    try:
        with progress_bar() as progress:
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
