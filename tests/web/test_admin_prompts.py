"""The voice prompt page: coverage per language, listen, upload (checked), delete, PINs."""

from __future__ import annotations

import io

import pytest
from flask import Flask
from sqlmodel import Session, select

from citoyen.models import AuditEvent, PromptRecorder, User, VoicePrompt
from citoyen.runtime import Runtime
from citoyen.services import prompts as library
from citoyen.web import create_app
from tests.services.prompts.sounds import wav
from tests.web.conftest import csrf_token, sign_in


@pytest.fixture
def app(rt: Runtime) -> Flask:
    return create_app({"TESTING": True}, runtime=rt)


def first_missing(rt: Runtime, lang: str = "bm") -> str:
    return next(s.key for s in library.coverage(rt, lang) if s.status == "missing")


def upload(client, key: str, data: bytes, name: str = "take.wav", lang: str = "bm"):  # type: ignore[no-untyped-def]
    token = csrf_token(client, "/admin/prompts")
    return client.post(
        f"/admin/prompts/{lang}/{key}/upload",
        data={"csrf_token": token, "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def test_who_may_open_the_page(app: Flask, rt: Runtime) -> None:
    agent = sign_in(app, "agent@example.org", "agent", stakeholder="bko-police-c4")
    assert agent.get("/admin/prompts").status_code == 403
    analyst = sign_in(app, "analyst@example.org", "analyst")
    assert analyst.get("/admin/prompts").status_code == 403
    coordinator = sign_in(app, "coord@example.org", "coordinator", area="ML-BKO")
    page = coordinator.get("/admin/prompts?language=bm&status=missing")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    missing = [s for s in library.coverage(rt, "bm") if s.status == "missing"]
    assert missing and all(s.key in html for s in missing)
    assert "/admin/prompts/pins" not in html  # PINs are for administrators


def test_upload_listen_and_delete(app: Flask, rt: Runtime) -> None:
    client = sign_in(app, "admin@example.org", "admin")
    key = first_missing(rt)
    assert upload(client, key, wav(2.0)).status_code == 302
    state = {s.key: s for s in library.coverage(rt, "bm")}[key]
    assert (state.status, state.source, state.user_email) == (
        "recorded",
        "upload",
        "admin@example.org",
    )
    heard = client.get(f"/admin/prompts/bm/{key}/audio")
    assert heard.status_code == 200 and heard.mimetype == "audio/wav"
    assert heard.data[:4] == b"RIFF"
    with Session(rt.engine) as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "prompt_stored")).all()

    token = csrf_token(client, "/admin/prompts")
    assert (
        client.post(f"/admin/prompts/bm/{key}/delete", data={"csrf_token": token}).status_code
        == 302
    )
    assert {s.key: s for s in library.coverage(rt, "bm")}[key].status == "missing"
    again = client.post(f"/admin/prompts/bm/{key}/delete", data={"csrf_token": token})
    assert again.status_code == 400
    assert client.get(f"/admin/prompts/bm/{key}/audio").status_code == 404


def test_a_non_audio_file_is_refused_with_the_reason(app: Flask, rt: Runtime) -> None:
    client = sign_in(app, "admin@example.org", "admin")
    key = first_missing(rt)
    response = upload(client, key, b"This is not a sound, just some text.\n" * 20, "notes.wav")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    with pytest.raises(library.AudioError) as refused:
        library.validate_upload(b"This is not a sound, just some text.\n" * 20, "notes.wav")
    assert refused.value.code == "not_audio"
    # The admin words the code in the staff's language (English here), not the log message.
    assert "Not stored: This is not an audio file: send a WAV or MP3 recording." in html
    assert str(refused.value) not in html.replace("&#39;", "'").replace("&#34;", '"')
    with Session(rt.engine) as s:
        assert s.exec(select(VoicePrompt)).all() == []


def test_uploads_may_exceed_the_one_megabyte_limit_of_other_requests(
    app: Flask, rt: Runtime
) -> None:
    client = sign_in(app, "admin@example.org", "admin")
    big = wav(14.0, rate=44100, channels=2)  # about 2.5 MB
    assert len(big) > 2 * 1024 * 1024
    assert upload(client, first_missing(rt), big).status_code == 302
    token = csrf_token(client, "/admin/prompts")
    other = client.post(
        "/admin/reports/1/note", data={"csrf_token": token, "note": "x" * (1100 * 1024)}
    )
    assert other.status_code == 413


def test_pins_for_recording_by_phone(app: Flask, rt: Runtime) -> None:
    admin = sign_in(app, "admin@example.org", "admin")
    sign_in(app, "recorder@example.org", "agent", stakeholder="bko-police-c4")
    with Session(rt.engine) as s:
        recorder = s.exec(select(User).where(User.email == "recorder@example.org")).one()
    token = csrf_token(admin, "/admin/prompts")
    weak = admin.post(
        "/admin/prompts/pins", data={"csrf_token": token, "user": recorder.id, "pin": "1234"}
    )
    assert weak.status_code == 400
    saved = admin.post(
        "/admin/prompts/pins", data={"csrf_token": token, "user": recorder.id, "pin": "4719"}
    )
    assert saved.status_code == 302
    assert "recorder@example.org" in admin.get("/admin/prompts").get_data(as_text=True)
    coordinator = sign_in(app, "coord@example.org", "coordinator", area="ML-BKO")
    ctoken = csrf_token(coordinator, "/admin/prompts")
    refused = coordinator.post(
        f"/admin/prompts/pins/{recorder.id}/clear", data={"csrf_token": ctoken}
    )
    assert refused.status_code == 403
    cleared = admin.post(f"/admin/prompts/pins/{recorder.id}/clear", data={"csrf_token": token})
    assert cleared.status_code == 302
    with Session(rt.engine) as s:
        assert s.exec(select(PromptRecorder)).all() == []
        actions = [a.action for a in s.exec(select(AuditEvent)).all()]
    assert "prompt_pin_cleared" in actions
