"""Discreet mode: a contact (by keyword) or the deployment chooses neutral wording for the
messages that reach a phone later, when someone else may read it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session

from citoyen.db import write_session
from citoyen.engine.types import Input
from citoyen.messages.types import Inbound
from citoyen.models import Contact, Report
from citoyen.runtime import Runtime
from citoyen.services import queues
from citoyen.services.access import Staff
from citoyen.services.casework import reply_to_citizen
from citoyen.services.contacts import find_contact
from citoyen.services.users import create_user
from tests.dialog import ready_runtime
from tests.routing.support import T0, make_report, outbox

NUMBER = "+22376820001"
# Words that expose a reporter to a relative reading the phone.
EXPOSING = re.compile(
    r"signal|report|police|gendarm|s[eé]curit|danger|attaque|vol\b|violence|kuma",
    re.IGNORECASE,
)


@pytest.fixture(autouse=True)
def _fresh_routers() -> Iterator[None]:
    queues.clear_routers()
    yield
    queues.clear_routers()


def _runtime(settings: Any, **overrides: Any) -> Runtime:
    rt = ready_runtime(settings.model_copy(update=overrides))
    queues.sync_from_settings(rt)
    return rt


def _acknowledge(rt: Runtime, report: Report) -> str:
    with write_session(rt.engine) as session:
        queues.change_status(
            session, session.get(Report, report.id), "acknowledged", now=T0, user_id=None
        )
    [message] = outbox(rt, kind="notification")
    return message.body or ""


def _set(rt: Runtime, report: Report, discreet: bool | None) -> None:
    with write_session(rt.engine) as session:
        session.get(Contact, report.contact_id).discreet = discreet


@pytest.mark.parametrize("lang", ["fr", "en", "bm"])
def test_a_discreet_contact_gets_neutral_notices(settings: Any, lang: str) -> None:
    rt = _runtime(settings)
    report = make_report(rt, category="armed_attack", language=lang, address=NUMBER)
    _set(rt, report, True)
    body = _acknowledge(rt, report)
    catalog = rt.bundle.catalog
    assert body == catalog.render("discreet.notify", lang, {"reference": report.reference})
    assert report.reference in body
    assert not EXPOSING.search(body), body


def test_ordinary_contacts_get_ordinary_notices(settings: Any) -> None:
    rt = _runtime(settings)
    report = make_report(rt, category="theft", language="fr", address=NUMBER)
    body = _acknowledge(rt, report)
    assert body == rt.bundle.catalog.render(
        "notify.acknowledged", "fr", {"reference": report.reference}
    )
    assert EXPOSING.search(body)  # "signalement": what discreet mode avoids


def test_the_deployment_setting_and_a_contacts_own_choice(settings: Any) -> None:
    rt = _runtime(settings, discreet=True)
    report = make_report(rt, category="theft", language="fr", address=NUMBER)
    assert _acknowledge(rt, report).startswith("Citoyen : du nouveau sur votre demande")

    # A contact who chose ordinary messages (NORMAL) gets them even in a discreet deployment.
    other = make_report(rt, category="theft", language="fr", address="+22376820002")
    _set(rt, other, False)
    with write_session(rt.engine) as session:
        queues.change_status(
            session, session.get(Report, other.id), "acknowledged", now=T0, user_id=None
        )
    bodies = [m.body for m in outbox(rt, kind="notification") if m.contact_id == other.contact_id]
    assert bodies == [
        rt.bundle.catalog.render("notify.acknowledged", "fr", {"reference": other.reference})
    ]


def test_staff_replies_in_discreet_mode(settings: Any) -> None:
    rt = _runtime(settings)
    report = make_report(rt, category="theft", language="fr", address=NUMBER)
    _set(rt, report, True)
    with write_session(rt.engine) as session:
        user = create_user(session, "admin@example.ml", "admin", "a-long-password", None)
        staff = Staff.of(user)
    with write_session(rt.engine) as session:
        reply_to_citizen(
            session, staff, session.get(Report, report.id), "Merci, nous passons ce soir.", now=T0
        )
    [message] = outbox(rt, kind="notification")
    assert message.body == f"Citoyen, demande {report.reference} : Merci, nous passons ce soir."


@pytest.mark.parametrize(
    ("word", "lang"), [("DISCRET", "fr"), ("discreet", "en"), ("Dogolen", "bm")]
)
def test_the_citizen_switches_it_on_and_off_by_keyword(settings: Any, word: str, lang: str) -> None:
    rt = _runtime(settings)
    service = rt.conversations
    catalog = rt.bundle.catalog
    with write_session(rt.engine) as session:
        from citoyen.services.contacts import get_or_create_contact

        contact, _ = get_or_create_contact(session, rt.vault, NUMBER, T0)
        contact.language = lang
    reply = service.handle(Inbound("sms", NUMBER, Input("text", word), "SMd1"), now=T0)
    keys = [p.text for p in reply.prompts]
    assert "system.discreet_on" in keys
    assert catalog.has("system.discreet_on", lang)
    with Session(rt.engine) as session:
        assert find_contact(session, rt.vault, NUMBER).discreet is True

    later = T0 + timedelta(minutes=1)
    reply = service.handle(Inbound("sms", NUMBER, Input("text", "normal"), "SMd2"), now=later)
    assert "system.discreet_off" in [p.text for p in reply.prompts]
    with Session(rt.engine) as session:
        assert find_contact(session, rt.vault, NUMBER).discreet is False
