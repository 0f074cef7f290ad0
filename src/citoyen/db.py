"""Database engine, sessions and migrations.

SQLite is the embedded default (WAL so readers don't block the writer, a busy timeout so
concurrent web requests wait instead of failing, foreign keys on); PostgreSQL through psycopg 3 is
the path when one machine is not enough. The schema is owned by Alembic migrations shipped in
``citoyen/migrations``: ``upgrade()`` is what ``citoyen db upgrade`` and first start run.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux: SQLite's busy handler alone
    fcntl = None  # type: ignore[assignment]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# The session a face (web view, CLI command, worker job) opens with `Runtime.session()` or
# `write_session` and hands to the services: faces name its type from here and never import
# the ORM (a contract in pyproject.toml), so every query stays in a service.
DbSession = Session

_engines: dict[str, Engine] = {}


# The dialects citoyen runs on, each with its INSERT ... ON CONFLICT: the outbox, routing, a
# report's effects, a call's recordings and the flow versions insert-or-skip through it.
INSERT = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _json_dumps(value: Any) -> str:
    """JSON text of a column value, by orjson: conversation state, menus and replies are written
    with every inbound message, and orjson is the faster encoder. Integer keys become strings as with ``json``; text is kept as UTF-8 rather than ``\\u`` escapes."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def make_engine(url: str) -> Engine:
    """A new engine for ``url`` with the settings each backend needs."""
    json = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 15}, **json
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; emit it ourselves so that
        # "BEGIN IMMEDIATE" (see write_session) takes the write lock up front.
        sa.event.listen(engine, "connect", _disable_pysqlite_begin)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, **json)


def _sqlite_begin(conn: sa.Connection) -> None:
    options = conn.get_execution_options()
    conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("citoyen_write", False) else "BEGIN")


def _disable_pysqlite_begin(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def get_engine(url: str) -> Engine:
    """One engine per URL per process (engines own connection pools)."""
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = make_engine(url)
    return engine


def dispose_engines() -> None:
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A transaction that will write: on SQLite it takes the write lock at BEGIN.

    Without this, two SQLite transactions that both read then write deadlock into "database is
    locked" instead of waiting their turn; on PostgreSQL rows are locked explicitly instead.
    On SQLite writers also queue on :class:`WriterGate` first, so a waiting one starts the
    moment the previous one commits instead of sleeping in SQLite's busy handler.
    """
    if engine.dialect.name != "sqlite":
        with session_scope(engine) as session:
            yield session
        return
    with writer_gate(engine), session_scope(_writer(engine)) as s:
        yield s


_write_engines: dict[int, tuple[Engine, Engine]] = {}


def _writer(engine: Engine) -> Engine:
    """``engine`` whose transactions begin with ``BEGIN IMMEDIATE`` (SQLite), made once per
    engine (each ``execution_options`` call makes a new one)."""
    known = _write_engines.get(id(engine))
    if known is None or known[0] is not engine:
        known = _write_engines[id(engine)] = (engine, engine.execution_options(citoyen_write=True))
    return known[1]


def insert_or_skip(bind: Session | sa.Connection | Engine, table: Any, keys: list[str]) -> Any:
    """``INSERT INTO table ... ON CONFLICT (keys) DO NOTHING`` in the dialect of ``bind``:
    a row whose unique ``keys`` exist already (inserted here or by a concurrent transaction)
    is skipped, where a plain INSERT would fail. ``table`` is a Table or a mapped class."""
    return insert(bind, table).on_conflict_do_nothing(index_elements=keys)


def insert(bind: Session | sa.Connection | Engine, table: Any) -> Any:
    """The INSERT of ``bind``'s dialect for ``table``, which has ``on_conflict_do_nothing`` and
    ``on_conflict_do_update`` (and ``.excluded``): for an upsert."""
    return INSERT[_dialect(bind)](table)


def among(bind: Session | sa.Connection | Engine, column: Any, ids: list[int]) -> Any:
    """``column IN ids``; on PostgreSQL one array parameter (``= ANY``) instead of thousands of
    placeholders, which psycopg would parse for every statement (a survey's batches)."""
    if _dialect(bind) == "postgresql":
        return column == sa.any_(sa.literal(ids, postgresql.ARRAY(sa.Integer)))
    return column.in_(ids)


def _dialect(bind: Session | sa.Connection | Engine) -> str:
    if isinstance(bind, Session):
        return bind.get_bind().dialect.name
    return bind.dialect.name


class WriterGate:
    """One SQLite database's writers, one at a time across threads and processes.

    SQLite lets one writer in at a time; the others wait in its busy handler, which polls with
    sleeps growing to 100 ms (1, 2, 5, 10 ... ms): under a steady load of web workers a writer
    that could have started 1 ms later may sleep tens of milliseconds. Waiting on an ``flock``
    of a file beside the database instead wakes the next writer as soon as the lock is
    released. Reentrant within a thread (a nested
    write transaction keeps the lock it already holds). Where ``fcntl`` is missing the gate
    does nothing and SQLite's busy handler alone serialises writers, as before.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0
        self._file: Any = None
        self._pid = 0

    def __enter__(self) -> WriterGate:
        self._lock.acquire()
        try:
            if self._depth == 0 and fcntl is not None:
                if self._file is None or self._pid != os.getpid():
                    # A forked child gets its own open file: an inherited one would share the
                    # parent's lock instead of waiting for it.
                    self._file, self._pid = open(self.path, "a+b"), os.getpid()
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
            self._depth += 1
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            self._depth -= 1
            if self._depth == 0 and fcntl is not None and self._file is not None:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        finally:
            self._lock.release()


_gates: dict[str, WriterGate] = {}
_gates_lock = threading.Lock()


def writer_gate(engine: Engine) -> Any:
    """The :class:`WriterGate` of a SQLite engine's database file (none for in-memory ones)."""
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return nullcontext()
    if os.path.isabs(database):
        # Every write transaction asks: an absolute name needs no resolving (a syscall per
        # path component) once its gate exists.
        gate = _gates.get(database)
        if gate is not None:
            return gate
    path = str(Path(database).resolve()) + ".writer-lock"
    with _gates_lock:
        gate = _gates.get(path)
        if gate is None:
            gate = _gates[path] = WriterGate(path)
        if os.path.isabs(database):
            _gates[database] = gate
    return gate


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(url: str) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def ping(engine: Engine) -> bool:
    """True when the database answers (used by /healthz)."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.SQLAlchemyError:
        return False


AUTOVACUUM_OFF = (
    "PostgreSQL's autovacuum is off on this server: plans made while the tables were small are "
    "kept and dead rows pile up, and each message gets slower as the tables grow. Turn it on (the default), or run "
    "VACUUM (ANALYZE) regularly. See docs/deploy.md."
)


def maintenance_warning(engine: Engine) -> str | None:
    """What to tell the operator about the database's own upkeep, or None when all is well.

    PostgreSQL plans statements from the tables' statistics, which autovacuum's ANALYZE keeps
    current as the tables grow, and its VACUUM reclaims the rows each step's updates leave
    dead. Off, nothing does."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        autovacuum = conn.execute(sa.text("SHOW autovacuum")).scalar_one()
    return AUTOVACUUM_OFF if autovacuum != "on" else None
