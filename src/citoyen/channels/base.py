"""What every outbound sender (Twilio SMS, Twilio calls, Telegram, the log channel) agrees on.

The outbox dispatcher hands a sender one :class:`OutboundMessage` at a time and reads the result
or the error: a :class:`TransientSendError` is retried with back-off (``retry_after`` honoured), a
:class:`PermanentSendError` ends the row as failed with the provider's code, and ``opt_out`` tells
the dispatcher the recipient refused messages (Twilio 21610, Telegram "bot was blocked").
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class OutboundMessage:
    outbox_id: int
    idempotency_key: str
    channel: str  # sms | telegram | voice_call | log
    address: str  # decrypted, in memory only: tel:+223... or telegram:ID
    body: str | None
    payload: dict[str, Any] = field(default_factory=dict)  # buttons, media, call parameters...


@dataclass(frozen=True)
class SendResult:
    provider_id: str | None


class SendError(Exception):
    def __init__(self, message: str, code: str | int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientSendError(SendError):
    """Worth retrying later (network, 5xx, rate limit)."""

    def __init__(
        self, message: str, code: str | int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, code)
        self.retry_after = retry_after


class PermanentSendError(SendError):
    """Will never succeed as it is (bad number, unsubscribed, blocked bot)."""

    def __init__(self, message: str, code: str | int | None = None, opt_out: bool = False) -> None:
        super().__init__(message, code)
        self.opt_out = opt_out


class Sender(Protocol):
    channel: str

    def send(self, message: OutboundMessage) -> SendResult: ...


class PerThreadSender:
    """One sender per calling thread, made by ``make`` on first use in that thread.

    The outbox keeps several sends of a channel in flight, each on its own thread
    (citoyen.services.dispatch); a client that cannot be shared between threads — a Telegram
    ``Bot`` runs on one event loop, one call at a time — then gets a copy per thread instead of
    making them queue behind one lock.
    """

    def __init__(self, channel: str, make: Callable[[], Any]) -> None:
        self.channel = channel
        self._make = make
        self._local = threading.local()
        self._made: list[Any] = []
        self._lock = threading.Lock()

    @property
    def current(self) -> Any:
        """The calling thread's sender (made now if it has none)."""
        sender = getattr(self._local, "sender", None)
        if sender is None:
            sender = self._local.sender = self._make()
            with self._lock:
                self._made.append(sender)
        return sender

    def send(self, message: OutboundMessage) -> SendResult:
        return self.current.send(message)

    def close(self) -> None:
        """Close every copy that has a ``close`` (their connections and loops)."""
        with self._lock:
            made, self._made = self._made, []
        for sender in made:
            close = getattr(sender, "close", None)
            if close is not None:
                close()
