"""Stakeholders in the database: synced from config/stakeholders.yaml, on-call addresses
encrypted; rows created on the fly for configured stakeholders the sync has not loaded yet."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from citoyen.models import Area, Stakeholder
from citoyen.routing import RoutingConfig, StakeholderDef
from citoyen.services.queues.config import install

log = logging.getLogger(__name__)


@dataclass
class SyncResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0

    def __str__(self) -> str:
        return (
            f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.deactivated} deactivated"
        )


class SyncError(ValueError):
    """The configuration names areas the database does not have; nothing was changed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def _on_call(addresses: Iterable[str], vault: Any, previous: Iterable[Any]) -> list[dict]:
    """On-call addresses as stored: encrypted, with a keyed hash (to compare and dedupe alerts)
    and a masked hint for the admin. An unchanged address keeps its stored ciphertext."""
    from citoyen.messages.addresses import staff_address
    from citoyen.services.privacy import mask

    known = {p["hash"]: p for p in previous if isinstance(p, dict) and p.get("hash")}
    items = []
    for address in addresses:
        canonical = staff_address(address)
        digest = vault.hash(canonical)
        if digest in known:
            items.append(known[digest])
            continue
        items.append(
            {
                "channel": "telegram" if canonical.startswith("telegram:") else "sms",
                "address_enc": vault.encrypt(canonical),
                "hash": digest,
                "hint": mask(canonical),
            }
        )
    return items


def sync_stakeholders(session: Session, config: RoutingConfig, vault: Any) -> SyncResult:
    """Make the ``stakeholders`` table match the configuration.

    Creates and updates rows by code (on-call addresses encrypted), and deactivates rows the
    configuration no longer has (they keep their queue history; rows are never deleted).
    Raises :class:`SyncError`, changing nothing, when an area code is not in the database.
    """
    areas = dict(session.exec(select(Area.code, Area.id)).all())
    problems = [
        f"stakeholder '{s.code}': unknown area '{s.area}'"
        for s in config.stakeholders.values()
        if s.area is not None and s.area not in areas
    ]
    if problems:
        raise SyncError(problems)
    rows = {row.code: row for row in session.exec(select(Stakeholder)).all()}
    result = SyncResult()
    for spec in config.stakeholders.values():
        row = rows.get(spec.code)
        on_call = _on_call(spec.on_call, vault, row.on_call if row is not None else [])
        values = {
            "name": spec.name,
            "kind": spec.kind,
            "area_id": areas.get(spec.area) if spec.area else None,
            "language": spec.language,
            "on_call": on_call,
            "active": True,
        }
        if row is None:
            session.add(Stakeholder(code=spec.code, **values))
            result.created += 1
            continue
        changed = False
        for name, value in values.items():
            if getattr(row, name) != value:
                setattr(row, name, value)
                changed = True
        if changed:
            result.updated += 1
        else:
            result.unchanged += 1
    for code, row in rows.items():
        if code not in config.stakeholders and row.active:
            row.active = False
            result.deactivated += 1
    session.flush()
    return result


def sync_from_settings(runtime: Any) -> SyncResult:
    """Load the runtime's configuration and sync it into its database (first start, CLI)."""
    from citoyen.db import write_session

    router = install(runtime)
    with write_session(runtime.engine) as session:
        return sync_stakeholders(session, router.config, runtime.vault)


def stakeholder_row(session: Session, config: RoutingConfig, code: str) -> Stakeholder | None:
    """The row for a configured stakeholder, created (without on-call addresses) if the
    configuration has it but the database does not yet: a report must reach its queue even
    before ``citoyen stakeholders sync`` ran. None for a code the configuration lacks."""
    row = session.exec(select(Stakeholder).where(Stakeholder.code == code)).first()
    spec = config.stakeholders.get(code)
    if spec is None and code == config.fallback:
        spec = StakeholderDef(code, "Moderation", "moderation")
    if row is not None:
        if not row.active and spec is not None:
            row.active = True  # back in the configuration, not synced yet
        return row
    if spec is None:
        return None
    area_id = None
    if spec.area:
        area_id = session.exec(select(Area.id).where(Area.code == spec.area)).first()
    row = Stakeholder(
        code=spec.code, name=spec.name, kind=spec.kind, area_id=area_id, language=spec.language
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # created concurrently
        return session.exec(select(Stakeholder).where(Stakeholder.code == code)).first()
    log.warning(
        "stakeholder %s was not in the database: created without on-call addresses "
        "(run `citoyen stakeholders sync`)",
        code,
    )
    return row


def stakeholders_by_name(session: Session) -> list[Stakeholder]:
    """Every stakeholder, by name (the admin's menus)."""
    return list(session.exec(select(Stakeholder).order_by(Stakeholder.name)).all())
