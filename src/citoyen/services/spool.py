"""Store and forward: inbound messages the database cannot take are kept on disk and replayed.

Twilio does not retry an SMS webhook that failed: while the database is unreachable, locked or
full, every citizen's message answered with a 500 was gone. So a webhook whose signature was
checked hands its :class:`Inbound` to :func:`handle` instead of the conversation service:

- **Live when it can.** The conversation service handles it as before (same dedupe, same reply).
- **Spooled when the database fails** (``OperationalError``, ``InterfaceError``, a pool timeout:
  server down, connection refused, SQLite read-only or "database or disk is full"). The inbound
  is appended to the spool: one file per request in ``<instance>/spool/``, written to a
  temporary name, fsync'd, renamed, the folder fsync'd, so a record is either whole or absent
  after a crash. The address is encrypted with the project's vault, as in the database. The
  webhook is answered 2xx with ``system.received_later`` in the citizen's language when it can
  still be read, else the deployment's default.
- **Bounded.** Past ``CITOYEN_SPOOL_MAX_BYTES`` (or when the disk refuses the file too),
  :class:`SpoolFull` is raised: the web layer answers 503 and Twilio's fallback URL, if set,
  is the next line of defence (docs/outbox.md).
- **Replayed in arrival order, once** (:func:`replay`): under an ``flock`` of
  ``<instance>/spool.lock``, so several web workers and the worker never replay together; each
  record goes through the conversation service with its arrival time and its provider id (the
  same dedupe as live traffic), and the reply is queued in the outbox in the step's own
  transaction (``on_reply``), so it is queued if and only if the message is recorded. The file
  is removed after that commit; a crash in between replays it again, which the dedupe turns
  into nothing. A live message from anyone while the spool is not empty first waits for the
  replay, so a citizen's messages are never taken out of order.
- **Who replays.** The web process that spooled starts a thread that tries every
  ``RETRY_SECONDS`` until the spool is empty; every ``citoyen worker`` tries each dispatch pass;
  a live request tries first. Whoever holds the lock does it.

The conversation service itself is not changed: this module wraps its ``handle``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlmodel import Session

from citoyen.db import write_session
from citoyen.engine.types import Input, Prompt
from citoyen.messages.types import Inbound, Reply
from citoyen.services.contacts import find_contact
from citoyen.services.sms_replies import QueueSmsReply

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)


def _driver_errors() -> tuple[type[Exception], ...]:
    """The drivers' own operational errors (PEP 249): SQLite's ``BEGIN IMMEDIATE`` is sent from
    an engine event (citoyen.db), where SQLAlchemy does not wrap what the driver raises."""
    errors: list[type[Exception]] = [sqlite3.OperationalError]
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pass
    else:
        errors += [psycopg.OperationalError, psycopg.InterfaceError]
    return tuple(errors)


# What a database that cannot take the message raises; anything else is a bug and stays a 500.
DATABASE_DOWN: tuple[type[Exception], ...] = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.TimeoutError,
    *_driver_errors(),
)
RECEIVED_TEXT = "system.received_later"
RETRY_SECONDS = 1.0
# A live request waits this long for another process's replay before it spools itself.
LOCK_WAIT_SECONDS = 5.0
# Channels whose replies a replay can queue in the outbox (their webhook answers are synchronous).
REPLAYABLE = frozenset({"sms"})


class SpoolFull(Exception):
    """The spool is at its size limit, or the disk refused the record."""


def database_down(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot take a write now (as opposed to a bug)."""
    if isinstance(exc, DATABASE_DOWN):
        return True
    return isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated


@dataclass
class Spool:
    """The spool folder of one instance."""

    folder: Path
    vault: Any
    max_bytes: int

    _counter = itertools.count()

    @property
    def lock_path(self) -> Path:
        return self.folder.parent / "spool.lock"

    def files(self) -> list[Path]:
        """The records, oldest first (their names start with the arrival time in ns)."""
        try:
            names = sorted(e.name for e in os.scandir(self.folder) if e.name.endswith(".json"))
        except FileNotFoundError:
            return []
        return [self.folder / name for name in names]

    def depth(self) -> int:
        return len(self.files())

    def empty(self) -> bool:
        try:
            with os.scandir(self.folder) as entries:
                return not any(e.name.endswith(".json") for e in entries)
        except FileNotFoundError:
            return True

    def size(self) -> int:
        total = 0
        for path in self.files():
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total

    def append(self, inbound: Inbound, received_at: datetime) -> Path:
        """Write one record durably; :class:`SpoolFull` when it cannot."""
        record = {
            "channel": inbound.channel,
            "address_enc": self.vault.encrypt(inbound.address),
            "input": {"kind": inbound.input.kind, "value": inbound.input.value},
            "provider_id": inbound.provider_id,
            "flow_id": inbound.flow_id,
            "received_at": received_at.isoformat(),
        }
        data = orjson.dumps(record)
        if self.size() + len(data) > self.max_bytes:
            raise SpoolFull(f"the spool holds {self.max_bytes} bytes already")
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._counter):06d}.json"
        tmp = self.folder / f".{name}.tmp"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.folder / name)
            _fsync_dir(self.folder)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise SpoolFull(f"the spool cannot be written: {exc.strerror or exc}") from exc
        return self.folder / name

    def read(self, path: Path) -> tuple[Inbound, datetime]:
        record = orjson.loads(path.read_bytes())
        inbound = Inbound(
            channel=record["channel"],
            address=self.vault.decrypt(record["address_enc"]),
            input=Input(record["input"]["kind"], record["input"]["value"]),
            provider_id=record["provider_id"],
            flow_id=record.get("flow_id"),
        )
        return inbound, datetime.fromisoformat(record["received_at"])

    @contextlib.contextmanager
    def locked(self, wait: float) -> Iterator[bool]:
        """The replay lock: yields True when held (waiting up to ``wait`` seconds)."""
        if fcntl is None:  # pragma: no cover - one process at a time assumed
            yield True
            return
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+b") as handle:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.02)
            try:
                yield True
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def spool_of(runtime: Any) -> Spool:
    settings = runtime.settings
    return Spool(settings.instance_dir / "spool", runtime.vault, settings.spool_max_bytes)


# --- the webhook side ------------------------------------------------------------------------


def handle(runtime: Any, inbound: Inbound, now: datetime | None = None) -> Reply:
    """The reply to ``inbound``: handled live, or spooled and acknowledged when the database
    cannot take it (see the module docstring). Raises :class:`SpoolFull` when neither works."""
    now = now or datetime.now(UTC)
    spool = spool_of(runtime)
    if inbound.channel not in REPLAYABLE:
        return runtime.conversations.handle(inbound, now=now)
    if not spool.empty() and not _replay(runtime, spool, LOCK_WAIT_SECONDS):
        return _spooled(runtime, spool, inbound, now)  # still down, or being replayed: keep order
    try:
        return runtime.conversations.handle(inbound, now=now)
    except Exception as exc:
        if not database_down(exc):
            raise
        log.warning(
            "database unavailable (%s): inbound %s spooled", type(exc).__name__, inbound.channel
        )
        return _spooled(runtime, spool, inbound, now)


def _spooled(runtime: Any, spool: Spool, inbound: Inbound, now: datetime) -> Reply:
    spool.append(inbound, now)
    _ensure_retrying(runtime)
    language = _language_if_known(runtime, inbound.address)
    return Reply(
        prompts=[Prompt(kind="message", text=RECEIVED_TEXT, node="spool")],
        language=language,
        status="spooled",
    )


def _language_if_known(runtime: Any, address: str) -> str:
    """The contact's language when the database can still be read, else the default."""
    default = runtime.bundle.settings.languages.default
    try:
        with Session(runtime.engine) as session:
            contact = find_contact(session, runtime.vault, address)
            return (contact.language if contact is not None else None) or default
    except Exception as exc:
        if not database_down(exc):
            raise
        return default


# --- replay ------------------------------------------------------------------------------------


def replay(runtime: Any, wait: float = 0.0) -> int:
    """Replay the spool if this process gets its lock within ``wait`` seconds; how many records
    were replayed. Stops at the first record the database still cannot take."""
    spool = spool_of(runtime)
    if spool.empty():
        return 0
    replayed = 0
    with spool.locked(wait) as held:
        if not held:
            return 0
        for path in spool.files():
            if not path.exists():
                continue
            try:
                _replay_one(runtime, spool, path)
            except Exception as exc:
                if database_down(exc):
                    log.info("spool replay paused: the database is still unavailable")
                    break
                # Kept for the operator (never lost), out of the way of the records after it.
                log.exception("spool record %s cannot be replayed: kept as .failed", path.name)
                path.rename(path.with_suffix(".failed"))
                continue
            path.unlink()
            _fsync_dir(spool.folder)
            replayed += 1
    if replayed:
        log.info("spool: %d inbound message(s) replayed, %d left", replayed, spool.depth())
    return replayed


def _replay_one(runtime: Any, spool: Spool, path: Path) -> None:
    """Hand one record to the conversation service; its reply is queued in the outbox.

    A record the database already holds (its step committed, but the answer to the webhook or
    the removal of the file did not happen) comes back as a duplicate: its stored reply is queued
    again under the same idempotency keys, which queues it only if it was not queued before.
    """
    inbound, received_at = spool.read(path)
    hook = QueueSmsReply(
        runtime.bundle.catalog, f"spool:{inbound.provider_id or path.stem}", received_at
    )
    reply = runtime.conversations.handle(inbound, now=received_at, on_reply=hook)
    if reply.duplicate:
        with write_session(runtime.engine) as session:
            contact = find_contact(session, runtime.vault, inbound.address)
            if contact is not None and contact.id is not None:
                hook(session, reply, contact.id)


def _replay(runtime: Any, spool: Spool, wait: float) -> bool:
    """Replay before a live message; True when the spool is empty afterwards."""
    try:
        replay(runtime, wait)
    except Exception as exc:
        if not database_down(exc):
            raise
    return spool.empty()


_retrying: set[str] = set()
_retrying_lock = threading.Lock()


def _ensure_retrying(runtime: Any) -> None:
    """One thread per process and spool that replays until the spool is empty."""
    key = str(spool_of(runtime).folder)
    with _retrying_lock:
        if key in _retrying:
            return
        _retrying.add(key)

    def run() -> None:
        while True:
            time.sleep(RETRY_SECONDS)
            try:
                replay(runtime, wait=0.0)
            except Exception:
                log.exception("spool replay failed; trying again")
            with _retrying_lock:  # an append after this check starts a new thread
                if spool_of(runtime).empty():
                    _retrying.discard(key)
                    return

    threading.Thread(target=run, name="spool-replay", daemon=True).start()
