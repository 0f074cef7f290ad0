"""Every statement a conversation step runs finds its rows through an index: none reads a whole
table, which would make every message slower as the tables grow. On SQLite and on PostgreSQL,
the plan each database makes for the statement as the app sends it.

The statements are the ones the app really sends (recorded on the engine) while citizens send
SMS reports, repeat a message and make a voice call with a recording that ends in a hang-up,
once the process's caches (areas, routing, flow versions) are warm: the second contact's steps.

On PostgreSQL the plan checked is the generic one (the plan a worker's connection keeps for a
statement it runs again and again), with sequential scans priced out of reach: a table still
read in full then has no index for the lookup. On SQLite, ``EXPLAIN QUERY PLAN`` names a full
read ``SCAN <table>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

from citoyen.engine.types import Input
from citoyen.messages.types import Inbound
from citoyen.runtime import Runtime
from citoyen.services import calls
from citoyen.services.setup import ensure_ready

TABLES = set(SQLModel.metadata.tables)
# A whole report in French: the last message (consent) creates the report.
REPORT = ["Bonjour", "1", "2", "1", "1", "2", "Vol de moto devant la mosquée", "1", "2"]
DML = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")


def _citizen(rt: Runtime, number: str, call: str) -> None:
    """One citizen's SMS report (each message once, the last one twice), then a voice call with
    a recording that the caller hangs up."""
    for i, text in enumerate(REPORT):
        rt.conversations.handle(Inbound("sms", number, Input("text", text), f"{call}-SM{i}"))
    rt.conversations.handle(Inbound("sms", number, Input("text", REPORT[-1]), f"{call}-SM8"))
    call_sid = "CA" + call * 32
    calls.voice_turn(rt, call_sid=call_sid, n=0, address=number, inp=Input("start"))
    calls.voice_turn(
        rt,
        call_sid=call_sid,
        n=1,
        address=number,
        inp=Input("digits", "1"),
        recording=calls.Recording(sid="RE" + call * 32, duration=5),
    )
    calls.handle_call_status(rt, {"CallSid": call_sid, "CallStatus": "completed"})


@pytest.fixture
def step_statements(settings: Any) -> Iterator[tuple[sa.Engine, list[str]]]:
    rt = Runtime(settings)
    ensure_ready(rt)
    _citizen(rt, "+22376000031", "a")  # the caches are filled
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_rest) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().split(None, 1)[0].upper() in DML:
            sent.append(statement)

    sa.event.listen(rt.engine, "before_cursor_execute", record)
    try:
        _citizen(rt, "+22376000032", "b")
    finally:
        sa.event.remove(rt.engine, "before_cursor_execute", record)
    yield rt.engine, list(dict.fromkeys(sent))


def _plan_postgresql(conn: sa.Connection, sql: str) -> dict[str, Any]:
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", sql)))
    numbered = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m.group(1)) + 1}", sql)
    conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    conn.exec_driver_sql(f"PREPARE plan_check AS {numbered}")
    try:
        nulls = ", ".join("NULL" for _ in names)
        explained = conn.exec_driver_sql(
            f"EXPLAIN (FORMAT JSON) EXECUTE plan_check{f'({nulls})' if names else ''}"
        )
        return explained.scalar_one()[0]["Plan"]
    finally:
        conn.exec_driver_sql("DEALLOCATE plan_check")


def _full_reads_postgresql(node: dict[str, Any]) -> set[str]:
    """Tables a plan reads in full: a sequential scan, or an index scan with no condition on
    the index (the whole index walked, each row filtered)."""
    found = set()
    table = node.get("Relation Name")
    if table in TABLES and (
        node["Node Type"] == "Seq Scan"
        or (node["Node Type"] in ("Index Scan", "Index Only Scan") and "Index Cond" not in node)
    ):
        found.add(table)
    for child in node.get("Plans", ()):
        found |= _full_reads_postgresql(child)
    return found


def _plan_sqlite(conn: sa.Connection, sql: str) -> list[str]:
    params = (None,) * sql.count("?")
    rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params).all()
    return [row[-1] for row in rows]


def _full_reads_sqlite(plan: list[str]) -> set[str]:
    # "SCAN contacts", "SCAN contacts AS c"; not "SCAN CONSTANT ROW" nor the scan of a
    # subquery's rows ("SCAN anon_1"), which read no table.
    return {m.group(1) for line in plan if (m := re.match(r"SCAN (\w+)", line))} & TABLES


def test_no_statement_of_a_step_reads_a_table_in_full(
    step_statements: tuple[sa.Engine, list[str]],
) -> None:
    engine, statements = step_statements
    tables = {t for sql in statements for t in TABLES if re.search(rf"\b{t}\b", sql)}
    # The walk above reaches the tables a step writes: a recording that changes what it runs
    # would be seen here rather than pass with fewer statements.
    assert {"contacts", "conversations", "messages", "reports", "attachments"} <= tables
    problems = []
    with engine.connect() as conn:
        for sql in statements:
            if engine.dialect.name == "postgresql":
                tree = _plan_postgresql(conn, sql)
                full, plan = _full_reads_postgresql(tree), json.dumps(tree, indent=1)
            else:
                lines = _plan_sqlite(conn, sql)
                full, plan = _full_reads_sqlite(lines), "\n".join(lines)
            if full:
                problems.append(f"{sorted(full)} read in full by:\n{sql}\n{plan}")
        conn.rollback()
    assert not problems, "\n\n".join(problems)
