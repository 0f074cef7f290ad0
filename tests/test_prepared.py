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
from citoyen.models import (
    Contact,
    Conversation,
    Message,
    Outbox,
    QueueEntry,
    Report,
    ReportEvent,
    Stakeholder,
)
from citoyen.prepared import Prepared
from citoyen.runtime import Runtime
from citoyen.services import effects, outbox, unlocked_step
from citoyen.services import inbound as inbound_statements
from citoyen.services.conversations import Inbound
from citoyen.services.privacy import normalise_address
from citoyen.services.queues import routes
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
    tables = (Contact, Conversation, Message, Report, QueueEntry, ReportEvent, Outbox)
    return {
        table.name: [
            tuple(row)
            for row in conn.execute(
                sa.select(*(sa.cast(column, sa.Text) for column in table.c)).order_by(table.c.id)
            )
        ]
        for table in (model.__table__ for model in tables)  # type: ignore[attr-defined]
    }


def _both_ways(
    rt: Runtime, prepared: Prepared, params: dict[str, Any] | list[dict[str, Any]]
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """``(rows, rowcount, tables after)`` through SQLAlchemy, then through ``prepared``, each in a
    transaction rolled back afterwards. A list of ``params`` runs by executemany."""

    def through_sqlalchemy(conn: sa.Connection) -> tuple[list[tuple], int]:
        result = conn.execute(prepared.statement, params)
        return [tuple(row) for row in result.all()] if result.returns_rows else [], result.rowcount

    def through_prepared(conn: sa.Connection) -> tuple[list[tuple], int]:
        if isinstance(params, list):
            return [], prepared.executemany(conn, params)
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
            # The row count of a statement that returns rows, or run by executemany, is the
            # driver's to give or not (-1 through SQLAlchemy on PostgreSQL): compared for the
            # others only; the prepared executemany's count is the test's to check.
            returns_rows = prepared.compiled(conn.dialect).row is not None
            many = isinstance(params, list)
            if returns_rows or (many and run is through_sqlalchemy):
                rowcount = None
            outcomes.append((rows, rowcount, tables))
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


@pytest.fixture
def reported(runtime: Runtime, known: dict) -> dict[str, Any]:
    """``known``, with a report of the contact routed (its entries, events, alerts) and a
    stakeholder that has no entry for it."""
    contact, conversation = known["contact"], known["conversation"]
    with Session(runtime.engine, expire_on_commit=False) as session:
        report = effects.create_report(
            session,
            {"category": "theft", "place": None, "urgency": "emergency"},
            contact=session.get(Contact, contact.id),  # type: ignore[arg-type]
            conversation=session.get(Conversation, conversation.id),  # type: ignore[arg-type]
            flow=None,
            channel="sms",
            now=NOW,
        )
        session.commit()
        taken = select(QueueEntry.stakeholder_id).where(QueueEntry.report_id == report.id)
        free = session.exec(select(Stakeholder).where(Stakeholder.id.not_in(taken))).all()  # type: ignore[union-attr]
    assert len(free) >= 2, "the test configuration has stakeholders the report did not reach"
    return {**known, "report": report, "free": free}


def _report_values(known: dict) -> dict[str, Any]:
    return {
        "reference": "123-4567",
        "contact_id": known["contact"].id,
        "conversation_id": known["conversation"].id,
        "channel": "sms",
        "language": "fr",
        "category": "theft",
        "urgency": "normal",
        "area_id": None,
        "description": "Des hommes armés",
        "recording_url": None,
        "anonymous": True,
        "callback_ok": False,
        "incomplete": False,
        "status": "new",
        "answers": {"danger": "no", "places": ["ML-BKO"]},
        "flow_version": "1",
        "created_at": NOW,
        "updated_at": NOW,
        "merged_into_id": None,
        "purged_at": None,
    }


def test_a_report_is_inserted_as_sqlalchemy_inserts_it(runtime: Runtime, known: dict) -> None:
    insert_report = effects._INSERT_REPORT[runtime.engine.dialect.name]
    values = _report_values(known)
    through_sqlalchemy, prepared = _both_ways(runtime, insert_report, values)
    assert prepared == through_sqlalchemy and len(prepared[0]) == 1
    assert prepared[0][0][0] == "new 0"
    assert _types(prepared[0]) == _types(through_sqlalchemy[0])


def test_a_report_taken_reference_returns_no_row(runtime: Runtime, reported: dict) -> None:
    insert_report = effects._INSERT_REPORT[runtime.engine.dialect.name]
    values = {**_report_values(reported), "reference": reported["report"].reference}
    through_sqlalchemy, prepared = _both_ways(runtime, insert_report, values)
    assert prepared == through_sqlalchemy and prepared[0] == []


def test_a_new_report_is_a_persistent_object_of_the_session(runtime: Runtime, known: dict) -> None:
    with Session(runtime.engine, expire_on_commit=False) as session:
        contact = session.get(Contact, known["contact"].id)
        conversation = session.get(Conversation, known["conversation"].id)
        report = effects.create_report(
            session,
            {"category": "theft", "place": None, "urgency": "normal", "answers": {"a": 1}},
            contact=contact,  # type: ignore[arg-type]
            conversation=conversation,  # type: ignore[arg-type]
            flow=None,
            channel="sms",
            now=NOW,
        )
        assert sa.inspect(report).persistent and report.created_at == NOW
        assert report.answers == {"a": 1} and report.anonymous is True
        assert session.get(Report, report.id) is report  # in the identity map, as if loaded
        assert not session.dirty
        report.status = "acknowledged"  # changed after: flushed as any loaded object is
        session.commit()
    with Session(runtime.engine) as session:
        stored = session.get(Report, report.id)
        assert stored is not None and stored.status == "acknowledged"
        assert stored.reference == report.reference


def test_entries_and_events_go_in_by_executemany_as_through_sqlalchemy(
    runtime: Runtime, reported: dict
) -> None:
    report, free = reported["report"], reported["free"]
    entries = [
        routes._entry_row(
            report,
            stakeholder.id,
            via="rule",
            rule_line=3 + i,
            chain="police" if i else "moderation",
            due=NOW + timedelta(hours=4),
            now=NOW,
        )
        for i, stakeholder in enumerate(free[:2])
    ]
    assert set(entries[0]) == set(routes._ENTRY_COLUMNS)
    through_sqlalchemy, prepared = _both_ways(runtime, routes._INSERT_ENTRIES, entries)
    assert prepared[::2] == through_sqlalchemy[::2] and prepared[1] == 2
    added = [row for row in prepared[2]["queue_entries"] if str(row[0]).startswith("new ")]
    assert len(added) == 2
    events = [
        routes.event_row(report.id, "created", to_status="new", data={"x": None}, created_at=NOW),
        routes.event_row(
            report.id, "routed", stakeholder_id=free[0].id, data={"alerts": 1}, created_at=NOW
        ),
    ]
    through_sqlalchemy, prepared = _both_ways(runtime, routes._INSERT_EVENTS, events)
    assert prepared[::2] == through_sqlalchemy[::2] and prepared[1] == 2
    assert len([r for r in prepared[2]["report_events"] if str(r[0]).startswith("new ")]) == 2


def test_executemany_of_a_statement_that_returns_rows_is_refused(runtime: Runtime) -> None:
    with runtime.engine.connect() as conn, pytest.raises(ValueError, match="returns rows"):
        unlocked_step._START.executemany(conn, [{}])


def test_stakeholders_are_read_as_with_an_expanding_in(runtime: Runtime, reported: dict) -> None:
    codes = [stakeholder.code for stakeholder in reported["free"][:2]] + ["not-a-stakeholder"]
    params = {f"code_{i}": code for i, code in enumerate(codes)}
    through_sqlalchemy, prepared = _both_ways(runtime, routes._stakeholders(3), params)
    assert prepared == through_sqlalchemy
    assert sorted(row[1] for row in prepared[0]) == sorted(codes[:2])
    assert _types(prepared[0]) == _types(through_sqlalchemy[0])
    with runtime.engine.connect() as conn:
        expanding = conn.execute(sa.select(Stakeholder.code).where(Stakeholder.code.in_(codes)))
        assert sorted(expanding.scalars()) == sorted(codes[:2])
        row = routes._stakeholders(3).execute(conn, params).rows[0]
    assert isinstance(row.on_call, list) and isinstance(row.active, bool)


def test_alerts_are_queued_as_sqlalchemy_queues_them(runtime: Runtime, reported: dict) -> None:
    """A few rows by one prepared statement, many by SQLAlchemy's: the same rows, and the same
    keys back (those not queued already)."""
    queued = [
        outbox.queued_row(
            channel="sms",
            idempotency_key=f"test:{i}",
            body="Alerte",
            payload={"report": "x"},
            address_enc="enc",
            kind="alert",
            now=NOW,
        )
        for i in range(outbox.FEW + 2)
    ]
    with Session(runtime.engine) as session:
        first = outbox.enqueue_many(session, queued[:1])  # one row, prepared
        session.commit()
    assert first == {"test:0"}
    dialect = runtime.engine.dialect.name
    few = queued[:3]
    params = {f"{name}_{i}": value for i, row in enumerate(few) for name, value in row.items()}
    through_sqlalchemy, prepared = _both_ways(runtime, outbox._queue_few(dialect, 3), params)
    assert prepared == through_sqlalchemy
    assert sorted(key for (key,) in prepared[0]) == ["test:1", "test:2"]  # test:0 was queued
    with Session(runtime.engine) as session:
        assert outbox.enqueue_many(session, few) == {"test:1", "test:2"}
        many = outbox.enqueue_many(session, queued)  # more than FEW: SQLAlchemy's statement
        session.commit()
        assert many == {f"test:{i}" for i in range(3, outbox.FEW + 2)}
        stored = session.exec(select(Outbox).where(Outbox.idempotency_key.like("test:%"))).all()  # type: ignore[attr-defined]
    assert len(stored) == outbox.FEW + 2
    assert {row.payload["report"] for row in stored} == {"x"}
