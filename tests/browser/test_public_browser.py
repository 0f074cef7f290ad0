"""The public pages in real headless Chromium, as a basic phone sees them: 390 px wide, in
French and in Bambara, without signing in; the weight of everything a page loads, no request
elsewhere, nothing wider than the screen, the chart drawn, and the open data downloaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from citoyen.services.publication.figures import clear_cache
from tests.browser.conftest import LiveAdmin, shot
from tests.web.test_public import NOW, seed

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser: Any, live: LiveAdmin) -> Any:
    clear_cache()
    live.app.config["PUBLIC_CLOCK"] = lambda: NOW
    context = browser.new_context(base_url=live.base_url, viewport=PHONE, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()
    clear_cache()


@pytest.mark.parametrize("lang", ["fr", "bm"])
def test_public_pages_on_a_phone(phone: Any, live: LiveAdmin, lang: str) -> None:
    seed(live.runtime)
    for path, name in (
        (f"/public/?lang={lang}", "national"),
        (f"/public/area/ML-BKO?lang={lang}", "bamako"),
        (f"/public/area/ML-BKO.commune-iv?lang={lang}", "commune-iv"),
        (f"/public/how?lang={lang}", "how"),
    ):
        loaded: list[tuple[str, int]] = []

        def handler(r: Any, loaded: list[tuple[str, int]] = loaded) -> None:
            loaded.append((r.url, r.sizes()["responseBodySize"]))

        phone.on("requestfinished", handler)
        response = phone.goto(path)
        phone.wait_for_load_state("networkidle")
        phone.remove_listener("requestfinished", handler)
        assert response.status == 200, path
        assert phone.get_attribute("html", "lang") == lang
        weight = sum(size for _url, size in loaded)
        assert 0 < weight < 100 * 1024, (path, loaded)
        assert all(url.startswith(live.base_url) for url, _size in loaded), loaded
        # Nothing wider than the phone: wide tables scroll inside their box.
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], path
        shot(phone, f"public-{name}-{lang}")
    # The commune page (still open before "how"): its chart and its numbers.
    phone.goto(f"/public/area/ML-BKO.commune-iv?lang={lang}")
    assert phone.locator("svg[role=img] rect").count() == 4  # January to April (the clock)
    assert phone.locator("#by-category tbody tr").count() >= 2
    total = "Kunnafoni minnu sera" if lang == "bm" else "Signalements reçus"
    assert total in phone.inner_text("#reports h2")
    with phone.expect_download() as download:
        phone.click("#download a[href$='.csv']")
    body = Path(download.value.path()).read_text(encoding="utf-8")
    assert body.startswith("# Licence") and "theft" in body
