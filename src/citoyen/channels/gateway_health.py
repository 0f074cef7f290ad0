"""The ``gateway_phones`` table: where the SMS gateway sender records how its phones answer.

The sender runs in the worker; staff look at the admin in the web process. One upsert per change
of a phone's state (and, for a phone that keeps sending, at most one every half minute) carries
what the sender knows to the outbox monitor.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from citoyen.channels.android_gateway import PhoneStatus
from citoyen.db import insert, write_session
from citoyen.models import GatewayPhoneRecord


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
