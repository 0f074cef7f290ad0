"""Fetching what citizens sent (call recordings; later Telegram voice notes and photos) into our
own storage.

Providers do not keep media for us: Twilio recordings are deleted with the account's retention
rules, Telegram file links expire. A moderator must still be able to listen to a report months
later, so the worker copies every pending :class:`~citoyen.models.Attachment` into
``<instance>/media/<channel>/<yyyy>/<mm>/<id>.<ext>`` (``local_path`` is stored relative to the
instance folder, so the folder can move or be restored from a backup).

Each channel brings a :class:`Fetcher` (``{"voice": TwilioRecordingFetcher(...)}``);
:func:`fetch_pending_attachments` does the bookkeeping for all of them: back-off between
attempts, ``failed`` after :data:`MAX_ATTEMPTS` or a permanent error, atomic file writes, and no
database transaction held open while waiting on the network.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import requests
from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.models import Attachment

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
# Attempt k (0-based) is due BACKOFF_SECONDS * (2**k - 1) after the attachment was created:
# at once, then 30 s, 1.5 min, 3.5 min ... about 1 h 4 min for the eighth and last.
BACKOFF_SECONDS = 30
MAX_BYTES = 50 * 1024 * 1024  # a 2-minute WAV is about 2 MB; anything this big is not ours
CHUNK = 64 * 1024
TWILIO_API = "https://api.twilio.com"
RECORDING_SID = re.compile(r"RE[0-9a-fA-F]{32}")
MESSAGE_MEDIA = re.compile(r"(?:MM|SM)[0-9a-fA-F]{32}/ME[0-9a-fA-F]{32}")
EXTENSIONS = {
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/wave": ".wav",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
    "audio/mp4": ".m4a",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "video/mp4": ".mp4",
}


class FetchError(Exception):
    """Fetching failed; the message is stored on the attachment (no secrets in it)."""


class TransientFetchError(FetchError):
    """Worth trying again later (network, 5xx, not ready yet, rate limited)."""


class PermanentFetchError(FetchError):
    """Will never work as it is (malformed reference, gone for good)."""


class Fetcher(Protocol):
    """Gets one attachment's bytes from its provider."""

    def fetch(self, attachment: Attachment, dest: BinaryIO) -> str | None:
        """Write the media to ``dest``; return its content type if the provider said it.

        Raise :class:`TransientFetchError` or :class:`PermanentFetchError` on failure.
        """
        ...


@dataclass(frozen=True)
class FetchSummary:
    fetched: int = 0
    retrying: int = 0
    failed: int = 0


def copy_limited(chunks: Iterable[bytes], dest: BinaryIO, limit: int = MAX_BYTES) -> int:
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


class TwilioRecordingFetcher:
    """Downloads a call recording as WAV with the account's credentials (HTTP basic auth).

    The URL is built from the account and the RecordingSid, never taken from a request, so
    the credentials only ever go to Twilio's API (``api_base`` is for tests).
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        api_base: str = TWILIO_API,
        timeout: float = 30.0,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        self.max_bytes = max_bytes

    # What provider_ref must look like (the URL is built from it and the account).
    ref_pattern = RECORDING_SID
    ref_name = "a Twilio RecordingSid"

    def url(self, recording_sid: str) -> str:
        return (
            f"{self.api_base}/2010-04-01/Accounts/{self.account_sid}/Recordings/{recording_sid}.wav"
        )

    def fetch(self, attachment: Attachment, dest: BinaryIO) -> str | None:
        sid = attachment.provider_ref
        if not self.ref_pattern.fullmatch(sid or ""):
            raise PermanentFetchError(f"provider_ref is not {self.ref_name}")
        try:
            with requests.get(
                self.url(sid),
                auth=(self.account_sid, self.auth_token),
                stream=True,
                timeout=self.timeout,
            ) as response:
                code = response.status_code
                if code in (401, 403):
                    # Usually a configuration mistake that gets fixed: keep trying for a while.
                    raise TransientFetchError(
                        f"HTTP {code} from Twilio: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
                    )
                if code in (404, 408, 429) or code >= 500:
                    # 404 too: a recording is not downloadable until Twilio has processed it.
                    raise TransientFetchError(f"HTTP {code} from Twilio")
                if code >= 400:
                    raise PermanentFetchError(f"HTTP {code} from Twilio")
                copy_limited(response.iter_content(CHUNK), dest, self.max_bytes)
                return response.headers.get("Content-Type")
        except requests.RequestException as exc:
            raise TransientFetchError(f"network error: {type(exc).__name__}") from None


def twilio_recording_fetcher(settings: Any) -> TwilioRecordingFetcher:
    """The recording fetcher of this deployment, at ``CITOYEN_TWILIO_API_URL`` when it is set
    (a regional edge, a local fake in tests) like every other Twilio client."""
    return TwilioRecordingFetcher(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        api_base=settings.twilio_api_url or TWILIO_API,
    )


def readable_error(exc: BaseException) -> str:
    """What went wrong, in words an operator can act on: an OSError's reason ("OSError: No
    space left on device"), not only its class. No path: it names the instance folder."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


class TwilioMessageMediaFetcher(TwilioRecordingFetcher):
    """Downloads a WhatsApp voice note or photo (``provider_ref`` ``MM…/ME…``, kept by
    web/twilio_whatsapp.py) from the message's media list, with the account's credentials."""

    ref_pattern = MESSAGE_MEDIA
    ref_name = "a Twilio MessageSid/MediaSid"

    def url(self, recording_sid: str) -> str:
        message, media = recording_sid.split("/")
        return (
            f"{self.api_base}/2010-04-01/Accounts/{self.account_sid}"
            f"/Messages/{message}/Media/{media}"
        )


def default_fetchers(runtime: Any) -> dict[str, Fetcher]:
    """The fetchers this deployment can use, by channel (none without credentials)."""
    settings = runtime.settings
    fetchers: dict[str, Fetcher] = {}
    if settings.twilio_account_sid and settings.twilio_auth_token:
        fetchers["voice"] = twilio_recording_fetcher(settings)
        fetchers["whatsapp"] = TwilioMessageMediaFetcher(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            api_base=settings.twilio_api_url or TWILIO_API,
        )
    if settings.telegram_bot_token:
        from citoyen.channels.telegram_sender import make_fetcher

        fetchers["telegram"] = make_fetcher(runtime)
    return fetchers


def next_attempt_at(attachment: Attachment) -> datetime:
    """When the next fetch of this attachment is due (exponential back-off)."""
    return attachment.created_at + timedelta(seconds=BACKOFF_SECONDS * (2**attachment.attempts - 1))


def media_file(instance_dir: Path, attachment: Attachment) -> Path | None:
    """The stored file of a fetched attachment, or None."""
    if not attachment.local_path:
        return None
    return Path(instance_dir) / attachment.local_path


def _extension(content_type: str | None, channel: str) -> str:
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in EXTENSIONS:
        return EXTENSIONS[kind]
    return ".wav" if channel == "voice" else ".bin"


def _discard(tmp: Path | None) -> None:
    if tmp is not None:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def fetch_pending_attachments(
    runtime: Any,
    fetchers: Mapping[str, Fetcher],
    *,
    now: datetime | None = None,
    limit: int = 20,
) -> FetchSummary:
    """Fetch the pending attachments that are due, for channels that have a fetcher."""
    now = now or datetime.now(UTC)
    if not fetchers:
        return FetchSummary()
    with Session(runtime.engine) as session:
        rows = session.exec(
            select(Attachment)
            .where(
                Attachment.status == "pending",
                Attachment.channel.in_(list(fetchers)),
                Attachment.attempts < MAX_ATTEMPTS,
            )
            .order_by(Attachment.id)
            .limit(limit * 10)
        ).all()
        due = [row for row in rows if next_attempt_at(row) <= now][:limit]
        for row in due:
            session.expunge(row)
    counts = {"fetched": 0, "retrying": 0, "failed": 0}
    for attachment in due:
        outcome = _fetch_one(runtime, fetchers[attachment.channel], attachment, now)
        counts[outcome] += 1
    if due:
        log.info("media: %s", ", ".join(f"{v} {k}" for k, v in counts.items()))
    return FetchSummary(**counts)


def _fetch_one(runtime: Any, fetcher: Fetcher, attachment: Attachment, now: datetime) -> str:
    instance_dir = Path(runtime.settings.instance_dir)
    created = attachment.created_at
    relative_dir = Path("media") / attachment.channel / f"{created:%Y}" / f"{created:%m}"
    folder = instance_dir / relative_dir
    tmp: Path | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, kept on success
            dir=folder, prefix=f".{attachment.id}-", suffix=".part", delete=False
        )
        tmp = Path(handle.name)
        with handle:
            content_type = fetcher.fetch(attachment, handle)
        final = folder / f"{attachment.id}{_extension(content_type, attachment.channel)}"
        os.replace(tmp, final)
        final.chmod(0o600)  # recordings can identify a reporter by voice
    except FetchError as exc:
        _discard(tmp)
        return _record_failure(runtime, attachment.id, exc, now)
    except OSError as exc:  # the disk: full, read-only, permissions
        _discard(tmp)
        reason = f"cannot store the file: {readable_error(exc)}"
        log.warning("media: attachment %s: %s", attachment.id, reason)
        return _record_failure(runtime, attachment.id, TransientFetchError(reason), now)
    except Exception as exc:  # a fetcher bug must not stop the other attachments
        _discard(tmp)
        log.exception(
            "media: fetcher for %s raised on attachment %s", attachment.channel, attachment.id
        )
        return _record_failure(
            runtime, attachment.id, TransientFetchError(readable_error(exc)), now
        )
    with write_session(runtime.engine) as session:
        row = session.get(Attachment, attachment.id)
        if row is None or row.status != "pending":
            return "fetched"
        row.status = "fetched"
        row.local_path = str(relative_dir / final.name)
        row.size_bytes = final.stat().st_size
        row.content_type = (content_type or "").split(";")[0].strip() or row.content_type
        row.fetched_at = now
        row.attempts += 1
        row.error = None
    return "fetched"


def _record_failure(runtime: Any, attachment_id: int | None, exc: FetchError, now: datetime) -> str:
    with write_session(runtime.engine) as session:
        row = session.get(Attachment, attachment_id)
        if row is None or row.status != "pending":
            return "failed"
        row.attempts += 1
        row.error = str(exc)[:500]
        if isinstance(exc, PermanentFetchError) or row.attempts >= MAX_ATTEMPTS:
            row.status = "failed"
            log.warning(
                "media: attachment %s failed after %s attempt(s): %s",
                row.id,
                row.attempts,
                row.error,
            )
            return "failed"
        log.info("media: attachment %s not fetched yet (%s), will retry", row.id, row.error)
        return "retrying"


def scheduled_jobs(runtime: Any) -> list[dict[str, Any]]:
    """APScheduler ``add_job`` keyword arguments for the worker (none without credentials)."""
    fetchers = default_fetchers(runtime)
    if not fetchers:
        return []
    return [
        {
            "func": fetch_pending_attachments,
            "trigger": "interval",
            "seconds": 30,
            "args": [runtime, fetchers],
            "id": "fetch_media",
            "name": "fetch recordings and media into storage",
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": 30,
            "replace_existing": True,
        }
    ]
