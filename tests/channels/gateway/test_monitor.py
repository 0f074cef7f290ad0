"""The outbox monitor shows each gateway phone and whether it answers, so staff notice a phone
that stopped (flat battery, no credit) while its messages go out on the others or wait."""

from __future__ import annotations

import re

from citoyen.channels.android_gateway import AndroidGatewaySender
from citoyen.channels.base import OutboundMessage
from citoyen.services.gateway_phones import DatabasePhoneHealth
from tests.channels.gateway.conftest import ORANGE_NUMBER
from tests.web.conftest import sign_in


def phone_row(html: str, name: str) -> str:
    match = re.search(rf'<tr data-phone="{name}" data-state="(\w+)">(.*?)</tr>', html, re.S)
    assert match, f"no row for {name}"
    return match.group(1) + " " + " ".join(match.group(2).split())


def test_a_phone_that_stops_answering_shows_in_the_outbox_monitor(app, runtime, phones, gateway):
    gateway.off.add("orange1")
    sender = AndroidGatewaySender(
        phones, ["orange", "moov"], health=DatabasePhoneHealth(runtime.engine)
    )
    sender.send(OutboundMessage(1, "k1", "sms", f"tel:{ORANGE_NUMBER}", "Bonjour"))

    admin = sign_in(app, "admin@example.org", "admin")
    html = admin.get("/admin/outbox").get_data(as_text=True)
    assert "SMS gateway phones" in html
    orange = phone_row(html, "orange1")
    assert orange.startswith("down ") and "not answering" in orange and "gateway 503" in orange
    assert phone_row(html, "moov1").startswith("up ")
    assert phone_row(html, "telecel1").startswith("unknown ")
    assert ORANGE_NUMBER.removeprefix("+") not in html
