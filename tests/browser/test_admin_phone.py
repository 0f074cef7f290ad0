"""The queue and the report page on a phone: 390 px wide (and 360 px), no horizontal scrolling.

Moderators work from their phones. Each page is loaded in real Chromium at the phone's width and
the document must not be wider than the window; the elements that stick out are named when it
is. A screenshot of each is written to test-output/screenshots/.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from citoyen.db import write_session
from citoyen.services.users import create_user
from tests.browser.conftest import LiveAdmin, shot
from tests.browser.test_admin_browser import _login as sign_in
from tests.routing.support import make_report

PASSWORD = "correct horse battery"

WIDER_THAN_THE_WINDOW = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.right > width + 1) {
      out.push(el.tagName.toLowerCase() + (el.className ? '.' + el.className : '') + ' ' + Math.round(box.right));
    }
  }
  return {scroll: document.documentElement.scrollWidth, width, out: out.slice(0, 8)};
}"""


def _fits(page: Any) -> None:  # type: ignore[no-untyped-def]
    found = page.evaluate(WIDER_THAN_THE_WINDOW)
    assert found["scroll"] <= found["width"], found


@pytest.mark.parametrize("width", [390, 360])
def test_queue_and_report_fit_a_phone(browser, live: LiveAdmin, width: int) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    report = make_report(
        live.runtime, category="violence", area="ML-BKO.commune-iv", channel="voice", now=now
    )
    make_report(live.runtime, category="armed_attack", area="ML-BKO.commune-iv", now=now)
    with write_session(live.runtime.engine) as session:
        create_user(session, "admin@example.org", "admin", PASSWORD, None)
    context = browser.new_context(
        base_url=live.base_url,
        locale="fr-FR",
        viewport={"width": width, "height": 800},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        sign_in(page, "admin@example.org")  # with the second factor administrators must have
        page.goto("/admin/")
        _fits(page)
        shot(page, f"phone-{width}-queue")
        page.goto(f"/admin/reports/{report.id}")
        assert page.locator("select[name=stakeholder] optgroup").count() > 1
        _fits(page)
        shot(page, f"phone-{width}-report")
    finally:
        context.close()
