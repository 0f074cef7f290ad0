"""What services ask of providers: the protocols every sender, media fetcher and call placer keeps.

Services never import a provider's module: the runtime (:mod:`citoyen.runtime`) builds the
providers this deployment has credentials for and hands them over behind these protocols, so a
service can be tested with any object that keeps them, and a provider can change without a
service noticing.

**Senders.** The outbox dispatcher hands a sender one :class:`OutboundMessage` at a time and reads the result
or the error: a :class:`TransientSendError` is retried with back-off (``retry_after`` honoured), a
:class:`PermanentSendError` ends the row as failed with the provider's code, and ``opt_out`` tells
the dispatcher the recipient refused messages (Twilio 21610, Telegram "bot was blocked").

**Media fetchers** copy what a citizen sent (a call recording, a Telegram voice note or photo)
from its provider into a file: a :class:`TransientFetchError` is tried again later, a
:class:`PermanentFetchError` marks the attachment failed. **Call placers** start an outbound call
and raise the senders' errors.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol


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


SenderFactory = Callable[[Any], Sender | None]
"""``factory(runtime)``: the channel's sender, or None when the deployment has no credentials for
it (its messages then go to the log channel)."""


# --- media fetchers -----------------------------------------------------------------------------

# A 2-minute WAV is about 2 MB; anything this big is not ours.
MAX_MEDIA_BYTES = 50 * 1024 * 1024


class FetchError(Exception):
    """Fetching failed; the message is stored on the attachment (no secrets in it)."""


class TransientFetchError(FetchError):
    """Worth trying again later (network, 5xx, not ready yet, rate limited)."""


class PermanentFetchError(FetchError):
    """Will never work as it is (malformed reference, gone for good)."""


class MediaFetcher(Protocol):
    """Gets one attachment's bytes from its provider."""

    def fetch(self, attachment: Any, dest: BinaryIO) -> str | None:
        """Write the media of ``attachment`` (its ``provider_ref``, ``content_type``) to
        ``dest``; return its content type if the provider said it.

        Raise :class:`TransientFetchError` or :class:`PermanentFetchError` on failure.
        """
        ...


def copy_limited(chunks: Iterable[bytes], dest: BinaryIO, limit: int = MAX_MEDIA_BYTES) -> int:
    """Copy a download to ``dest``, refusing more than ``limit`` bytes; returns the size."""
    size = 0
    for chunk in chunks:
        if not chunk:
            continue
        size += len(chunk)
        if size > limit:
            raise PermanentFetchError(f"media larger than {limit} bytes")
        dest.write(chunk)
    return size


# --- call placers -------------------------------------------------------------------------------


class CallPlacer(Protocol):
    """Places one call; returns its CallSid. Raises Transient/PermanentSendError.

    ``machine_detection``: the provider tells the answer request who picked up (a person, an
    answering machine, a fax), so that a voicemail is hung up on instead of hearing the menu.
    """

    def create(
        self, to: str, url: str, status_callback: str, *, machine_detection: bool = False
    ) -> str: ...
