"""The schema: migrations from empty on both databases, models and migrations in step, UTC."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import Session, SQLModel, select

from citoyen import db
from citoyen.models import Contact, Message

EXPECTED_TABLES = {
    "areas",
    "contacts",
    "conversations",
    "messages",
    "reports",
    "report_events",
    "stakeholders",
    "users",
    "audit_events",
    "outbox",
    "flow_versions",
    "survey_answers",
}


def test_migrations_create_every_table(db_engine: sa.Engine) -> None:
    tables = set(sa.inspect(db_engine).get_table_names())
    assert tables >= EXPECTED_TABLES
    assert db.current_revision(db_engine) == db.head_revision(str(db_engine.url))


def test_models_and_migrations_agree(db_engine: sa.Engine) -> None:
    """Autogenerate against a migrated database finds nothing to do."""
    with db_engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, SQLModel.metadata)
    assert diff == []


def test_downgrade_to_empty_and_up_again(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    db.upgrade(url)
    db.downgrade(url, "base")
    engine = db.get_engine(url)
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    db.upgrade(url)
    assert set(sa.inspect(engine).get_table_names()) >= EXPECTED_TABLES


def test_sqlite_pragmas(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    engine = db.get_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 15000


def _contact(**kw) -> Contact:
    base = {"address_hash": "h" * 64, "address_enc": "x", "channel": "tel", "alias": 1234}
    return Contact(**{**base, **kw})


def test_datetimes_come_back_aware_utc(db_session: Session) -> None:
    bamako_evening = datetime(2026, 11, 27, 20, 0, tzinfo=timezone(timedelta(hours=0)))
    paris = datetime(2026, 11, 27, 21, 0, tzinfo=timezone(timedelta(hours=1)))
    db_session.add(_contact(created_at=paris, last_seen_at=bamako_evening))
    db_session.commit()
    db_session.expire_all()
    contact = db_session.exec(select(Contact)).one()
    assert contact.created_at.tzinfo is not None
    assert contact.created_at == bamako_evening
    assert contact.created_at.utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(db_session: Session) -> None:
    db_session.add(_contact(created_at=datetime(2026, 1, 1)))
    with pytest.raises(sa.exc.StatementError):
        db_session.commit()


def test_message_provider_id_is_unique_per_channel(db_session: Session) -> None:
    db_session.add(Message(channel="sms", direction="in", provider_id="SM1"))
    db_session.add(Message(channel="telegram", direction="in", provider_id="SM1"))
    db_session.commit()
    db_session.add(Message(channel="sms", direction="in", provider_id="SM1"))
    with pytest.raises(sa.exc.IntegrityError):
        db_session.commit()


def test_foreign_keys_enforced(db_session: Session) -> None:
    db_session.add(Message(channel="sms", direction="in", contact_id=999))
    with pytest.raises(sa.exc.IntegrityError):
        db_session.commit()


def test_now_is_utc() -> None:
    from citoyen.models import utcnow

    assert utcnow().tzinfo is UTC


def test_generated_secrets_are_created_once_for_all_processes(tmp_path) -> None:
    """Two workers starting together must agree on the data key and the session key."""
    import threading

    from citoyen.config import Settings

    settings = [Settings(instance_dir=tmp_path, data_key=None, secret_key=None) for _ in range(8)]
    keys: list[str] = []
    barrier = threading.Barrier(8)

    def read(s: Settings) -> None:
        barrier.wait()
        keys.append(s.effective_data_key())

    threads = [threading.Thread(target=read, args=(s,)) for s in settings]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1
    assert (tmp_path / "data_key").stat().st_mode & 0o777 == 0o600


def test_write_session_commits_and_rolls_back_when_the_block_raises(db_engine: sa.Engine) -> None:
    with db.write_session(db_engine) as session:
        session.execute(sa.text("CREATE TABLE ws (n INTEGER)"))
    with db.write_session(db_engine) as session:
        if db_engine.dialect.name == "sqlite":
            # The write lock is taken at BEGIN, before any statement of the block.
            session.connection()
            other = sqlite3.connect(db_engine.url.database, timeout=0)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            other.close()
        session.execute(sa.text("INSERT INTO ws VALUES (1)"))
    with pytest.raises(LookupError), db.write_session(db_engine) as session:
        session.execute(sa.text("INSERT INTO ws VALUES (2)"))
        raise LookupError("the step failed")
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT n FROM ws")).scalars().all() == [1]


def test_maintenance_warning_follows_the_servers_autovacuum(db_engine: sa.Engine) -> None:
    """PostgreSQL with autovacuum off gets a warning naming it; on, or SQLite, none."""
    warning = db.maintenance_warning(db_engine)
    if db_engine.dialect.name == "sqlite":
        assert warning is None
        return
    with db_engine.connect() as conn:
        on = conn.execute(sa.text("SHOW autovacuum")).scalar_one() == "on"
    assert warning == (None if on else db.AUTOVACUUM_OFF)
