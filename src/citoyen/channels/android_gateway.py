"""Outbound SMS through local SIMs: Android phones running SMS Gateway for Android.

Twilio gives no two-way SMS with Malian numbers, so a deployment in Mali sends from phones with
Malian SIMs, one per operator (``CITOYEN_SMS_GATEWAY_PHONES``). Each phone runs SMS Gateway for
Android (capcom6/android-sms-gateway) and is reached through the project's own Python client
(``android_sms_gateway.APIClient``), in local-server mode (the phone's address) or through the
project's cloud or a private server (their ``/3rdparty/v1`` URL).

Which phone sends a message: the recipient's operator's (on-net SMS cost less and arrive more
surely; :func:`citoyen.channels.mali_operators.operator_of`), then the phones of the operators
in ``CITOYEN_SMS_GATEWAY_ORDER``, then any other. A phone is skipped while it is **down** or
**busy**:

- *down*: it did not answer (connection refused, timeout, 5xx, refused credentials). It is left
  alone for a minute, then two, four... up to fifteen, and tried again after that; every change
  is written to the ``gateway_phones`` table, which the admin's outbox monitor shows.
- *busy*: its own rate (``per_minute``; Android itself limits how many SMS an app may send)
  has no token left. The message goes to the next phone with one rather than waiting.

When no phone can take the message now, the sender waits up to :data:`MAX_WAIT_SECONDS` for a
busy phone, else raises :class:`TransientSendError` (``retry_after`` says when a phone will be
free): the outbox row stays pending and is tried again. Nothing is dropped.

Exactly once per phone: the gateway message id is derived from the outbox row's idempotency key,
and the app refuses a second message with the same id (409), which is taken as "already
accepted". A retry after a lost answer therefore does not send twice on the same phone. The id
is also the row's ``provider_id``, so the phone's ``sms:sent`` / ``sms:delivered`` /
``sms:failed`` webhooks find the row (services/gateway_inbound.py).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import requests

from citoyen.channels.base import (
    OutboundMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)
from citoyen.channels.mali_operators import operator_of
from citoyen.channels.sms import SmsSender, scrub_numbers
from citoyen.config import GatewayPhone

if TYPE_CHECKING:
    from android_sms_gateway import APIClient

# The gateway's client is imported where it is used: it brings aiohttp and its async client
# (about 19 MB), which the web workers, who only read the phones' webhooks, never need.

log = logging.getLogger(__name__)

# A phone's answer is awaited this long (phones are on the deployment's own network and answer
# within a second when they are up).
GATEWAY_TIMEOUT_SECONDS = 8.0
# One send tries no further phone once this much time has gone: the dispatcher starts a send only
# with 30 s of its lease left (dispatch.py), so a send must end within that.
SEND_BUDGET_SECONDS = 25.0
# A phone that did not answer is left alone this long, doubling per failure up to the maximum.
DOWN_FIRST_SECONDS = 60.0
DOWN_MAX_SECONDS = 900.0
# When every phone is busy, a send waits this long at most for a token before giving the row back.
MAX_WAIT_SECONDS = 5.0
# A phone that keeps sending has its "last answered" time written at most this often.
HEALTH_WRITE_SECONDS = 30.0
# Statuses that mean the phone (or the way to it) is not answering, not that the message is bad.
PHONE_TROUBLE_STATUSES = frozenset({401, 403, 404, 408, 429})


def gateway_message_id(idempotency_key: str) -> str:
    """The gateway message id of an outbox row: the same for every attempt of that row, so the
    app's duplicate check (409) keeps a retried row from being sent twice by one phone."""
    return "c" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:31]


class PhoneHealth(Protocol):
    """Where a phone's state changes are recorded for staff (the ``gateway_phones`` table)."""

    def record(self, phone: PhoneStatus) -> None: ...


@dataclass(frozen=True)
class PhoneStatus:
    name: str
    operator: str
    state: str  # up | down
    failures: int
    at: datetime
    error: str | None = None
    down_until: datetime | None = None


class _TimeoutSession(requests.Session):
    """A requests session that never waits forever (the client passes no timeout)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


def gateway_client(phone: GatewayPhone, timeout: float = GATEWAY_TIMEOUT_SECONDS) -> APIClient:
    """The project's client for one phone: basic auth with the app's login, or a token."""
    from android_sms_gateway import APIClient
    from android_sms_gateway.http import RequestsHttpClient

    http = RequestsHttpClient(_TimeoutSession(timeout))
    return APIClient(phone.login, phone.password, base_url=phone.url, http=http)


@dataclass
class Phone:
    """One gateway phone as the sender sees it: its client, rate and health (in memory)."""

    config: GatewayPhone
    client: Any
    tokens: float = 1.0
    refilled_at: float = 0.0
    failures: int = 0
    down_until: float = 0.0
    health_written_at: float = -HEALTH_WRITE_SECONDS
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.config.name

    def wait_for_token(self, now: float) -> float:
        """Take a token and return 0, or return the seconds until one is there."""
        rate = self.config.per_minute / 60.0
        self.tokens = min(1.0, self.tokens + (now - self.refilled_at) * rate)
        self.refilled_at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / rate

    def give_back_token(self) -> None:
        self.tokens = min(1.0, self.tokens + 1.0)


class AndroidGatewaySender(SmsSender):
    """The outbox's sender for channel ``"sms"`` over several gateway phones."""

    channel = "sms"

    def __init__(
        self,
        phones: Sequence[GatewayPhone],
        order: Sequence[str] = (),
        *,
        health: PhoneHealth | None = None,
        client_for: Callable[[GatewayPhone], Any] = gateway_client,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not phones:
            raise ValueError("no gateway phone configured")
        self.phones = [Phone(p, client_for(p), refilled_at=clock()) for p in phones]
        self.order = [o.strip() for o in order if o.strip()]
        self.health = health
        self.clock = clock
        self.wall_clock = wall_clock
        self.sleep = sleep
        self.max_body = 1600

    def send(self, message: OutboundMessage) -> SendResult:
        to, body = self.checked(message)
        return SendResult(provider_id=self.send_text(to, body, message.idempotency_key))

    def candidates(self, to: str) -> list[Phone]:
        """The phones in the order they are tried for ``to``."""
        own = operator_of(to)
        ranks = {operator: n for n, operator in enumerate(self.order, start=1)}

        def rank(phone: Phone) -> int:
            if own is not None and phone.config.operator == own:
                return 0
            return ranks.get(phone.config.operator, len(ranks) + 1)

        return sorted(self.phones, key=rank)  # stable: configuration order among equals

    def send_text(self, to: str, body: str, idempotency_key: str) -> str:
        message_id = gateway_message_id(idempotency_key)
        started = self.clock()
        for round_ in range(2):
            waits: list[float] = []
            for phone in self.candidates(to):
                with phone.lock:
                    # The time is read with the phone in hand: a send that waited for another
                    # one on this phone counts that wait, in its budget and in the phone's
                    # tokens (read before, it saw a busy phone and went off-net).
                    now = self.clock()
                    if now - started + GATEWAY_TIMEOUT_SECONDS > SEND_BUDGET_SECONDS:
                        break  # out of time for this send: the row is tried again
                    if phone.down_until > now:
                        continue
                    wait = phone.wait_for_token(now)
                    if wait > 0:
                        waits.append(wait)
                        continue
                    if self._send_on(phone, to, body, message_id):
                        return message_id
            if round_ == 0 and waits and min(waits) <= MAX_WAIT_SECONDS:
                self.sleep(min(waits))
                continue
            break
        if waits:
            raise TransientSendError(
                "every gateway phone is busy", code="phones_busy", retry_after=min(waits)
            )
        now = self.clock()
        back = [p.down_until - now for p in self.phones if p.down_until > now]
        raise TransientSendError(
            "no gateway phone answered", code="phones_down", retry_after=min(back, default=None)
        )

    def _send_on(self, phone: Phone, to: str, body: str, message_id: str) -> bool:
        """Send on one phone (its lock held): True when it took the message, False when the
        phone is in trouble (it is then marked down); PermanentSendError for a bad message."""
        from android_sms_gateway import Message, TextMessage
        from android_sms_gateway.errors import APIError

        request = Message(
            phone_numbers=[to],
            text_message=TextMessage(text=body),
            id=message_id,
            with_delivery_report=True,
        )
        try:
            phone.client.send(request)
        except APIError as exc:
            status = exc.status_code or 0
            if status == 409:  # this id was accepted already: an earlier attempt got through
                self._answered(phone)
                return True
            if status >= 500 or status in PHONE_TROUBLE_STATUSES:
                self._failed(phone, f"gateway {status}")
                return False
            phone.give_back_token()
            detail = scrub_numbers(str(exc.response or exc))
            raise PermanentSendError(
                f"gateway {phone.name} refused the message ({status}): {detail}",
                code=f"gateway_{status}",
            ) from None
        except (OSError, ValueError, KeyError) as exc:
            # requests' connection errors and timeouts are OSErrors; a body that is not the
            # gateway's answer (ValueError, KeyError) means something else answered.
            self._failed(phone, f"gateway unreachable: {type(exc).__name__}")
            return False
        self._answered(phone)
        return True

    def _answered(self, phone: Phone) -> None:
        now = self.clock()
        came_back = phone.failures > 0
        phone.failures = 0
        phone.down_until = 0.0
        if came_back:
            log.info("sms gateway phone %s answers again", phone.name)
        if came_back or now - phone.health_written_at >= HEALTH_WRITE_SECONDS:
            phone.health_written_at = now
            self._record(phone, "up")

    def _failed(self, phone: Phone, error: str) -> None:
        phone.failures += 1
        pause = min(DOWN_MAX_SECONDS, DOWN_FIRST_SECONDS * 2 ** (phone.failures - 1))
        phone.down_until = self.clock() + pause
        log.warning(
            "sms gateway phone %s did not answer (%s): left alone for %.0f s",
            phone.name,
            error,
            pause,
        )
        self._record(phone, "down", error=error, pause=pause)

    def _record(
        self, phone: Phone, state: str, error: str | None = None, pause: float = 0.0
    ) -> None:
        if self.health is None:
            return
        at = self.wall_clock()
        status = PhoneStatus(
            name=phone.name,
            operator=phone.config.operator,
            state=state,
            failures=phone.failures,
            at=at,
            error=error,
            down_until=at + timedelta(seconds=pause) if state == "down" else None,
        )
        try:
            self.health.record(status)
        except Exception:  # the record is for staff; a send must not fail because of it
            log.exception("sms gateway phone %s: could not record its state", phone.name)


def android_gateway_sender(runtime: Any, health: Any = None) -> AndroidGatewaySender | None:
    """The gateway sender of this deployment, or None when no phone is configured; ``health``
    keeps each phone's state for the admin (the runtime passes the database's)."""
    settings = runtime.settings
    if not settings.sms_gateway_phones:
        log.warning("CITOYEN_SMS_PROVIDER is android-gateway but no phone is configured")
        return None
    return AndroidGatewaySender(
        settings.sms_gateway_phones,
        settings.sms_gateway_order.split(","),
        health=health,
    )
