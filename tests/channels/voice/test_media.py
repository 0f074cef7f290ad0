"""Recordings are copied into our storage from a local fake of Twilio's media API.

The fake (pytest-httpserver) answers only requests that carry the account's credentials with
HTTP basic auth, as Twilio does when media URLs require authentication. Each test runs on SQLite
and on PostgreSQL.
"""

from __future__ import annotations

import base64
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from pytest_httpserver import HTTPServer
from sqlmodel import Session, select
from werkzeug import Request, Response

from citoyen.channels.twilio_rest import TwilioRecordingFetcher
from citoyen.db import write_session
from citoyen.models import Attachment, Report
from citoyen.runtime import Runtime
from citoyen.services import media
from citoyen.services.media import (
    MAX_ATTEMPTS,
    fetch_pending_attachments,
    next_attempt_at,
    scheduled_jobs,
)
from tests.channels.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN
from tests.channels.voice.helpers import Call

SID = "RE" + "1" * 32
WAV = (Path(__file__).parent / "fixtures" / "bm" / "audio" / "report.welcome.wav").read_bytes()
PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{SID}.wav"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def twilio_media(request: Request) -> Response:
    """Twilio's recording media endpoint: the WAV for the account's credentials, else 401."""
    if request.headers.get("Authorization") != basic(ACCOUNT_SID, AUTH_TOKEN):
        return Response("unauthorized", status=401)
    return Response(WAV, status=200, content_type="audio/x-wav")


def fetcher(server: HTTPServer, token: str = AUTH_TOKEN, **kwargs) -> TwilioRecordingFetcher:  # type: ignore[no-untyped-def]
    return TwilioRecordingFetcher(
        ACCOUNT_SID, token, api_base=server.url_for("/"), timeout=5, **kwargs
    )


def pending(runtime: Runtime, provider_ref: str = SID, channel: str = "voice") -> Attachment:
    with write_session(runtime.engine) as session:
        attachment = Attachment(
            channel=channel, kind="recording", provider_ref=provider_ref, status="pending"
        )
        session.add(attachment)
        session.flush()
        return attachment


def reload(runtime: Runtime, attachment: Attachment) -> Attachment:
    with Session(runtime.engine) as session:
        return session.get(Attachment, attachment.id)


def media_files(runtime: Runtime) -> list[Path]:
    root = Path(runtime.settings.instance_dir) / "media"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_recording_is_fetched_with_the_account_credentials(
    runtime: Runtime, httpserver: HTTPServer
) -> None:
    httpserver.expect_request(PATH, method="GET").respond_with_handler(twilio_media)
    attachment = pending(runtime)
    summary = fetch_pending_attachments(runtime, {"voice": fetcher(httpserver)})
    assert summary.fetched == 1
    row = reload(runtime, attachment)
    assert row.status == "fetched" and row.attempts == 1 and row.error is None
    created = row.created_at
    assert row.local_path == f"media/voice/{created:%Y}/{created:%m}/{row.id}.wav"
    stored = Path(runtime.settings.instance_dir) / row.local_path
    assert stored.read_bytes() == WAV
    assert row.size_bytes == len(WAV) and row.content_type == "audio/x-wav"
    assert row.fetched_at is not None
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600  # a voice can identify a reporter
    assert media_files(runtime) == [stored]  # no partial file left behind
    # Fetched once: the next run has nothing to do.
    assert fetch_pending_attachments(runtime, {"voice": fetcher(httpserver)}).fetched == 0
    assert len(httpserver.log) == 1


def test_wrong_credentials_are_retried_with_back_off_then_failed(
    runtime: Runtime, httpserver: HTTPServer
) -> None:
    httpserver.expect_request(PATH, method="GET").respond_with_handler(twilio_media)
    attachment = pending(runtime)
    wrong = {"voice": fetcher(httpserver, token="wrong")}
    summary = fetch_pending_attachments(runtime, wrong, now=attachment.created_at)
    assert summary.retrying == 1
    row = reload(runtime, attachment)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "TWILIO_AUTH_TOKEN" in row.error and "wrong" not in row.error
    assert media_files(runtime) == []

    # Not due again yet: no request is made.
    soon = attachment.created_at + timedelta(seconds=10)
    assert fetch_pending_attachments(runtime, wrong, now=soon).retrying == 0
    assert len(httpserver.log) == 1

    now = attachment.created_at
    for _ in range(MAX_ATTEMPTS - 1):
        now = next_attempt_at(reload(runtime, attachment))
        fetch_pending_attachments(runtime, wrong, now=now)
    row = reload(runtime, attachment)
    assert (row.status, row.attempts) == ("failed", MAX_ATTEMPTS)
    assert len(httpserver.log) == MAX_ATTEMPTS
    fetch_pending_attachments(runtime, wrong, now=now + timedelta(days=30))
    assert len(httpserver.log) == MAX_ATTEMPTS  # failed rows are left alone


def test_back_off_grows(runtime: Runtime) -> None:
    attachment = pending(runtime)
    delays = []
    for attempts in range(4):
        attachment.attempts = attempts
        delays.append((next_attempt_at(attachment) - attachment.created_at).total_seconds())
    assert delays == [0, 30, 90, 210]


def test_recording_not_ready_yet_is_retried_then_fetched(
    runtime: Runtime, httpserver: HTTPServer
) -> None:
    httpserver.expect_ordered_request(PATH).respond_with_data("not yet", status=404)
    httpserver.expect_ordered_request(PATH).respond_with_handler(twilio_media)
    attachment = pending(runtime)
    fetchers = {"voice": fetcher(httpserver)}
    assert fetch_pending_attachments(runtime, fetchers, now=attachment.created_at).retrying == 1
    later = next_attempt_at(reload(runtime, attachment))
    assert fetch_pending_attachments(runtime, fetchers, now=later).fetched == 1
    assert reload(runtime, attachment).attempts == 2


@pytest.mark.parametrize("code", [400, 410])
def test_permanent_errors_fail_at_once(runtime: Runtime, httpserver: HTTPServer, code) -> None:
    httpserver.expect_request(PATH).respond_with_data("no", status=code)
    attachment = pending(runtime)
    assert fetch_pending_attachments(runtime, {"voice": fetcher(httpserver)}).failed == 1
    row = reload(runtime, attachment)
    assert row.status == "failed" and str(code) in row.error


def test_oversized_download_is_refused(runtime: Runtime, httpserver: HTTPServer) -> None:
    httpserver.expect_request(PATH).respond_with_handler(twilio_media)
    attachment = pending(runtime)
    fetch_pending_attachments(runtime, {"voice": fetcher(httpserver, max_bytes=100)})
    assert reload(runtime, attachment).status == "failed"
    assert media_files(runtime) == []


def test_malformed_reference_fails_without_any_request(
    runtime: Runtime, httpserver: HTTPServer
) -> None:
    attachment = pending(runtime, provider_ref="../../Calls/CA" + "0" * 32)
    assert fetch_pending_attachments(runtime, {"voice": fetcher(httpserver)}).failed == 1
    assert reload(runtime, attachment).status == "failed"
    assert len(httpserver.log) == 0


def test_unreachable_server_is_a_retry(runtime: Runtime) -> None:
    attachment = pending(runtime)
    dead = TwilioRecordingFetcher(ACCOUNT_SID, AUTH_TOKEN, api_base="http://127.0.0.1:9", timeout=2)
    assert fetch_pending_attachments(runtime, {"voice": dead}).retrying == 1
    assert "network error" in reload(runtime, attachment).error


def test_channels_without_a_fetcher_are_left_pending(
    runtime: Runtime, httpserver: HTTPServer
) -> None:
    attachment = pending(runtime, provider_ref="telegram-file-id", channel="telegram")
    assert fetch_pending_attachments(runtime, {"voice": fetcher(httpserver)}).fetched == 0
    assert reload(runtime, attachment).attempts == 0


def test_a_call_recording_ends_up_stored_with_its_report(
    client, runtime: Runtime, httpserver: HTTPServer
) -> None:
    call = Call(client)
    call.start()
    for key in "1122122":  # French, report a concern, theft, Ségou > Niono > Pogo, no danger
        call.press(key)
    call.record(sid=SID)
    call.press("1")
    call.press("2")
    httpserver.expect_request(PATH).respond_with_handler(twilio_media)
    fetch_pending_attachments(runtime, {"voice": fetcher(httpserver)})
    with Session(runtime.engine) as session:
        report = session.exec(select(Report)).one()
        attachment = session.exec(select(Attachment)).one()
    assert attachment.report_id == report.id and attachment.status == "fetched"
    path = media.media_file(runtime.settings.instance_dir, attachment)
    assert path is not None and path.read_bytes() == WAV


def test_scheduled_jobs_plug_into_apscheduler(runtime: Runtime) -> None:
    [job] = scheduled_jobs(runtime)
    assert job["func"] is fetch_pending_attachments
    assert job["args"][0] is runtime
    assert isinstance(job["args"][1]["voice"], TwilioRecordingFetcher)
    scheduler = BackgroundScheduler(timezone="Africa/Bamako")
    added = scheduler.add_job(**job)
    assert added.id == "fetch_media"


def test_no_jobs_without_credentials(runtime: Runtime) -> None:
    runtime.settings.twilio_auth_token = None
    assert scheduled_jobs(runtime) == []


def test_the_worker_fetches_recordings_from_the_configured_twilio_url(
    runtime: Runtime, httpserver: HTTPServer
) -> None:
    """CITOYEN_TWILIO_API_URL applies to recording downloads too, as to every Twilio client."""
    httpserver.expect_request(PATH, method="GET").respond_with_handler(twilio_media)
    settings = runtime.settings.model_copy(update={"twilio_api_url": httpserver.url_for("/")})
    configured = Runtime(settings)
    attachment = pending(configured)
    summary = fetch_pending_attachments(configured, configured.media_fetchers)
    assert summary.fetched == 1
    assert reload(configured, attachment).status == "fetched"
    assert len(httpserver.log) == 1


class _FullDisk:
    """A temporary file on a full disk: writes fail as the kernel says (``/dev/full``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._file = open("/dev/full", "wb", buffering=0)  # noqa: SIM115 - closed in __exit__

    def write(self, data: bytes) -> int:
        return self._file.write(data)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._file.close()


def test_a_recording_that_cannot_be_stored_says_why(
    runtime: Runtime, httpserver: HTTPServer, monkeypatch, tmp_path: Path
) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    httpserver.expect_request(PATH, method="GET").respond_with_handler(twilio_media)
    monkeypatch.setattr(
        media.tempfile,
        "NamedTemporaryFile",
        lambda **kw: _FullDisk(str(tmp_path / "recording.part")),
    )
    attachment = pending(runtime)
    summary = fetch_pending_attachments(runtime, {"voice": fetcher(httpserver)})
    assert summary.retrying == 1
    row = reload(runtime, attachment)
    assert row.status == "pending"
    assert row.error == "cannot store the file: OSError: No space left on device"
