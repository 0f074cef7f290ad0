"""The SMS gateway phones as staff see them: each configured phone and how it last answered.

The sender (channels/android_gateway.py) writes ``gateway_phones`` rows when a phone fails or
comes back; a configured phone without a row has not been used yet. The outbox monitor lists
them so that a phone that stopped answering (flat battery, no credit, no network) is noticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

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
