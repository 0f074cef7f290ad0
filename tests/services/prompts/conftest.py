"""A deployment of the shipped flows and texts in the test's own folders, with a fixture
library of shipped Bambara recordings (the voice channel's fixture WAVs), on SQLite and
PostgreSQL. Flows and locales are copies, so a test may edit a text and reload."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from citoyen.db import write_session
from citoyen.models import User
from citoyen.runtime import Runtime
from citoyen.services import flows

ROOT = Path(__file__).resolve().parents[3]
SHIPPED_BM = ROOT / "tests" / "channels" / "voice" / "fixtures" / "bm"


@pytest.fixture
def deployment(tmp_path: Path) -> tuple[Path, Path]:
    flows_dir = tmp_path / "flows"
    locales_dir = tmp_path / "locales"
    shutil.copytree(ROOT / "flows", flows_dir)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    locales_dir.mkdir()
    for path in (ROOT / "locales").glob("*.yaml"):
        shutil.copy(path, locales_dir / path.name)
    shutil.copytree(SHIPPED_BM, locales_dir / "bm")
    return flows_dir, locales_dir


@pytest.fixture
def runtime(settings, deployment: tuple[Path, Path]) -> Runtime:  # type: ignore[no-untyped-def]
    flows_dir, locales_dir = deployment
    return Runtime(settings.model_copy(update={"flows_dir": flows_dir, "locales_dir": locales_dir}))


def reload(runtime: Runtime) -> None:
    """Read flows and texts again after a test edited them (as a restart would)."""
    flows.clear_cache()
    runtime.__dict__.pop("bundle", None)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture
def staff(runtime: Runtime) -> User:
    with write_session(runtime.engine) as session:
        user = User(email="awa@example.ml", password_hash="x", role="coordinator")
        session.add(user)
        session.flush()
        session.expunge(user)
    return user
