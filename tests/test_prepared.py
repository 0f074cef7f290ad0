"""Statements run on the driver's cursor (citoyen/prepared.py) do what ``Connection.execute``
does with them: the same rows, of the same types, the same row counts, the same rows left in the
tables; SQLAlchemy's exceptions and statement events as before; statements whose SQL is not fixed
refused. On SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from citoyen.engine.types import Input
from citoyen.models import Contact, Conversation, Message
from citoyen.prepared import Prepared
from citoyen.runtime import Runtime
from citoyen.services import inbound as inbound_statements
from citoyen.services import unlocked_step
from citoyen.services.conversations import Inbound
from citoyen.services.privacy import normalise_address
from citoyen.services.setup import ensure_ready

NUMBER = "+22376000030"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def runtime(settings) -> Runtime:
    rt = Runtime(settings)
    ensure_ready(rt)
    return rt


def _send(rt: Runtime, value: str, pid: str, address: str = NUMBER) -> None:
    rt.conversations.handle(Inbound("sms", address, Input("text", value), pid))


@pytest.fixture
def known(runtime: Runtime) -> dict[str, Any]:
    """A contact with an open conversation and two messages, and what the statements need."""
    _send(runtime, "SIGNALER", "SM1")
    _send(runtime, "1", "SM2")
    with Session(runtime.engine) as s:
        contact = s.exec(select(Contact)).one()
        conversation = s.exec(select(Conversation)).one()
    return {"contact": contact, "conversation": conversation}


def _tables(conn: sa.Connection) -> dict[str, list[tuple]]:
    """Every row of the tables the statements write, each value as the database holds it (cast
    to text: a JSON null and an SQL NULL, or two spellings of one time, differ)."""
    tables = (Contact.__table__, Conversation.__table__, Message.__table__)  # type: ignore[attr-defined]
    return {
        table.name: [
            tuple(row)
            for row in conn.execute(
                sa.select(*(sa.cast(column, sa.Text) for column in table.c)).order_by(table.c.id)
            )
        ]
        for table in tables
    }


def _both_ways(
    rt: Runtime, prepared: Prepared, params: dict[str, Any]
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """``(rows, rowcount, tables after)`` through SQLAlchemy, then through ``prepared``, each in a
    transaction rolled back afterwards."""

    def through_sqlalchemy(conn: sa.Connection) -> tuple[list[tuple], int]:
        result = conn.execute(prepared.statement, params)
        return [tuple(row) for row in result.all()] if result.returns_rows else [], result.rowcount

    def through_prepared(conn: sa.Connection) -> tuple[list[tuple], int]:
        result = prepared.execute(conn, params)
        return [tuple(row) for row in result.all()], result.rowcount

    outcomes = []
    for run in (through_sqlalchemy, through_prepared):
        with rt.engine.connect() as conn, conn.begin() as transaction:
            before = _tables(conn)
            rows, rowcount = run(conn)
            # A sequence is not rolled back on PostgreSQL: new rows' ids are named by rank.
            after = _tables(conn)
            new_ids = {
                name: {
                    row[0]: f"new {rank}"
                    for rank, row in enumerate(rows_after[len(before[name]) :])
                }
                for name, rows_after in after.items()
            }
            tables = {
                name: [(new_ids[name].get(row[0], row[0]), *row[1:]) for row in rows_after]
                for name, rows_after in after.items()
            }
            # The ids it returned are those of the rows it inserted (into one table).
            inserted = {k: v for ids in new_ids.values() for k, v in ids.items()}
            rows = [(inserted.get(str(row[0]), row[0]), *row[1:]) for row in rows]
            # The row count of a statement that returns rows is the driver's to give or not
            # (psycopg's, -1 through SQLAlchemy): compared for the others only.
            returns_rows = prepared.compiled(conn.dialect).row is not None
            outcomes.append((rows, None if returns_rows else rowcount, tables))
            transaction.rollback()
    return outcomes[0], outcomes[1]


def _store(contact_id: int, **values: Any) -> dict[str, Any]:
    """The parameters that store an inbound SMS of ``contact_id`` (``values`` override)."""
    return inbound_statements.store_params(
        **{
            "contact_id": contact_id,
            "channel": "sms",
            "provider_id": "SM3",
            "kind": "text",
            "body": "again",
            "now": NOW,
            "limit": 100,
            "window": timedelta(hours=1),
            **values,
        }
    )


def _types(rows: list[tuple]) -> list[list[type]]:
    return [[type(value) for value in row] for row in rows]


def test_the_read_returns_what_sqlalchemy_returns(runtime: Runtime, known: dict) -> None:
    digest = runtime.conversations.vault.hash(normalise_address(NUMBER))
    for provider_id in ("SM2", "SM-none"):  # with the stored reply of a retry, and without
        params = {
            "p_digest": digest,
            "p_old_digest": digest,
            "p_channel": "sms",
            "p_provider_id": provider_id,
        }
        through_sqlalchemy, prepared = _both_ways(runtime, unlocked_step._READ, params)
        assert prepared == through_sqlalchemy
        rows = prepared[0]
        assert len(rows) == 1 and rows[0][0] == known["contact"].id
        assert _types(rows) == _types(through_sqlalchemy[0])
        with runtime.engine.connect() as conn:
            row = unlocked_step._READ.execute(conn, params).all()[0]
        assert isinstance(row.state, dict) and isinstance(row.menu, list)
        assert row.updated_at.tzinfo is not None and isinstance(row.blocked, bool)
        assert (row.stored_reply is None) == (provider_id == "SM-none")
    # A sender not known: one row of nulls, as from SQLAlchemy.
    params = {"p_digest": "x", "p_old_digest": "y", "p_channel": "sms", "p_provider_id": "SM9"}
    through_sqlalchemy, prepared = _both_ways(runtime, unlocked_step._READ, params)
    assert prepared == through_sqlalchemy and prepared[0] == [(None,) * 16]


def test_writes_leave_the_rows_sqlalchemy_leaves(runtime: Runtime, known: dict) -> None:
    contact, conversation = known["contact"], known["conversation"]
    later = conversation.updated_at + timedelta(seconds=5)
    move = {
        "p_node": "elsewhere",
        "p_status": "active",
        "p_state": {"node": "elsewhere", "vars": {"x": [1, "é"]}},
        "p_updated_at": later,
        "p_expires_at": None,
        "p_menu": None,  # JSON null, as SQLAlchemy stores it
        "p_id": conversation.id,
        "p_seen_status": conversation.status,
        "p_seen_at": conversation.updated_at,
    }
    moved_sa, moved = _both_ways(runtime, unlocked_step._MOVE_ON, move)
    assert moved == moved_sa and moved[1] == 1
    # Not as read any more: nothing moves, either way.
    stale = {**move, "p_seen_at": conversation.updated_at - timedelta(seconds=1)}
    stale_sa, stale_prepared = _both_ways(runtime, unlocked_step._MOVE_ON, stale)
    assert stale_prepared == stale_sa and stale_prepared[1] == 0

    seen = {"p_contact_id": contact.id, "p_now": NOW}
    seen_sa, seen_prepared = _both_ways(runtime, unlocked_step._SEEN, seen)
    assert seen_prepared == seen_sa and seen_prepared[1] == 1

    store = _store(
        contact.id,
        body="Des hommes armés",
        reply={"prompts": ["a"], "status": "waiting"},
        conversation_id=conversation.id,
        reply_out={"prompts": ["a"], "language": "fr"},
    )
    stored_sa, stored = _both_ways(runtime, inbound_statements._STORE_WITH_REPLY, store)
    assert stored == stored_sa
    assert [direction for _id, direction in stored[0]] == ["in", "out"]
    alone = {k: v for k, v in store.items() if k != "p_reply_out"}
    alone_sa, alone_prepared = _both_ways(runtime, inbound_statements._STORE, alone)
    assert alone_prepared == alone_sa and len(alone_prepared[0]) == 1
    # Over the limit: nothing stored, either way.
    over = {**store, "p_limit": 1}
    over_sa, over_prepared = _both_ways(runtime, inbound_statements._STORE_WITH_REPLY, over)
    assert over_prepared == over_sa and over_prepared[0] == []

    start = {
        **move,
        "p_contact_id": contact.id,
        "p_channel": "sms",
        "p_flow_id": conversation.flow_id,
        "p_flow_version": conversation.flow_version,
        "p_now": NOW,
    }
    # The contact has an open conversation: none is started, either way.
    start_sa, started = _both_ways(runtime, unlocked_step._START, start)
    assert started == start_sa and started[0] == []


def test_the_one_statement_step_on_postgresql(runtime: Runtime, known: dict) -> None:
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("data-modifying WITH: PostgreSQL only")
    contact, conversation = known["contact"], known["conversation"]
    params = {
        **_store(
            contact.id,
            body="2",
            reply={"prompts": ["b"]},
            reply_out={"prompts": ["b"], "language": "fr"},
        ),
        "p_node": "next",
        "p_status": "active",
        "p_state": {"node": "next"},
        "p_updated_at": conversation.updated_at + timedelta(seconds=1),
        "p_expires_at": NOW + timedelta(hours=1),
        "p_menu": [{"key": "1"}],
        "p_id": conversation.id,
        "p_seen_status": conversation.status,
        "p_seen_at": conversation.updated_at,
    }
    through_sqlalchemy, prepared = _both_ways(runtime, unlocked_step._MOVE_AND_STORE, params)
    assert prepared == through_sqlalchemy
    assert sorted(direction for _id, direction in prepared[0]) == ["in", "out"]


def test_driver_errors_are_sqlalchemys_and_events_see_the_statement(
    runtime: Runtime, known: dict
) -> None:
    contact = known["contact"]
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_rest) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    store = _store(contact.id, provider_id="SM1")  # stored already: its unique index refuses it
    sa.event.listen(runtime.engine, "before_cursor_execute", record)
    try:
        with (
            runtime.engine.connect() as conn,
            conn.begin(),
            pytest.raises(sa.exc.IntegrityError),
        ):
            inbound_statements._STORE.execute(conn, store)
    finally:
        sa.event.remove(runtime.engine, "before_cursor_execute", record)
    assert statements == [inbound_statements._STORE.compiled(runtime.engine.dialect).sql]
    with runtime.engine.connect() as conn, pytest.raises(KeyError):
        inbound_statements._STORE.execute(conn, {"p_contact_id": contact.id})


def test_statements_whose_sql_is_not_fixed_are_refused(runtime: Runtime) -> None:
    ids = sa.bindparam("ids", expanding=True)
    expanding = Prepared(sa.select(Contact.__table__.c.id).where(Contact.__table__.c.id.in_(ids)))
    with runtime.engine.connect() as conn, pytest.raises(ValueError, match="at execution"):
        expanding.execute(conn, {"ids": [1, 2]})


def test_contact_statements_with_the_columns_a_step_sets(runtime: Runtime, known: dict) -> None:
    """A new contact (its fixed column defaults, ``blocked`` False, as constants) and a known
    one seen, each with the columns the step's effects set."""
    vault = runtime.conversations.vault
    address = normalise_address("+22376000031")
    columns = {
        "address_hash": vault.hash(address),
        "address_enc": vault.encrypt(address),
        "channel": "tel",
        "language": "bm",
        "survey_consent": True,
    }
    new_contact = unlocked_step._setting(unlocked_step._NEW_CONTACT, frozenset(columns))
    params = {"p_alias": 4321, "p_now": NOW, **unlocked_step._set_params(columns)}
    through_sqlalchemy, prepared = _both_ways(runtime, new_contact, params)
    assert prepared == through_sqlalchemy and prepared[0] == [("new 0",)]
    created = next(row for row in prepared[2]["contacts"] if row[0] == "new 0")
    assert "bm" in created and "4321" in created

    seen = unlocked_step._setting(unlocked_step._SEEN, frozenset({"language", "area_id"}))
    params = {
        "p_contact_id": known["contact"].id,
        "p_now": NOW,
        **unlocked_step._set_params({"language": "en", "area_id": None}),
    }
    through_sqlalchemy, prepared = _both_ways(runtime, seen, params)
    assert prepared == through_sqlalchemy and prepared[1] == 1


def test_a_default_computed_per_row_is_refused(runtime: Runtime) -> None:
    table = sa.Table(
        "not_created",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime, default=lambda: NOW),
    )
    per_row = Prepared(table.insert().values(id=sa.bindparam("p_id")))
    with runtime.engine.connect() as conn, pytest.raises(ValueError, match="computed per row"):
        per_row.execute(conn, {"p_id": 1})
