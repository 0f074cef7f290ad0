"""The worker's job that fetches kept phone takes into the library, against a local fake of
Twilio's media API: retries, refusals, superseded takes, and its APScheduler job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from pytest_httpserver import HTTPServer
from sqlmodel import Session, select

from citoyen.channels.twilio_rest import TwilioRecordingFetcher
from citoyen.db import write_session
from citoyen.models import PromptCall, PromptTake, User
from citoyen.runtime import Runtime
from citoyen.services.media import MAX_ATTEMPTS
from citoyen.services.prompts import catalogue, coverage
from citoyen.services.prompts.phone import FetchSummary, fetch_kept_takes, scheduled_jobs
from tests.services.prompts.sounds import wav

ACCOUNT = "AC" + "0" * 32
TOKEN = "token-0123456789"
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def take(runtime: Runtime, user: User, key: str, n: int, status: str = "pending") -> PromptTake:
    spec = next(s for s in catalogue(runtime.bundle, "bm") if s.key == key)
    with write_session(runtime.engine) as session:
        call = session.exec(select(PromptCall)).first()
        if call is None:
            call = PromptCall(call_sid="CA" + "1" * 32, user_id=user.id, language="bm")
            session.add(call)
            session.flush()
        row = PromptTake(
            call_id=call.id,
            user_id=user.id,
            language="bm",
            key=key,
            text_hash=spec.text_hash,
            recording_sid=f"RE{n:032d}",
            status=status,
            created_at=NOW,
            kept_at=NOW,
        )
        session.add(row)
        session.flush()
        session.expunge(row)
    return row


def path(sid: str) -> str:
    return f"/2010-04-01/Accounts/{ACCOUNT}/Recordings/{sid}.wav"


def fetcher(server: HTTPServer) -> TwilioRecordingFetcher:
    return TwilioRecordingFetcher(ACCOUNT, TOKEN, api_base=server.url_for("/"), timeout=5)


def state(runtime: Runtime) -> list[tuple[str, str, int, str | None]]:
    with Session(runtime.engine) as session:
        rows = session.exec(select(PromptTake).order_by(PromptTake.id)).all()
        return [(r.key, r.status, r.attempts, r.error) for r in rows]


def test_not_ready_is_retried_with_back_off_then_stored(
    runtime: Runtime, staff: User, httpserver: HTTPServer
) -> None:
    kept = take(runtime, staff, "report.danger", 1)
    httpserver.expect_ordered_request(path(kept.recording_sid)).respond_with_data("", status=404)
    assert fetch_kept_takes(runtime, fetcher(httpserver), now=NOW).retrying == 1
    assert state(runtime) == [("report.danger", "pending", 1, "HTTP 404 from Twilio")]
    # Not due again before the back-off.
    soon = NOW + timedelta(seconds=5)
    assert fetch_kept_takes(runtime, fetcher(httpserver), now=soon) == FetchSummary()
    httpserver.expect_ordered_request(path(kept.recording_sid)).respond_with_data(
        wav(1.0), content_type="audio/x-wav"
    )
    assert (
        fetch_kept_takes(runtime, fetcher(httpserver), now=NOW + timedelta(minutes=1)).stored == 1
    )
    assert state(runtime) == [("report.danger", "stored", 2, None)]
    status = {s.key: s for s in coverage(runtime, "bm")}["report.danger"]
    assert (status.status, status.source, status.user_email) == ("recorded", "phone", staff.email)


def test_an_unusable_recording_fails_at_once_with_the_reason(
    runtime: Runtime, staff: User, httpserver: HTTPServer
) -> None:
    kept = take(runtime, staff, "report.danger", 2)
    httpserver.expect_request(path(kept.recording_sid)).respond_with_data(
        wav(0.05), content_type="audio/x-wav"
    )
    assert fetch_kept_takes(runtime, fetcher(httpserver), now=NOW).failed == 1
    [(_key, status, attempts, error)] = state(runtime)
    assert (status, attempts) == ("failed", 1)
    assert error == "bm/report.danger: the recording is empty or too short (0.1 s)"
    assert {s.key: s for s in coverage(runtime, "bm")}["report.danger"].status == "missing"


def test_a_take_superseded_before_its_fetch_is_not_stored(
    runtime: Runtime, staff: User, httpserver: HTTPServer
) -> None:
    take(runtime, staff, "report.danger", 3, status="discarded")
    take(runtime, staff, "report.describe", 4, status="draft")
    assert fetch_kept_takes(runtime, fetcher(httpserver), now=NOW).stored == 0
    assert len(httpserver.log) == 0


def test_gives_up_after_the_last_attempt(
    runtime: Runtime, staff: User, httpserver: HTTPServer
) -> None:
    kept = take(runtime, staff, "report.danger", 5)
    httpserver.expect_request(path(kept.recording_sid)).respond_with_data("", status=503)
    later = NOW
    for _ in range(MAX_ATTEMPTS):
        later += timedelta(hours=2)
        fetch_kept_takes(runtime, fetcher(httpserver), now=later)
    assert state(runtime) == [("report.danger", "failed", MAX_ATTEMPTS, "HTTP 503 from Twilio")]


def test_the_job_plugs_into_apscheduler_only_with_credentials(runtime: Runtime) -> None:
    assert scheduled_jobs(runtime) == []
    runtime.settings = runtime.settings.model_copy(
        update={"twilio_account_sid": ACCOUNT, "twilio_auth_token": TOKEN}
    )
    [job] = scheduled_jobs(runtime)
    assert job["func"] is fetch_kept_takes and job["args"][0] is runtime
    assert BackgroundScheduler(timezone="Africa/Bamako").add_job(**job).id == "fetch_prompt_takes"


@pytest.fixture(autouse=True)
def _strict(httpserver: HTTPServer):  # type: ignore[no-untyped-def]
    yield
    httpserver.check_assertions()
