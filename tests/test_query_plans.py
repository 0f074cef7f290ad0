"""Every statement a step runs, built once (:class:`~citoyen.prepared.Prepared`), finds its rows
through an index: none reads a whole table, which would make every message slower as the
tables grow. On SQLite and on PostgreSQL, the plan each database makes for the statement as
the app runs it.

On PostgreSQL the plan checked is the generic one (the plan a worker's connection keeps for a
statement it runs again and again), with sequential scans priced out of reach: a table still
read in full then has no index for the lookup. On SQLite, ``EXPLAIN QUERY PLAN`` names a full
read ``SCAN <table>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

from citoyen.prepared import Prepared
from citoyen.services import calls, conversations, effects, inbound, outbox, unlocked_step
from citoyen.services.queues import routes

TABLES = set(SQLModel.metadata.tables)
# Statements only one database runs (a data-modifying WITH is PostgreSQL's).
ONLY_ON = {"citoyen.services.unlocked_step._MOVE_AND_STORE": "postgresql"}


Pick = Callable[[str], Prepared]  # the statement a database (by dialect name) runs


def _statements() -> Iterator[tuple[str, Pick]]:
    """Every prepared statement of the hot paths, the ones made per count or per set of columns
    for a sample count and set: module-level ones, and the ones kept per dialect in a dict."""
    for module in (unlocked_step, inbound, effects, calls, routes, outbox):
        for name, value in sorted(vars(module).items()):
            if isinstance(value, Prepared):
                yield f"{module.__name__}.{name}", lambda _dialect, value=value: value
            elif (
                isinstance(value, dict)
                and value
                and all(isinstance(item, Prepared) for item in value.values())
            ):
                yield f"{module.__name__}.{name}", value.__getitem__
    # Built once, run through the session: the open conversation of a contact (locking path).
    open_conversation = Prepared(conversations._OPEN_CONVERSATION)
    yield "conversations._OPEN_CONVERSATION", lambda _dialect: open_conversation
    yield "routes._stakeholders(3)", lambda _dialect: routes._stakeholders(3)
    yield "outbox._queue_few(3)", lambda dialect: outbox._queue_few(dialect, 3)
    yield (
        "unlocked_step._setting(_NEW_CONTACT, language)",
        lambda _dialect: unlocked_step._setting(
            unlocked_step._NEW_CONTACT, frozenset({"language"})
        ),
    )


STATEMENTS = dict(_statements())


def _plan_postgresql(conn: sa.Connection, sql: str) -> dict[str, Any]:
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", sql)))
    numbered = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m.group(1)) + 1}", sql)
    conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    conn.exec_driver_sql(f"PREPARE plan_check AS {numbered}")
    try:
        nulls = ", ".join("NULL" for _ in names)
        explained = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) EXECUTE plan_check({nulls})")
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


def _plan_sqlite(conn: sa.Connection, sql: str, count: int) -> list[str]:
    params = (None,) * count
    rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params).all()
    return [row[-1] for row in rows]


def _full_reads_sqlite(plan: list[str]) -> set[str]:
    # "SCAN contacts", "SCAN contacts AS blocking_contacts"; not "SCAN CONSTANT ROW" nor the scan
    # of a subquery's rows ("SCAN anon_1"), which read no table.
    return {m.group(1) for line in plan if (m := re.match(r"SCAN (\w+)", line))} & TABLES


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_statement_reads_no_table_in_full(db_engine: sa.Engine, name: str) -> None:
    dialect = db_engine.dialect
    only = ONLY_ON.get(name)
    if only is not None and only != dialect.name:
        pytest.skip(f"a statement only {only} runs")
    compiled = STATEMENTS[name](dialect.name).compiled(dialect)
    with db_engine.connect() as conn:
        if dialect.name == "postgresql":
            tree = _plan_postgresql(conn, compiled.sql)
            full = _full_reads_postgresql(tree)
            plan = [json.dumps(tree, indent=1)]
        else:
            plan = _plan_sqlite(conn, compiled.sql, compiled.sql.count("?"))
            full = _full_reads_sqlite(plan)
        conn.rollback()
    assert not full, f"{name} reads {sorted(full)} in full:\n" + "\n".join(plan)


def test_every_prepared_module_is_checked() -> None:
    """A module that builds prepared statements and is not in the list above would go
    unchecked: every one of ``citoyen`` is."""
    import citoyen

    root = __import__("pathlib").Path(citoyen.__file__).parent
    checked = {"unlocked_step", "inbound", "effects", "calls", "routes", "outbox"}
    building = {
        path.stem
        for path in root.rglob("*.py")
        if path.name != "prepared.py" and "Prepared(" in path.read_text(encoding="utf-8")
    }
    assert building <= checked, f"not checked: {sorted(building - checked)}"
