"""The SMS gateway phones as staff see them: each configured phone and how it last answered.

The sender (channels/android_gateway.py) writes ``gateway_phones`` rows when a phone fails or
comes back; a configured phone without a row has not been used yet. The outbox monitor lists
them so that a phone that stopped answering (flat battery, no credit, no network) is noticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from citoyen.channels.android_gateway import PhoneStatus
from citoyen.db import insert, write_session
from citoyen.models import GatewayPhoneRecord


@dataclass(frozen=True)
class PhoneState:
    name: str
    operator: str
    state: str  # up | down | unknown (not used yet)
    failures: int = 0
    last_ok_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None
    down_until: datetime | None = None


def phone_states(session: Session, configured: list[Any]) -> list[PhoneState]:
    """One state per configured phone, in configuration order."""
    if not configured:
        return []
    rows = {
        row.name: row
        for row in session.exec(
            select(GatewayPhoneRecord).where(
                GatewayPhoneRecord.name.in_([p.name for p in configured])
            )
        ).all()
    }
    states = []
    for phone in configured:
        row = rows.get(phone.name)
        if row is None:
            states.append(PhoneState(phone.name, phone.operator, "unknown"))
            continue
        states.append(
            PhoneState(
                row.name,
                phone.operator,
                row.state,
                row.failures,
                row.last_ok_at,
                row.last_failure_at,
                row.last_error,
                row.down_until,
            )
        )
    return states


class DatabasePhoneHealth:
    """:class:`~citoyen.channels.android_gateway.PhoneHealth` on the project database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, phone: PhoneStatus) -> None:
        table = GatewayPhoneRecord.__table__  # type: ignore[attr-defined]
        values = {
            "name": phone.name,
            "operator": phone.operator,
            "state": phone.state,
            "failures": phone.failures,
            "updated_at": phone.at,
        }
        if phone.state == "up":
            values |= {"last_ok_at": phone.at, "down_until": None}
        else:
            values |= {
                "last_failure_at": phone.at,
                "last_error": (phone.error or "")[:300],
                "down_until": phone.down_until,
            }
        update = {k: v for k, v in values.items() if k != "name"}
        with write_session(self.engine) as session:
            statement = insert(session, table).values(**values)
            session.execute(statement.on_conflict_do_update(index_elements=["name"], set_=update))
