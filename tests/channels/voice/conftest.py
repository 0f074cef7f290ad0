"""Fixtures for the voice channel: a Twilio-configured app, a small area tree, fixture audio.

The locales are the shipped texts copied into the test's folder, plus a few recorded Bambara
prompts (tiny WAV files in ``fixtures/bm/audio``) so that calls in Bambara play recordings where
they exist and fall back where they do not.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from citoyen.channels import twilio_voice
from citoyen.db import write_session
from citoyen.models import Area
from citoyen.runtime import Runtime
from citoyen.web import create_app
from tests.channels.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL
from tests.channels.voice.helpers import CALLER

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).parent / "fixtures"

# (code, name, level, parent code): the Bamako district and one region down to its communes.
AREAS = [
    ("ML-BKO", "Bamako", "district", None),
    ("bko-c1", "Commune I", "commune", "ML-BKO"),
    ("bko-c2", "Commune II", "commune", "ML-BKO"),
    ("ML-4", "Ségou", "region", None),
    ("segou-niono", "Niono", "cercle", "ML-4"),
    ("niono-niono", "Niono", "commune", "segou-niono"),
    ("niono-pogo", "Pogo", "commune", "segou-niono"),
]


@pytest.fixture(scope="session")
def locales_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy per test session, so the validated bundle is loaded once (tests never edit it)."""
    target = tmp_path_factory.mktemp("voice") / "locales"
    target.mkdir()
    for path in (ROOT / "locales").glob("*.yaml"):
        shutil.copy(path, target / path.name)
    shutil.copytree(FIXTURES / "bm", target / "bm")
    return target


@pytest.fixture(scope="session")
def forced_flows_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped flows with Bambara forced onto the voice language menu
    (``languages.voice_forced``): its prompts are only partly recorded here, and these tests
    are about how such a call falls back. test_languages_offered.py runs without it."""
    target = tmp_path_factory.mktemp("voice-flows") / "flows"
    shutil.copytree(ROOT / "flows", target)
    shutil.copytree(ROOT / "config", target.parent / "config")
    settings = target.parent / "config" / "settings.yaml"
    text = settings.read_text(encoding="utf-8")
    marker = "  voice_forced: []\n"
    assert marker in text
    settings.write_text(text.replace(marker, "  voice_forced: [bm]\n", 1), "utf-8")
    return target


@pytest.fixture
def voice_settings(settings, locales_dir: Path, forced_flows_dir: Path):  # type: ignore[no-untyped-def]
    return settings.model_copy(
        update={
            "flows_dir": forced_flows_dir,
            "locales_dir": locales_dir,
            "public_url": PUBLIC_URL,
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
        }
    )


@pytest.fixture
def app(voice_settings) -> Flask:  # type: ignore[no-untyped-def]
    return create_app({"TESTING": True, "SETTINGS": voice_settings})


@pytest.fixture
def runtime(app: Flask) -> Runtime:
    runtime = app.extensions["citoyen"]
    with write_session(runtime.engine) as session:
        ids: dict[str, int] = {}
        for code, name, level, parent in AREAS:
            area = Area(code=code, name=name, level=level, parent_id=ids.get(parent or ""))
            session.add(area)
            session.flush()
            ids[code] = area.id
    return runtime


@pytest.fixture
def client(app: Flask, runtime: Runtime) -> FlaskClient:
    return app.test_client()


@pytest.fixture(autouse=True)
def _missing_prompts_logged_afresh() -> None:
    """Each test sees the warning for a prompt without a recording (logged once in a while per
    process: twilio_voice.MISSING_LOGGED_EVERY)."""
    twilio_voice._missing_logged.clear()


@pytest.fixture(autouse=True)
def _caller_never_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every voice test fails if the caller's number shows up in any log record."""
    caplog.set_level(logging.DEBUG)
    yield
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.get_records("call"))
    for needle in (CALLER, CALLER.removeprefix("+"), CALLER[-8:]):
        assert needle not in text, "the caller's number was logged"
