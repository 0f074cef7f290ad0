"""Browser tests: the admin served by a real HTTP server, driven by Playwright in Chromium.

Chromium is Debian's (``/usr/bin/chromium``, or ``CITOYEN_CHROMIUM``); Playwright never
downloads a browser. Without Chromium these tests skip with the reason, except when
``CITOYEN_REQUIRE_BROWSER=1`` (set by ``.ci/run``), where they fail: CI always runs them.
Screenshots of the key pages are written to ``test-output/screenshots/`` for review.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from citoyen.web import create_app

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("CITOYEN_TEST_OUTPUT", ROOT / "test-output")) / "screenshots"
REQUIRE = os.environ.get("CITOYEN_REQUIRE_BROWSER") == "1"


def chromium_path() -> str | None:
    for candidate in (
        os.environ.get("CITOYEN_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def _unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason} (CITOYEN_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module. Playwright's sync API runs an event loop in this thread
    while it is open: it must be closed before other tests (asyncio.run in the Telegram tests)
    run, hence the module scope rather than the session."""
    path = chromium_path()
    if path is None:
        _unavailable("Chromium not found (apt-get install chromium, or set CITOYEN_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(params=["sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Browser tests exercise the pages; the database paths are covered by tests/web."""
    template = request.getfixturevalue("_sqlite_template")
    path = tmp_path / "citoyen.db"
    shutil.copy(template, path)
    yield f"sqlite:///{path}"


class LiveAdmin:
    def __init__(self, app: Any, base_url: str) -> None:
        self.app = app
        self.base_url = base_url
        self.runtime = app.extensions["citoyen"]


@pytest.fixture
def live(settings: Any) -> Iterator[LiveAdmin]:
    """The real app on a real port of 127.0.0.1, served by werkzeug in a thread."""
    from tests.dialog import ready_runtime

    app = create_app({"SETTINGS": settings})
    ready_runtime(app.extensions["citoyen"].settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LiveAdmin(app, f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def page(browser: Any, live: LiveAdmin) -> Iterator[Any]:
    context = browser.new_context(base_url=live.base_url, locale="fr-FR")
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def shot(page: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
