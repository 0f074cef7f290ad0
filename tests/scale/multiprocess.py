"""Many processes on one database (SQLite or PostgreSQL), driven by many concurrent
conversations, checked for exactly-once: what bench/exactly_once.py (10,000 conversations, by
hand) and tests/scale/test_exactly_once.py (a hundred, in CI, on both databases) both run.

The deployment is real: ``citoyen db upgrade`` / ``areas seed`` / ``stakeholders sync`` prepare a
fresh database (PostgreSQL, or a SQLite file in the instance folder, as ``citoyen run`` keeps it),
gunicorn serves ``citoyen.web:create_app()`` with several sync workers, and two ``citoyen
worker`` processes schedule and dispatch the outbox. Outbound messages go over real HTTP to local
fakes of Twilio's Messages API, of the Telegram Bot API (tests/channels/telegram/fake_bot_api.py)
and of SMS Gateway for Android's phones (tests/channels/gateway/fake_gateway.py: one phone per
operator, each keeping every message by its id, 409 for an id it has), found through
``CITOYEN_TWILIO_API_URL``, ``CITOYEN_TELEGRAM_API_URL`` and ``CITOYEN_SMS_GATEWAY_PHONES``. Every
message a fake received is matched to the one outbox row that stored its id.

``sms_provider`` is the deployment's ``CITOYEN_SMS_PROVIDER``. With ``android-gateway`` (the
default: a deployment in Mali) conversations are a third each: SMS over Twilio (signed webhooks,
TwiML replies parsed as XML), Telegram (updates with the webhook secret; replies through the
outbox), and SMS through the gateway phones (``sms:received`` events signed as the app signs
them; replies through the outbox, on the phone of the citizen's operator). Every SMS the outbox
sends goes through the phones then, the on-call alerts too (fixed-line numbers, of no operator:
the first phone of ``CITOYEN_SMS_GATEWAY_ORDER``), and Twilio's Messages API must get nothing.
With ``twilio``, conversations are half SMS, half Telegram, and the outbox's SMS go to Twilio.
A third of the conversations are emergencies, which alert the on-call stakeholders. Every webhook
request is delivered 1-3 times at once (threads), the way providers retry, and conversations
advance in random order.

Checks (each violation is a line of text; none is the only passing result): one report per
conversation; each inbound message stored once and answered once; copies of one SMS answered with
the same TwiML; every outbox row sent, and received by its fake provider exactly once; every
alert of an emergency exactly once and none for the others; each Telegram chat got its replies
exactly once; each gateway event answered once (its reply rows numbered from 0), each gateway
citizen got exactly the rows queued for them, once, on the phone of their operator, the last
with their report's reference; no phone asked twice for one id; nothing sent twice after a lease
expired; no phone number or Telegram id in the processes' logs.
"""

from __future__ import annotations

import http.client
import itertools
import json
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from twilio.request_validator import RequestValidator
from werkzeug import Request, Response

from citoyen.channels.android_gateway import gateway_message_id
from citoyen.channels.mali_operators import operator_of
from citoyen.config import GatewayPhone
from citoyen.db import make_engine
from tests.channels.gateway.fake_gateway import SIGNING_KEY, FakeGateway, received, sign
from tests.channels.telegram.conftest import Updates
from tests.channels.telegram.fake_bot_api import TOKEN, FakeBotApi
from tests.channels.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PUBLIC_URL = "https://multiprocess.citoyen.example"
FROM_NUMBER = "+22320200000"
WEBHOOK_SECRET = "multiprocess-webhook-secret"
DATA_KEY = "q3zkx8cQoB9o6c1ZCqbsb9Uu3mC1uHnP0E0y0F4l1yM="
SECRET_KEY = "multiprocess-secret"
MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/[^/]+/Messages\.json$")
DESCRIPTION = "Des hommes armés ont volé des motos près du marché hier soir"
# A report in French: keyword, language, category (theft), region, commune, danger, description,
# anonymous, survey consent. Telegram takes the same answers as buttons.
SMS_STEPS = ["SIGNALER", "1", "2", "1", "1", None, DESCRIPTION, "1", "1"]
TELEGRAM_STEPS = ["/start", "fr", "theft", "ML-BKO", "ML-BKO.commune-iv", None, DESCRIPTION]
TELEGRAM_STEPS += ["yes", "no"]
REFERENCE = re.compile(r"\b\d{3}-\d{4}\b")
GATEWAY = "android-gateway"
GATEWAY_PATH = "/sms-gateway/webhook"
# The gateway phones, one per operator: name, operator, the first digits of its citizens' numbers.
PHONES = (("orange1", "orange", "76"), ("moov1", "moov", "66"), ("telecel1", "telecel", "50"))
GATEWAY_ORDER = "orange,moov,telecel,any"  # the default: alerts to fixed lines go on orange1


# --- the fake providers ------------------------------------------------------------------------


class RecordingBotApi(FakeBotApi):
    """The fake Bot API, also keeping ``(message_id, chat_id, text)`` of every sendMessage."""

    def __init__(self, server: HTTPServer) -> None:
        super().__init__(server)
        self.sent: list[tuple[str, int, str]] = []

    def _result(self, method: str, params: dict[str, Any]) -> Any:
        result = super()._result(method, params)
        if method == "sendMessage":
            self.sent.append((str(result["message_id"]), int(params["chat_id"]), result["text"]))
        return result


@dataclass
class FakeTwilio:
    """Twilio's Messages API: every message kept as ``(sid, To, Body)``."""

    server: HTTPServer
    sent: list[tuple[str, str, str]] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.server.expect_request(MESSAGES_PATH, method="POST").respond_with_handler(self._create)

    def _create(self, request: Request) -> Response:
        form = request.form
        sid = f"SM{next(self._ids):032x}"
        self.sent.append((sid, form["To"], form["Body"]))
        body = {"sid": sid, "account_sid": ACCOUNT_SID, "status": "queued", "to": form["To"]}
        return Response(json.dumps(body), status=201, content_type="application/json")


@dataclass
class Providers:
    server: HTTPServer
    twilio: FakeTwilio
    telegram: RecordingBotApi
    gateway: FakeGateway
    phones: list[GatewayPhone]

    @property
    def root(self) -> str:
        return self.server.url_for("/").rstrip("/")


@contextmanager
def fake_providers() -> Iterator[Providers]:
    """One threaded local server answering as Twilio, as the Telegram Bot API and as the gateway
    phones (the fakes have no pace: a phone sends as fast as it is asked)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = HTTPServer("127.0.0.1", 0, threaded=True)
    server.start()
    server.log = deque(maxlen=100)  # type: ignore[assignment]  # not every request of a long run
    try:
        gateway = FakeGateway(server)
        phones = [gateway.phone(name, operator, per_minute=1e6) for name, operator, _ in PHONES]
        yield Providers(server, FakeTwilio(server), RecordingBotApi(server), gateway, phones)
    finally:
        server.clear()
        server.stop()


# --- the deployment ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sqlite_url(instance: Path) -> str:
    """The SQLite database of a one-machine deployment: a file in its instance folder."""
    return f"sqlite:///{(instance / 'citoyen.db').resolve()}"


def service_env(
    url: str, instance: Path, providers: Providers, sms_provider: str
) -> dict[str, str]:
    """What every process of the deployment is configured with (environment, as in production)."""
    env = dict(os.environ)
    env.update(
        CITOYEN_DATABASE_URL=url,
        CITOYEN_INSTANCE_DIR=str(instance),
        CITOYEN_PUBLIC_URL=PUBLIC_URL,
        CITOYEN_FLOWS_DIR=str(ROOT / "flows"),
        CITOYEN_LOCALES_DIR=str(ROOT / "locales"),
        CITOYEN_DATA_KEY=DATA_KEY,
        CITOYEN_SECRET_KEY=SECRET_KEY,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_FROM_NUMBER=FROM_NUMBER,
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET,
        CITOYEN_TWILIO_API_URL=providers.root,
        CITOYEN_TELEGRAM_API_URL=providers.root,
        # The fakes have no pace: lift the provider limits (the same for every dispatcher).
        CITOYEN_OUTBOX_RATE_SMS="1000",
        CITOYEN_OUTBOX_RATE_TELEGRAM="1000",
        CITOYEN_OUTBOX_RATE_TELEGRAM_CHAT="1000",
        # One sender's 9 messages, each delivered up to 3 times, are not a flood.
        CITOYEN_INBOUND_LIMIT="1000",
        CITOYEN_SMS_PROVIDER=sms_provider,
        CITOYEN_SMS_GATEWAY_PHONES=json.dumps(
            [p.model_dump(mode="json") for p in providers.phones]
        ),
        CITOYEN_SMS_GATEWAY_ORDER=GATEWAY_ORDER,
        CITOYEN_SMS_GATEWAY_SIGNING_KEY=SIGNING_KEY,
    )
    return env


@dataclass
class Deployment:
    port: int
    logs: list[Path]
    procs: list[subprocess.Popen[bytes]]


@contextmanager
def deployment(
    url: str,
    instance: Path,
    providers: Providers,
    *,
    web_workers: int,
    workers: int = 2,
    sms_provider: str = GATEWAY,
) -> Iterator[Deployment]:
    """Migrate with ``citoyen db upgrade``, seed, then run gunicorn and ``workers`` x ``citoyen
    worker``; every process is stopped (SIGTERM, then SIGKILL) afterwards, whatever happens."""
    env = service_env(url, instance, providers, sms_provider)
    citoyen = str(BIN / "citoyen")
    subprocess.run([citoyen, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
    seed(url, instance)
    port = free_port()
    commands = [
        [
            str(BIN / "gunicorn"),
            "--workers",
            str(web_workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "citoyen.web:create_app()",
        ]
    ] + [[citoyen, "worker"]] * workers
    names = ["gunicorn"] + [f"worker{n + 1}" for n in range(workers)]
    logs = [instance / f"{name}.log" for name in names]
    procs: list[subprocess.Popen[bytes]] = []
    with ExitStack() as stack:
        for command, log in zip(commands, logs, strict=True):
            out = stack.enter_context(open(log, "wb"))
            procs.append(
                subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
            )
        try:
            wait_for_health(port, procs[0], logs[0])
            yield Deployment(port, logs, procs)
        finally:
            stop(procs)


def seed(url: str, instance: Path) -> None:
    """The shipped areas and stakeholders (on-call addresses encrypted with the deployment's key),
    as a first start does; in this process, which saves two command starts."""
    from citoyen.config import Settings
    from citoyen.runtime import Runtime
    from citoyen.services.setup import ensure_ready

    settings = Settings(
        database_url=url,
        instance_dir=instance,
        flows_dir=ROOT / "flows",
        locales_dir=ROOT / "locales",
        data_key=DATA_KEY,
        secret_key=SECRET_KEY,
    )
    runtime = Runtime(settings)
    try:
        ensure_ready(runtime)
    finally:
        runtime.engine.dispose()


def wait_for_health(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"gunicorn did not answer /healthz; see {log}")


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- conversations -----------------------------------------------------------------------------


@dataclass
class Conversation:
    """One citizen walking a whole report; ``step`` is the next webhook to deliver."""

    index: int
    channel: str  # sms (Twilio) | telegram | gateway (SMS through the gateway phones)
    emergency: bool
    step: int = 0
    reference: str | None = None

    @property
    def answers(self) -> list[str]:
        steps = TELEGRAM_STEPS if self.channel == "telegram" else SMS_STEPS
        yes, no = ("yes", "no") if self.channel == "telegram" else ("1", "2")
        danger = yes if self.emergency else no
        return [danger if s is None else s for s in steps]

    @property
    def done(self) -> bool:
        return self.step >= len(self.answers)

    @property
    def phone(self) -> str:
        if self.channel == "gateway":  # the operators in turn: 76 Orange, 66 Moov, 50 Telecel
            return f"+223{PHONES[self.index // 3 % len(PHONES)][2]}{self.index:06d}"
        return f"+2237{self.index:07d}"

    @property
    def user_id(self) -> int:
        return 810_000_000 + self.index

    @property
    def device_id(self) -> str:
        """The gateway phone the citizen texts: their own operator's."""
        return f"device-{PHONES[self.index // 3 % len(PHONES)][0]}"

    def event_id(self, step: int) -> str:
        """The id the gateway app gives the ``sms:received`` event of ``step`` (kept across its
        retries)."""
        return f"ev{self.index:07d}s{step:02d}"

    def event_key(self, step: int) -> str:
        """The event's dedupe key, also the prefix of its reply rows' keys (web/sms_gateway.py)."""
        return f"agw:{self.device_id}:{self.event_id(step)}"


def conversations(count: int, seed: int, sms_provider: str = GATEWAY) -> list[Conversation]:
    """A third each over Twilio SMS, Telegram and the gateway phones (half over SMS, half over
    Telegram with Twilio as the SMS provider); a third are emergencies."""
    rng = random.Random(seed)
    kinds = ("telegram", "sms", "gateway") if sms_provider == GATEWAY else ("telegram", "sms")
    return [Conversation(i, kinds[i % len(kinds)], rng.random() < 1 / 3) for i in range(count)]


@dataclass
class Webhook:
    """One webhook request: what to POST, and the identity of the inbound message it carries."""

    path: str
    body: bytes
    headers: dict[str, str]
    identity: str


def next_request(conv: Conversation, validator: RequestValidator) -> Webhook:
    text = conv.answers[conv.step]
    if conv.channel == "sms":
        params = {
            "MessageSid": f"SM{conv.index:016x}{conv.step:016x}",
            "AccountSid": ACCOUNT_SID,
            "From": conv.phone,
            "To": FROM_NUMBER,
            "Body": text,
            "NumMedia": "0",
        }
        signature = validator.compute_signature(PUBLIC_URL + "/twilio/sms", params)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        }
        body = urllib.parse.urlencode(params).encode()
        return Webhook("/twilio/sms", body, headers, params["MessageSid"])
    if conv.channel == "gateway":
        data = received(conv.phone, text, conv.event_id(conv.step), conv.device_id)
        body = json.dumps(data).encode()
        headers = {"Content-Type": "application/json", **sign(body)}
        return Webhook(GATEWAY_PATH, body, headers, data["id"])
    updates = Updates(conv.user_id)
    if text.startswith("/"):
        update = updates.command(text)
    elif conv.step == TELEGRAM_STEPS.index(DESCRIPTION):
        update = updates.text(text)
    else:
        update = updates.button(text)
    headers = {
        "Content-Type": "application/json",
        "X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET,
    }
    return Webhook(
        "/telegram/webhook", json.dumps(update).encode(), headers, str(update["update_id"])
    )


def post(port: int, request: Webhook) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", request.path, body=request.body, headers=request.headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def twiml_texts(body: bytes) -> list[str]:
    root = ET.fromstring(body)
    if root.tag != "Response" or any(child.tag != "Message" for child in root):
        raise ValueError("not a TwiML reply of <Message>s")
    return [child.text or "" for child in root]


@dataclass
class Drive:
    """What the drive did and saw."""

    requests: int = 0  # distinct webhook requests
    deliveries: int = 0  # including the copies
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(text)


def drive(
    port: int,
    convs: list[Conversation],
    *,
    threads: int,
    seed: int,
    in_flight: int = 4,
    progress: Callable[[int], None] | None = None,
) -> Drive:
    """Walk every conversation: ``threads`` drivers each advance a random one of their
    ``in_flight`` conversations by one webhook, delivered 1-3 times at once."""
    result = Drive()
    pending = iter(convs)
    take = threading.Lock()
    copies_pool = ThreadPoolExecutor(max_workers=threads * 3, thread_name_prefix="copy")

    def deliver(conv: Conversation, rng: random.Random, validator: RequestValidator) -> None:
        request = next_request(conv, validator)
        copies = rng.randint(1, 3)
        answers = list(copies_pool.map(lambda _: post(port, request), range(copies)))
        with result.lock:
            result.requests += 1
            result.deliveries += copies
        bad = [status for status, _ in answers if status != 200]
        if bad:
            result.violation(f"{conv.channel} {request.identity}: HTTP {bad}")
        elif conv.channel == "sms":
            if len({body for _, body in answers}) != 1:
                result.violation(f"sms {request.identity}: copies answered differently")
            texts = twiml_texts(answers[0][1])
            if not texts:
                result.violation(f"sms {request.identity}: no reply")
            if conv.step == len(conv.answers) - 1:
                found = REFERENCE.search(" ".join(texts))
                conv.reference = found.group(0) if found else None
        elif conv.channel == "gateway" and any(body for _, body in answers):
            result.violation(f"gateway {request.identity}: a reply in the webhook's answer")
        conv.step += 1
        if progress is not None:
            progress(1)

    def driver(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        validator = RequestValidator(AUTH_TOKEN)
        mine: list[Conversation] = []
        while True:
            while len(mine) < in_flight:
                with take:
                    conv = next(pending, None)
                if conv is None:
                    break
                mine.append(conv)
            if not mine:
                return
            conv = rng.choice(mine)
            try:
                deliver(conv, rng, validator)
            except Exception as exc:  # a driver error is a violation too, never a hang
                result.violation(f"{conv.channel} conversation {conv.index}: {exc!r}")
                conv.step = len(conv.answers)
            if conv.done:
                mine.remove(conv)

    started = time.perf_counter()
    workers = [threading.Thread(target=driver, args=(n,), daemon=True) for n in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    copies_pool.shutdown()
    result.seconds = time.perf_counter() - started
    return result


def total_requests(convs: list[Conversation]) -> int:
    return sum(len(c.answers) for c in convs)


# --- draining and checking ---------------------------------------------------------------------


def drain(engine: sa.Engine, timeout: float, progress: Callable[[int], None] | None = None) -> int:
    """Wait until the workers have sent every outbox row; the rows still unsent at the end."""
    deadline = time.monotonic() + timeout
    left = -1
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            left = conn.execute(
                sa.text("SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')")
            ).scalar_one()
        if progress is not None:
            progress(left)
        if left == 0:
            return 0
        time.sleep(1)
    return left


def check(
    engine: sa.Engine,
    convs: list[Conversation],
    providers: Providers,
    logs: list[Path],
    sms_provider: str = GATEWAY,
) -> tuple[list[str], dict[str, Any]]:
    """Every exactly-once property, as violations (text) and a summary of what was counted."""
    violations: list[str] = []
    q = _Query(engine)
    n = len(convs)
    emergencies = sum(c.emergency for c in convs)
    sms_convs = [c for c in convs if c.channel == "sms"]
    tg_convs = [c for c in convs if c.channel == "telegram"]
    gw_convs = [c for c in convs if c.channel == "gateway"]

    # One report per conversation, each of its own contact; the emergencies as such.
    reports = q.scalar("SELECT count(*) FROM reports")
    if reports != n:
        violations.append(f"{reports} reports for {n} conversations")
    doubles = q.rows("SELECT contact_id FROM reports GROUP BY contact_id HAVING count(*) > 1")
    if doubles:
        violations.append(f"{len(doubles)} contacts with more than one report")
    urgent = q.scalar("SELECT count(*) FROM reports WHERE urgency = 'emergency'")
    if urgent != emergencies:
        violations.append(f"{urgent} emergency reports, {emergencies} emergencies reported")
    urgency = dict(q.rows("SELECT reference, urgency FROM reports"))
    missing = [c.index for c in sms_convs if c.reference not in urgency]
    if missing:
        violations.append(f"{len(missing)} SMS conversations ended without their reference")

    # Each inbound message stored once, each answered once.
    steps = total_requests(convs)
    inbound = q.scalar("SELECT count(*) FROM messages WHERE direction = 'in'")
    if inbound != steps:
        violations.append(f"{inbound} inbound messages stored for {steps} distinct webhooks")
    gw_inbound = q.scalar(
        "SELECT count(*) FROM messages WHERE direction = 'in' AND provider_id LIKE 'agw:%'"
    )
    if gw_inbound != total_requests(gw_convs):
        violations.append(
            f"{gw_inbound} gateway messages stored for {total_requests(gw_convs)} distinct events"
        )
    outbound = q.scalar("SELECT count(*) FROM messages WHERE direction = 'out'")
    if outbound != steps:
        violations.append(f"{outbound} replies stored for {steps} inbound messages")

    # Every outbox row sent; every provider message matched to exactly one row.
    statuses = dict(q.rows("SELECT status, count(*) FROM outbox GROUP BY status"))
    if set(statuses) - {"sent"}:
        violations.append(f"outbox rows not sent: {statuses}")
    phone_sent = providers.gateway.all()
    sms_received = (
        [(m["id"], m["textMessage"]["text"]) for _, m in phone_sent]
        if sms_provider == GATEWAY
        else [(sid, body) for sid, _, body in providers.twilio.sent]
    )
    for channel, received_ in (
        ("sms", sms_received),
        ("telegram", [(mid, text) for mid, _, text in providers.telegram.sent]),
    ):
        rows = dict(q.rows("SELECT provider_id, body FROM outbox WHERE channel = :c", c=channel))
        counted = Counter(pid for pid, _ in received_)
        if len(received_) != len(rows):
            violations.append(
                f"{channel}: the provider received {len(received_)} messages for {len(rows)} rows"
            )
        unmatched = [pid for pid in counted if pid not in rows]
        if unmatched:
            violations.append(f"{channel}: {len(unmatched)} messages sent with no row (twice?)")
        if any(c > 1 for c in counted.values()):
            violations.append(f"{channel}: a provider id received twice")
        if [pid for pid, body in received_ if pid in rows and rows[pid] != body.strip()]:
            violations.append(f"{channel}: a message differs from its outbox row")
        if None in rows:
            violations.append(f"{channel}: a row without a provider id")
    if sms_provider == GATEWAY:
        violations += check_gateway(q, gw_convs, providers, urgency)
    elif phone_sent:
        violations.append(f"the gateway phones got {len(phone_sent)} SMS; Twilio sends them")

    # Replies through the outbox: each Telegram chat got one per update it sent; SMS replies
    # are queued only for the gateway's events (Twilio's travel in the TwiML).
    per_chat = Counter(chat for _, chat, _ in providers.telegram.sent)
    short = [c.index for c in tg_convs if per_chat[c.user_id] != len(c.answers)]
    if short:
        violations.append(f"{len(short)} Telegram chats did not get exactly one reply per update")
    replies = dict(
        q.rows("SELECT channel, count(*) FROM outbox WHERE kind = 'reply' GROUP BY channel")
    )
    if replies.get("telegram", 0) != sum(len(c.answers) for c in tg_convs):
        violations.append(f"{replies.get('telegram', 0)} Telegram reply rows")
    if not gw_convs and replies.get("sms"):
        violations.append(f"{replies['sms']} SMS reply rows without gateway conversations")

    # Notifications a report causes: the on-call alert of an emergency, the same number for
    # each (one per on-call address), none for the others; an escalation (a queue entry left
    # unacknowledged past its deadline: long runs have them) alerts once per escalated entry.
    # Counted here rather than in SQL: the JSON operators differ between the databases.
    alerts: Counter[tuple[str, str]] = Counter()
    for (payload,) in q.rows("SELECT payload FROM outbox WHERE kind = 'alert'"):
        data = _json(payload)
        if data.get("report") in urgency:
            alerts[(data["report"], str(data.get("purpose")))] += 1
    per_emergency = Counter(
        count for (_, purpose), count in alerts.items() if purpose.split(":")[0] == "emergency"
    )
    if emergencies and (len(per_emergency) != 1 or per_emergency.total() != emergencies):
        violations.append(f"emergency alerts per emergency report: {dict(per_emergency)}")
    if [
        ref
        for ref, purpose in alerts
        if purpose.split(":")[0] == "emergency" and urgency[ref] != "emergency"
    ]:
        violations.append("emergency alerts for reports that are not emergencies")
    per_escalation = Counter(
        count for (_, purpose), count in alerts.items() if purpose.split(":")[0] == "escalated"
    )
    if len(per_escalation) > 1:
        violations.append(f"alerts per escalation: {dict(per_escalation)}")
    notes = Counter(
        (data.get("report"), contact, data.get("status"))
        for payload, contact in q.rows(
            "SELECT payload, contact_id FROM outbox WHERE kind = 'notification'"
        )
        for data in [_json(payload)]
    )
    noted = [key for key, count in notes.items() if count > 1]
    if noted:
        violations.append(f"{len(noted)} notifications queued twice")

    # The logs: nothing sent again after a lease, no identifier in clear.
    text = "\n".join(p.read_text(errors="replace") for p in logs)
    for phrase in ("lease expired while sending", "lease lost"):
        if phrase in text:
            violations.append(f"the workers' logs say {phrase!r}")
    # Every worker dispatches, leader or standby: each sent a share.
    idle = [
        p.stem
        for p in logs
        if p.stem.startswith("worker") and "outbox dispatch:" not in (p.read_text(errors="replace"))
    ]
    if idle:
        violations.append(f"workers that sent nothing: {idle}")
    identifiers = {c.phone for c in sms_convs + gw_convs} | {str(c.user_id) for c in tg_convs}
    leaked = {m for m in re.findall(r"\+?\d{9,}", text) if m in identifiers}
    if leaked:
        violations.append(f"{len(leaked)} phone numbers or Telegram ids in the processes' logs")
    errors = text.count("Traceback")

    summary = {
        "conversations": n,
        "sms": len(sms_convs),
        "telegram": len(tg_convs),
        "gateway": len(gw_convs),
        "emergencies": emergencies,
        "reports": reports,
        "inbound messages": inbound,
        "outbox rows": sum(statuses.values()),
        "sms received by the fake Twilio": len(providers.twilio.sent),
        "sms received by the gateway phones": {
            name: len(sent) for name, sent in providers.gateway.sent.items()
        },
        "telegram messages received by the fake Bot API": len(providers.telegram.sent),
        "alerts per emergency report": sorted(per_emergency),
        "escalations alerted (entries left unacknowledged)": per_escalation.total(),
        "tracebacks in the logs": errors,
    }
    return violations, summary


def phone_for(number: str) -> str:
    """The phone that must send to ``number``: its operator's, else the first of the order."""
    operators = [operator_of(number), *GATEWAY_ORDER.split(",")]
    return next(name for op in operators for name, operator, _ in PHONES if operator == op)


def check_gateway(
    q: _Query, convs: list[Conversation], providers: Providers, urgency: dict[str, str]
) -> list[str]:
    """The gateway's own properties: every SMS row's id derived from its key and sent on the
    right phone, never asked twice; each event answered once; each citizen's messages exactly
    the rows queued for them; the last reply with the report's reference."""
    violations: list[str] = []
    rows = q.rows(
        "SELECT idempotency_key, provider_id, body, contact_id, kind FROM outbox "
        "WHERE channel = 'sms'"
    )
    if [key for key, pid, *_ in rows if pid is not None and pid != gateway_message_id(key)]:
        violations.append("gateway: a row's message id is not derived from its key")
    resent = providers.gateway.resent
    if resent:
        violations.append(
            f"gateway: {len(resent)} messages asked of a phone again ({resent.total()} 409s)"
        )
    elsewhere = [
        m["id"] for name, m in providers.gateway.all() if name != phone_for(m["phoneNumbers"][0])
    ]
    if elsewhere:
        violations.append(f"gateway: {len(elsewhere)} SMS sent on another phone than the due one")

    # Each event's reply rows are <event key>:0..k-1, k >= 1 (the key is agw:<device>:<id>; the
    # driver's ids have no colon); none for an event never sent.
    parts: dict[str, list[tuple[int, str, int | None]]] = defaultdict(list)
    for key, _, body, contact, kind in rows:
        if kind == "reply":
            fields = key.split(":")
            parts[":".join(fields[:3])].append((int(fields[-1]), body or "", contact))
    events = {c.event_key(step) for c in convs for step in range(len(c.answers))}
    stray = set(parts) - events
    if stray:
        violations.append(f"gateway: reply rows for {len(stray)} events never sent (copies?)")
    unanswered = events - set(parts)
    if unanswered:
        violations.append(f"gateway: {len(unanswered)} events without a reply row")
    twice = [e for e, ps in parts.items() if sorted(n for n, *_ in ps) != list(range(len(ps)))]
    if twice:
        violations.append(
            f"gateway: {len(twice)} events answered twice or in part (rows not numbered 0..n-1)"
        )

    # Each citizen: one contact, whose SMS rows (replies, and notifications if any) are exactly
    # what the phones sent to the number, once each; the last reply gives the reference.
    for_contact: dict[int | None, set[str]] = defaultdict(set)
    for _, pid, _, contact, _ in rows:
        for_contact[contact].add(pid)
    to_number: dict[str, Counter[str]] = defaultdict(Counter)
    for _, m in providers.gateway.all():
        for number in m["phoneNumbers"]:
            to_number[number][m["id"]] += 1
    contacts_wrong = replies_wrong = no_reference = 0
    for conv in convs:
        keys = [conv.event_key(step) for step in range(len(conv.answers))]
        contacts = {contact for key in keys for *_, contact in parts.get(key, [])}
        if len(contacts) != 1:
            contacts_wrong += 1
            continue
        got = to_number[conv.phone]
        if set(got) != for_contact[contacts.pop()] or any(c > 1 for c in got.values()):
            replies_wrong += 1
        last = " ".join(body for _, body, _ in sorted(parts.get(keys[-1], [])))
        found = REFERENCE.search(last)
        if found is None or found.group(0) not in urgency:
            no_reference += 1
    if contacts_wrong:
        violations.append(f"gateway: {contacts_wrong} conversations not of exactly one contact")
    if replies_wrong:
        violations.append(f"gateway: {replies_wrong} citizens did not get their SMS exactly once")
    if no_reference:
        violations.append(f"gateway: {no_reference} conversations ended without their reference")
    return violations


def _json(value: Any) -> dict[str, Any]:
    """A JSON column as read by a plain SELECT: text on SQLite, decoded by psycopg."""
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


class _Query:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql), params)]

    def column(self, sql: str) -> list[Any]:
        return [r[0] for r in self.rows(sql)]

    def scalar(self, sql: str) -> Any:
        return self.rows(sql)[0][0]


# --- the whole run -----------------------------------------------------------------------------


@dataclass
class Outcome:
    violations: list[str]
    summary: dict[str, Any]


def run(
    url: str,
    instance: Path,
    *,
    conversations_count: int,
    threads: int,
    web_workers: int,
    seed: int = 8,
    sms_provider: str = GATEWAY,
    drain_timeout: float = 600.0,
    on_drive: Callable[[int], None] | None = None,
    on_drain: Callable[[int], None] | None = None,
) -> Outcome:
    """Deploy on the empty database ``url`` (PostgreSQL; or SQLite, :func:`sqlite_url` of the
    instance folder, made by the deployment's ``citoyen db upgrade``), drive, drain, check."""
    convs = conversations(conversations_count, seed, sms_provider)
    instance.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)  # the deployment's settings (on SQLite: WAL, the busy timeout)
    try:
        with fake_providers() as providers:
            started = time.perf_counter()
            with deployment(
                url, instance, providers, web_workers=web_workers, sms_provider=sms_provider
            ) as running:
                up = time.perf_counter() - started
                done = drive(running.port, convs, threads=threads, seed=seed, progress=on_drive)
                started = time.perf_counter()
                left = drain(engine, drain_timeout, on_drain)
                drained = time.perf_counter() - started
                time.sleep(2)  # anything a worker still had in hand shows up now
                started = time.perf_counter()
            stopped = time.perf_counter() - started
            # The processes are stopped: their logs are complete.
            started = time.perf_counter()
            violations, summary = check(engine, convs, providers, running.logs, sms_provider)
            checked = time.perf_counter() - started
    finally:
        engine.dispose()
    violations = done.violations + violations
    if left:
        violations.append(f"{left} outbox rows still unsent after {drain_timeout:.0f} s")
    summary = {
        "database": engine.dialect.name,
        "sms provider": sms_provider,
        "seconds to migrate and start the processes": round(up, 1),
        "drive seconds": round(done.seconds, 1),
        "webhook requests": done.requests,
        "deliveries (with copies)": done.deliveries,
        "duplicate deliveries": done.deliveries - done.requests,
        "requests per second": round(done.deliveries / done.seconds, 1),
        "drain seconds after the drive": round(drained, 1),
        "seconds to stop the processes": round(stopped, 1),
        "seconds to check": round(checked, 1),
        **summary,
        "violations": len(violations),
    }
    return Outcome(violations, summary)
