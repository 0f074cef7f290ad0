"""Fetching what citizens sent (call recordings; later Telegram voice notes and photos) into our
own storage.

Providers do not keep media for us: Twilio recordings are deleted with the account's retention
rules, Telegram file links expire. A moderator must still be able to listen to a report months
later, so the worker copies every pending :class:`~citoyen.models.Attachment` into
``<instance>/media/<channel>/<yyyy>/<mm>/<id>.<ext>`` (``local_path`` is stored relative to the
instance folder, so the folder can move or be restored from a backup).

Each channel brings a :class:`~citoyen.channels.base.MediaFetcher` (the runtime's
``media_fetchers``: ``{"voice": TwilioRecordingFetcher(...)}``);
:func:`fetch_pending_attachments` does the bookkeeping for all of them: back-off between attempts, ``failed`` after :data:`MAX_ATTEMPTS` or a permanent error, atomic file writes, and no
database transaction held open while waiting on the network.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from citoyen.channels.base import FetchError, MediaFetcher, PermanentFetchError, TransientFetchError
from citoyen.db import write_session
from citoyen.models import Attachment

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
# Attempt k (0-based) is due BACKOFF_SECONDS * (2**k - 1) after the attachment was created:
# at once, then 30 s, 1.5 min, 3.5 min ... about 1 h 4 min for the eighth and last.
BACKOFF_SECONDS = 30
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


@dataclass(frozen=True)
class FetchSummary:
    fetched: int = 0
    retrying: int = 0
    failed: int = 0


def readable_error(exc: BaseException) -> str:
    """What went wrong, in words an operator can act on: an OSError's reason ("OSError: No
    space left on device"), not only its class. No path: it names the instance folder."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


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
    fetchers: Mapping[str, MediaFetcher],
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


def _fetch_one(runtime: Any, fetcher: MediaFetcher, attachment: Attachment, now: datetime) -> str:
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
    fetchers = runtime.media_fetchers
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
