"""Re-encrypting every stored address under a new data key (``citoyen keys rotate``).

Addresses live encrypted in three places: contacts (``address_enc`` with its lookup hash
``address_hash``), stakeholders' on-call entries (``address_enc`` and ``hash`` inside the JSON
list) and outbox rows for non-contact recipients (``address_enc``). The lookup hash is keyed by a
key derived from the data key, so it changes with it and is recomputed from the decrypted address.

The procedure (docs/security.md): set ``CITOYEN_DATA_KEY=NEW,OLD``; every process then encrypts
with NEW and still reads OLD, and finds contacts by either hash. Run the rotation; when it reports
nothing left under OLD, remove OLD. The work goes in batches, each its own transaction, and skips
what is already under NEW: interrupted, it is resumed by running it again, and the service keeps
running throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from citoyen.db import write_session
from citoyen.models import Contact, Outbox, Stakeholder
from citoyen.services.privacy import Vault, is_erased

Progress = Callable[[int, int], None]


@dataclass
class RotationResult:
    contacts: int = 0
    stakeholders: int = 0
    outbox: int = 0
    unchanged: int = 0

    @property
    def changed(self) -> int:
        return self.contacts + self.stakeholders + self.outbox

    def __str__(self) -> str:
        return (
            f"re-encrypted {self.contacts} contact(s), {self.stakeholders} stakeholder(s)' "
            f"on-call addresses, {self.outbox} outbox row(s); {self.unchanged} already current"
        )


def count_rows(engine: Engine) -> int:
    """How many rows the rotation looks at (for a progress bar)."""
    with Session(engine) as session:
        contacts = session.exec(select(func.count()).select_from(Contact)).one()
        stakeholders = session.exec(select(func.count()).select_from(Stakeholder)).one()
        outbox = session.exec(
            select(func.count()).select_from(Outbox).where(col(Outbox.address_enc).is_not(None))
        ).one()
    return contacts + stakeholders + outbox


def rotate_keys(
    engine: Engine, vault: Vault, *, batch_size: int = 500, progress: Progress | None = None
) -> RotationResult:
    """Re-encrypt and re-hash every stored address under ``vault``'s current key."""
    result = RotationResult()
    total = count_rows(engine)
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    for model in (Contact, Stakeholder, Outbox):
        last_id = 0
        while True:
            with write_session(engine) as session:
                stmt = (
                    select(model)
                    .where(col(model.id) > last_id)
                    .order_by(col(model.id))
                    # Contacts are locked: a message handled meanwhile waits for this batch.
                    .limit(batch_size)
                    .with_for_update()
                )
                if model is Outbox:
                    stmt = stmt.where(col(Outbox.address_enc).is_not(None))
                rows = session.exec(stmt).all()
                if not rows:
                    break
                for row in rows:
                    changed = _rotate_row(row, vault)
                    if changed:
                        setattr(result, _FIELD[model], getattr(result, _FIELD[model]) + 1)
                    else:
                        result.unchanged += 1
                last_id = rows[-1].id
            tick(len(rows))
    return result


_FIELD = {Contact: "contacts", Stakeholder: "stakeholders", Outbox: "outbox"}


def _rotate_row(row: Contact | Stakeholder | Outbox, vault: Vault) -> bool:
    if isinstance(row, Contact):
        if is_erased(row.address_enc):
            return False
        address = vault.decrypt(row.address_enc)
        digest = vault.hash(address)
        if vault.is_current(row.address_enc) and row.address_hash == digest:
            return False
        row.address_enc = vault.rotate(row.address_enc)
        row.address_hash = digest
        return True
    if isinstance(row, Stakeholder):
        items, changed = [], False
        for item in row.on_call:
            if isinstance(item, dict) and item.get("address_enc"):
                address = vault.decrypt(item["address_enc"])
                digest = vault.hash(address)
                if not vault.is_current(item["address_enc"]) or item.get("hash") != digest:
                    item = {
                        **item,
                        "address_enc": vault.rotate(item["address_enc"]),
                        "hash": digest,
                    }
                    changed = True
            items.append(item)
        if changed:
            row.on_call = items  # a new list: the JSON column sees the change
        return changed
    if row.address_enc is None or is_erased(row.address_enc) or vault.is_current(row.address_enc):
        return False
    row.address_enc = vault.rotate(row.address_enc)
    return True


def remaining(engine: Engine, vault: Vault) -> int:
    """Stored addresses not yet under the current key (0 when the old key can go)."""
    left = 0
    with Session(engine) as session:
        for token in session.exec(select(Contact.address_enc)).all():
            left += not is_erased(token) and not vault.is_current(token)
        for on_call in session.exec(select(Stakeholder.on_call)).all():
            for item in on_call or []:
                if isinstance(item, dict) and item.get("address_enc"):
                    left += not vault.is_current(item["address_enc"])
        tokens = session.exec(
            select(Outbox.address_enc).where(col(Outbox.address_enc).is_not(None))
        ).all()
        left += sum(not is_erased(t) and not vault.is_current(t) for t in tokens)
    return left
