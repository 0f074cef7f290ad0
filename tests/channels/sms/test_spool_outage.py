"""The database goes away while citizens are texting: nothing is lost, every webhook gets a 2xx,
and every conversation carries on once it is back (services/spool.py, docs/outbox.md).

PostgreSQL: the app reaches the server through a TCP proxy that the test cuts (every connection
closed, new ones refused) and restores; the shared server itself is never touched. SQLite: the
database is made read-only (``PRAGMA query_only`` on every connection the app takes), which
fails writes as a read-only file or a full disk does while reads still work.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from citoyen.channels.base import OutboundMessage, SendResult
from citoyen.engine.types import Input
from citoyen.messages.types import Inbound
from citoyen.models import Message, Outbox
from citoyen.services import spool
from citoyen.services.dispatch import Dispatcher
from citoyen.services.setup import ensure_ready
from citoyen.web import create_app
from tests.channels.sms.conftest import Phone, twiml_messages

SCRIPT = ["Bonjour", "1", "1", "2", "1"]
LIVE_BEFORE = 1  # then messages 2-3 arrive during the outage, 4-5 after it
DURING = 2
PHONES = ["+22376110001", "+22376110002", "+22376110003"]
CONTROL = "+22376119999"


class TcpProxy:
    """127.0.0.1:<port> -> upstream, with a switch: ``cut()`` closes every connection and
    refuses new ones until ``restore()``."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(self.upstream)
            with self.lock:
                self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


class Outage:
    """Takes the app's database away and gives it back (see the module docstring)."""

    def __init__(self, engine: sa.Engine, proxy: TcpProxy | None) -> None:
        self.engine = engine
        self.proxy = proxy
        self.down = False
        if proxy is None:
            sa.event.listen(engine, "checkout", self._pragma)

    def _pragma(self, dbapi_connection, _record, _proxy) -> None:
        dbapi_connection.execute(f"PRAGMA query_only = {int(self.down)}")

    def start(self) -> None:
        self.down = True
        if self.proxy is not None:
            self.proxy.cut()

    def end(self) -> None:
        self.down = False
        if self.proxy is not None:
            self.proxy.restore()


@pytest.fixture
def proxy(db_url: str):
    if not db_url.startswith("postgresql"):
        yield None
        return
    url = make_url(db_url)
    tcp = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    yield tcp
    tcp.close()


@pytest.fixture
def app(sms_settings, proxy):
    settings = sms_settings
    if proxy is not None:
        url = make_url(sms_settings.database_url).set(host="127.0.0.1", port=proxy.port)
        settings = sms_settings.model_copy(
            update={"database_url": url.render_as_string(hide_password=False)}
        )
    app = create_app({"TESTING": True, "SETTINGS": settings})
    ensure_ready(app.extensions["citoyen"])
    return app


class RecordingSender:
    channel = "sms"

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    def send(self, message: OutboundMessage) -> SendResult:
        self.sent.append(message)
        return SendResult(provider_id=f"SMout{message.outbox_id}")


def _sid(number: str, n: int) -> str:
    return f"SM{number[-6:]}{n:026d}"


def test_nothing_is_lost_while_the_database_is_away(app, runtime, client, proxy) -> None:
    outage = Outage(runtime.engine, proxy)
    control = Phone(client, CONTROL)
    expected = [control.say(body) for body in SCRIPT]  # the conversation without an outage

    phones = [Phone(client, number) for number in PHONES]
    answers: dict[str, list[list[str]]] = {number: [] for number in PHONES}
    for step in range(len(SCRIPT)):
        if step == LIVE_BEFORE:
            outage.start()
            assert client.get("/healthz").status_code == 503
        if step == LIVE_BEFORE + DURING:
            outage.end()
        for phone in phones:
            response = phone.text(SCRIPT[step])
            assert response.status_code == 200, response.get_data(as_text=True)
            answers[phone.number].append(twiml_messages(response))
        if step == LIVE_BEFORE + DURING - 1:
            # Still away: every message is in the spool, and health says so.
            assert spool.spool_of(runtime).depth() == len(PHONES) * DURING
            health = client.get("/healthz")
            assert health.status_code == 503
            assert health.get_json()["spool_depth"] == len(PHONES) * DURING

    received = runtime.bundle.catalog.render(spool.RECEIVED_TEXT, "fr", {})
    for number in PHONES:
        got = answers[number]
        outage_steps = range(LIVE_BEFORE, LIVE_BEFORE + DURING)
        assert [got[i] for i in outage_steps] == [[received]] * DURING
        # Live before and after: exactly the control's conversation (it carried on).
        live = [i for i in range(len(SCRIPT)) if i not in outage_steps]
        assert [got[i] for i in live] == [expected[i] for i in live]

    assert spool.spool_of(runtime).empty()  # replayed before the first live message after
    assert client.get("/healthz").status_code == 200

    with Session(runtime.engine) as session:
        inbound = session.exec(select(Message.provider_id).where(Message.direction == "in")).all()
        queued = session.exec(select(Outbox).where(Outbox.idempotency_key.like("spool:%"))).all()
    counts = Counter(inbound)
    for number in PHONES:
        for n in range(1, len(SCRIPT) + 1):
            assert counts[_sid(number, n)] == 1, (number, n)  # none lost, none twice

    # The replies to the spooled messages went to the outbox: the control's, once each.
    by_key = {row.idempotency_key: row.body for row in queued}
    for number in PHONES:
        for step in range(LIVE_BEFORE, LIVE_BEFORE + DURING):
            sid = _sid(number, step + 1)
            bodies = [by_key[k] for k in sorted(by_key) if k.startswith(f"spool:{sid}:")]
            assert bodies == expected[step], (number, step)
    sender = RecordingSender()
    dispatcher = Dispatcher(runtime, {"sms": sender}, channel_limits={})  # no pacing needed
    dispatcher.run_once(limit=1000)
    dispatcher.run_once(limit=1000)
    dispatcher.close()
    assert Counter(m.outbox_id for m in sender.sent) == Counter({row.id: 1 for row in queued})


def test_a_spool_replayed_twice_queues_each_reply_once(app, runtime, client) -> None:
    """Two replays at once (two web workers, or the worker) take turns on the lock: each record
    is handled once; a record replayed again after its step committed queues nothing new."""
    phone = Phone(client, PHONES[0])
    phone.say("Bonjour")
    box = spool.spool_of(runtime)

    inbound = Inbound("sms", "tel:" + PHONES[0], Input("text", "1"), provider_id=_sid(PHONES[0], 2))
    path = box.append(inbound, received_at=datetime.now(UTC))
    copy = path.read_bytes()
    threads = [threading.Thread(target=spool.replay, args=(runtime, 5.0)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert box.empty()
    # A crash after the commit, before the file was removed: the record is replayed again.
    path.write_bytes(copy)
    assert spool.replay(runtime) == 1
    with Session(runtime.engine) as session:
        rows = session.exec(select(Outbox).where(Outbox.idempotency_key.like("spool:%"))).all()
        stored = session.exec(
            select(Message).where(Message.provider_id == _sid(PHONES[0], 2))
        ).all()
    assert len(stored) == 1
    assert len(rows) == len({r.idempotency_key for r in rows}) >= 1
    keys = sorted(r.idempotency_key for r in rows)
    assert keys == [f"spool:{_sid(PHONES[0], 2)}:{i}" for i in range(len(rows))]


def test_a_full_spool_answers_503(app, runtime, client, proxy, monkeypatch) -> None:
    """Database down and the spool refusing too (at its size limit, or its disk full): a 503,
    so that Twilio calls the fallback URL; nothing is pretended received."""
    outage = Outage(runtime.engine, proxy)

    def full(self, inbound, received_at):
        raise spool.SpoolFull("the spool holds 10000 bytes already")

    monkeypatch.setattr(spool.Spool, "append", full)
    outage.start()
    try:
        response = Phone(client, PHONES[0]).text("Bonjour")
    finally:
        outage.end()
    assert response.status_code == 503
    with Session(runtime.engine) as session:
        assert session.exec(select(Message)).all() == []
