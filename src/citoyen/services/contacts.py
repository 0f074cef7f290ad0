"""Finding and creating contacts without ever storing their address in clear."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlmodel import Session, col, select

from citoyen.messages.addresses import normalise_address
from citoyen.models import Contact
from citoyen.services.privacy import Vault


def address_kind(address: str) -> str:
    return address.split(":", 1)[0]


def find_contact(
    session: Session, vault: Vault, address: str, *, lock: bool = False
) -> Contact | None:
    # Every configured key's hash: during a key rotation a contact may still have the old one.
    digests = vault.hashes(normalise_address(address))
    stmt = select(Contact).where(col(Contact.address_hash).in_(digests))
    if lock:
        stmt = stmt.with_for_update()
    return session.exec(stmt).first()


def get_or_create_contact(
    session: Session, vault: Vault, address: str, now: datetime, *, lock: bool = True
) -> tuple[Contact, bool]:
    """The contact for ``address`` (created on first contact), locked for this transaction.

    Locking serialises two messages of one contact handled at once by two web workers, so they
    can't both advance the same conversation from the same state.
    """
    canonical = normalise_address(address)
    contact = find_contact(session, vault, canonical, lock=lock)
    if contact is not None:
        contact.last_seen_at = now
        return contact, False
    return new_contact(session, vault, canonical, now), True


def new_contact(session: Session, vault: Vault, canonical: str, now: datetime) -> Contact:
    """A contact for the normalised ``canonical`` address, seen first at ``now``.

    The flush makes a concurrent first message of the same address fail here (IntegrityError on
    the address hash) rather than at commit; the caller retries and finds this one.
    """
    contact = Contact(
        address_hash=vault.hash(canonical),
        address_enc=vault.encrypt(canonical),
        channel=address_kind(canonical),
        alias=1000 + secrets.randbelow(9000),
        created_at=now,
        last_seen_at=now,
    )
    session.add(contact)
    session.flush()
    return contact
