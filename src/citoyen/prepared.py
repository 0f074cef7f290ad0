"""Hot statements compiled once per database and run straight on the driver's cursor.

Every inbound message runs the same four or five Core statements (read the sender, move the
conversation on, store the message with its reply). Through ``Connection.execute`` each one
cost some 30 µs of SQLAlchemy's Python on top of the driver's own work (measured: the read of
:mod:`citoyen.services.unlocked_step` took 41 µs of CPU that way and 11 µs on the driver's
cursor): the cache key of the statement, an execution context, the parameters processed one by
one through dictionaries, a result object. For the SMS webhook that was a fifth of its CPU.

:class:`Prepared` keeps what SQLAlchemy would work out at every execution — the SQL text for
the connection's dialect, the order of its parameters, the type processors of each parameter
and of each result column, its constant parameters already processed — and then runs it on the
DBAPI cursor of the SQLAlchemy connection, inside whatever transaction that connection is in.
What SQLAlchemy does around a statement is kept where it matters: ``before_cursor_execute`` and
``after_cursor_execute`` listeners still see the statement (tests and benchmarks count
statements that way); driver errors are raised as SQLAlchemy's own exceptions
(``IntegrityError`` for a duplicate provider id, as the callers expect), and a connection lost
is invalidated so that the pool does not hand it out again.

Only statements whose SQL is fixed are accepted: no expanding ``IN`` lists, no Python-side column
defaults to compute, no escaped parameter names (checked when a statement is first compiled for
a dialect). Statements built per call (``.values(**columns)``) stay on ``Connection.execute``.
The results equal ``Connection.execute``'s, row for row and type for type (tests/test_prepared.py).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler

_Processor = Callable[[Any], Any] | None


class Result:
    """What a prepared statement returned: its rows (named tuples, attributes by column label,
    values processed by their column types as SQLAlchemy's would be) and its row count."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rowcount: int, rows: list[Any]) -> None:
        self.rowcount = rowcount
        self.rows = rows

    def all(self) -> list[Any]:
        return self.rows

    def scalar(self) -> Any:
        """The first column of the first row, or None when there is no row."""
        return self.rows[0][0] if self.rows else None


class _Compiled:
    """One statement compiled for one dialect, with everything its executions share."""

    __slots__ = ("constants", "order", "processors", "results", "row", "sql")

    def __init__(self, statement: sa.Executable, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        # Python-side column defaults that are fixed values (``blocked`` False) are constants
        # like the statement's literals; a default computed per row would need SQLAlchemy.
        prefetch = [*compiled.insert_prefetch, *compiled.update_prefetch]
        problem = (
            "Python-side defaults computed per row"
            if any(column.default is None or not column.default.is_scalar for column in prefetch)
            else "parameters rendered at execution"
            if compiled.post_compile_params or compiled.literal_execute_params
            else "escaped parameter names"
            if compiled.escaped_bind_names
            else None
        )
        if problem is not None:
            raise ValueError(f"not a fixed statement ({problem}): {compiled.string}")
        self.sql = compiled.string
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        # For a positional paramstyle (SQLite's ``?``), the names in the order the SQL takes
        # them; None for a named one (psycopg's ``%(name)s``), which takes a dictionary.
        self.order = list(compiled.positiontup) if compiled.positiontup is not None else None
        self.processors: dict[str, _Processor] = {}
        self.constants: dict[str, Any] = {}
        for name, bind in binds.items():
            processor = bind.type._cached_bind_processor(dialect)
            if bind.required:
                self.processors[name] = processor
            else:  # a literal of the statement (a fixed status, a direction): processed once
                value = bind.effective_value
                self.constants[name] = processor(value) if processor is not None else value
        for column in prefetch:
            processor = binds[column.key].type._cached_bind_processor(dialect)
            value = column.default.arg
            self.constants[column.key] = processor(value) if processor is not None else value
            self.processors.pop(column.key, None)
        # What SQLAlchemy's own result would do with each column (private to SQLAlchemy, but the
        # list its cursor results are built from; tests/test_prepared.py holds both equal).
        columns = compiled._result_columns
        self.results: list[_Processor] = [
            column.type._cached_result_processor(dialect, None) for column in columns
        ]
        self.row = namedtuple("Row", [column.keyname for column in columns]) if columns else None

    def parameters(self, params: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        """The driver's parameters for ``params`` (raises KeyError for a missing one)."""
        processors, constants = self.processors, self.constants
        values: dict[str, Any] = {}
        for name, processor in processors.items():
            value = params[name]
            # None goes through the processor too, as SQLAlchemy sends it (JSON's is "null").
            values[name] = processor(value) if processor is not None else value
        values.update(constants)
        if self.order is not None:
            return [values[name] for name in self.order]
        return values

    def rows(self, raw: list[Sequence[Any]]) -> list[Any]:
        assert self.row is not None
        make, results = self.row._make, self.results
        if not any(results):
            return [make(values) for values in raw]
        return [
            make(
                [
                    value if process is None else process(value)
                    for process, value in zip(results, values, strict=True)
                ]
            )
            for values in raw
        ]


def session_connection(session: Any) -> sa.Connection:
    """The connection of ``session``'s transaction, for prepared statements run in it, with the
    rows the session holds flushed first: what the session's autoflush would have sent before a
    statement run through it, so that they still go first."""
    session.flush()
    return session.connection()


def bound(table: sa.Table, columns: Iterable[str], suffix: str = "") -> dict[str, Any]:
    """A parameter for each of ``columns``, named after it (and ``suffix``), typed as it is: the
    ``.values()`` of a fixed INSERT for :class:`Prepared`."""
    return {name: sa.bindparam(name + suffix, type_=table.c[name].type) for name in columns}


def insert_of(table: sa.Table, columns: Iterable[str]) -> sa.Insert:
    """``INSERT INTO table (columns) VALUES (...)``, its parameters named after the columns, and
    nothing returned (not even the new id, which PostgreSQL's dialect would otherwise add): a
    fixed statement for :meth:`Prepared.executemany`."""
    return table.insert().inline().values(bound(table, columns))


class Prepared:
    """A Core statement to run many times on :meth:`execute`, cheaper than
    ``Connection.execute`` and with the same result (see the module's docstring)."""

    __slots__ = ("_by_dialect", "statement")

    def __init__(self, statement: sa.Executable) -> None:
        self.statement = statement
        self._by_dialect: dict[Dialect, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        known = self._by_dialect.get(dialect)
        if known is None:
            known = self._by_dialect[dialect] = _Compiled(self.statement, dialect)
        return known

    def execute(self, conn: sa.Connection, params: Mapping[str, Any]) -> Result:
        """Run the statement on ``conn``'s driver connection, in ``conn``'s transaction."""
        compiled = self.compiled(conn.dialect)
        return self._run(conn, compiled, compiled.parameters(params), many=False)

    def executemany(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Run the statement once for each of ``rows`` by the driver's ``executemany`` (psycopg
        sends them in one pipeline), in ``conn``'s transaction; the driver's row count.

        For statements that return no rows (``INSERT`` without ``RETURNING``): the rows of a
        report's queue entries and timeline events."""
        compiled = self.compiled(conn.dialect)
        if compiled.row is not None:
            raise ValueError(f"executemany of a statement that returns rows: {compiled.sql}")
        if not rows:
            return 0
        parameters = [compiled.parameters(row) for row in rows]
        return self._run(conn, compiled, parameters, many=True).rowcount

    @staticmethod
    def _run(conn: sa.Connection, compiled: _Compiled, parameters: Any, *, many: bool) -> Result:
        dialect = conn.dialect
        dbapi_connection = conn.connection.dbapi_connection
        assert dbapi_connection is not None
        cursor = dbapi_connection.cursor()
        try:
            dispatch = conn.dispatch
            dispatch.before_cursor_execute(conn, cursor, compiled.sql, parameters, None, many)
            if many:
                cursor.executemany(compiled.sql, parameters)
            else:
                cursor.execute(compiled.sql, parameters)
            dispatch.after_cursor_execute(conn, cursor, compiled.sql, parameters, None, many)
            rows = compiled.rows(cursor.fetchall()) if compiled.row is not None else []
            return Result(cursor.rowcount, rows)
        except dialect.loaded_dbapi.Error as error:
            invalidated = dialect.is_disconnect(error, dbapi_connection, cursor)
            if invalidated:
                conn.invalidate(error)
            raise sa.exc.DBAPIError.instance(
                compiled.sql,
                parameters,
                error,
                dialect.loaded_dbapi.Error,
                hide_parameters=conn.engine.hide_parameters,
                connection_invalidated=invalidated,
                dialect=dialect,
            ) from error
        finally:
            cursor.close()
