"""One conversation step, the same on SQLite and PostgreSQL: messages of one sender that arrive
together are stepped one after the other, each on the state the other left, and a step that
conflicts with a concurrent one (the same sender's first message) is run again and then sees
the winner's rows. The outcome is that of the messages handled one after the other."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlmodel import Session, select

from citoyen import engine as flow_engine
from citoyen.engine.types import Effect, Input
from citoyen.messages.types import Inbound
from citoyen.models import (
    Contact,
    Conversation,
    InboundThrottle,
    Message,
    Outbox,
    QueueEntry,
    Report,
)
from citoyen.runtime import Runtime
from citoyen.services import conversations
from citoyen.services.conversations import InboundLimit
from citoyen.services.effects import CONTACT_EFFECTS, apply, contact_values
from citoyen.services.setup import ensure_ready

NUMBER = "+22376000020"
OTHER = "+22376000021"
# A whole report by SMS (French): the tenth message confirms it and makes the report.
DESCRIPTION = "Des hommes armés ont volé des motos près du marché hier soir"
REPORT = ["SIGNALER", "1", "2", "1", "1", "1", "2", DESCRIPTION, "1", "1"]


@pytest.fixture
def runtime(settings) -> Runtime:  # type: ignore[no-untyped-def]
    rt = Runtime(settings)
    ensure_ready(rt)
    return rt


def send(rt: Runtime, value: str, pid: str, address: str = NUMBER) -> Any:
    return rt.conversations.handle(Inbound("sms", address, Input("text", value), pid))


def while_stepping(
    monkeypatch: pytest.MonkeyPatch, name: str, action: Callable[[], Any]
) -> list[Any]:
    """Start ``action`` in a thread while the next step's engine call ``name`` (``step`` or
    ``start``) runs, and give it half a second to reach the database before the step goes on.
    Returns what the action returned (after the step that started it committed)."""
    real = getattr(flow_engine, name)
    results: list[Any] = []
    threads: list[threading.Thread] = []

    def engine_call(*args: Any, **kwargs: Any) -> Any:
        if not threads:
            thread = threading.Thread(target=lambda: results.append(action()), daemon=True)
            threads.append(thread)
            thread.start()
            time.sleep(0.5)
        return real(*args, **kwargs)

    fake = SimpleNamespace(step=flow_engine.step, start=flow_engine.start)
    setattr(fake, name, engine_call)
    monkeypatch.setattr(conversations, "flow_engine", fake)
    results.append(threads)
    return results


def joined(results: list[Any]) -> list[Any]:
    threads = results[0]
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    return results[1:]


def conversation_of(rt: Runtime, contact_index: int = 0) -> Conversation:
    with Session(rt.engine) as s:
        contact = s.exec(select(Contact).order_by(Contact.id)).all()[contact_index]
        return s.exec(
            select(Conversation)
            .where(Conversation.contact_id == contact.id)
            .order_by(Conversation.id.desc())
        ).first()


def test_two_messages_of_one_sender_at_once_are_stepped_one_after_the_other(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same three answers one after the other, from another sender: the expected outcome.
    for i, text in enumerate(["Bonjour", "1", "1"]):
        send(runtime, text, f"SMx{i}", address=OTHER)
    send(runtime, "Bonjour", "SM1")
    # While "1" (French) is being stepped, a second "1" of the same sender arrives: it waits,
    # then is stepped on the state the first left.
    results = while_stepping(monkeypatch, "step", lambda: send(runtime, "1", "SM3"))
    first = send(runtime, "1", "SM2")
    (second,) = joined(results)
    assert not first.duplicate and not second.duplicate
    expected, got = conversation_of(runtime, 0), conversation_of(runtime, 1)
    assert got.node == expected.node and got.node != "category"
    assert got.state["answers"] == expected.state["answers"]
    with Session(runtime.engine) as s:
        inbound = s.exec(
            select(Message.provider_id)
            .where(Message.direction == "in", Message.contact_id == got.contact_id)
            .order_by(Message.id)
        ).all()
    assert inbound == ["SM1", "SM2", "SM3"]


def test_a_copy_of_a_message_arriving_during_its_step_gets_the_same_reply(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    send(runtime, "Bonjour", "SM1")
    results = while_stepping(monkeypatch, "step", lambda: send(runtime, "1", "SM2"))
    first = send(runtime, "1", "SM2")
    (copy,) = joined(results)
    assert [first.duplicate, copy.duplicate].count(True) == 1
    assert first.prompts == copy.prompts
    with Session(runtime.engine) as s:
        assert len(s.exec(select(Message).where(Message.provider_id == "SM2")).all()) == 1


def test_two_first_messages_of_a_known_sender_at_once_open_one_conversation(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A known contact whose conversation ended: the next message starts a new one.
    send(runtime, "Bonjour", "SM1")
    with Session(runtime.engine) as s:
        for conversation in s.exec(select(Conversation)).all():
            conversation.status = "completed"
            s.add(conversation)
        s.commit()
    # Plain messages: a flow's keyword (SIGNALER) would rightly start its flow afresh each time.
    results = while_stepping(monkeypatch, "start", lambda: send(runtime, "Bonsoir", "SM3"))
    send(runtime, "Bonjour", "SM2")
    joined(results)
    with Session(runtime.engine) as s:
        open_ones = s.exec(
            select(Conversation).where(Conversation.status.in_(("active", "waiting")))
        ).all()
        inbound = s.exec(
            select(Message.provider_id, Message.conversation_id).where(Message.direction == "in")
        ).all()
    assert len(open_ones) == 1
    assert {pid: cid for pid, cid in inbound if pid != "SM1"} == {
        "SM2": open_ones[0].id,
        "SM3": open_ones[0].id,
    }


def test_two_first_messages_of_a_new_sender_at_once_make_one_contact(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    send(runtime, "SIGNALER", "SM0", address=OTHER)  # the flow's version is stored by now
    results = while_stepping(monkeypatch, "start", lambda: send(runtime, "Bonjour", "SM2"))
    send(runtime, "SIGNALER", "SM1")
    joined(results)
    with Session(runtime.engine) as s:
        contacts = s.exec(select(Contact)).all()
        all_conversations = s.exec(select(Conversation)).all()
        inbound = s.exec(select(Message.provider_id).where(Message.direction == "in")).all()
    mine = [c for c in contacts if runtime.vault.decrypt(c.address_enc) == f"tel:{NUMBER}"]
    assert len(contacts) == 2 and len(mine) == 1
    assert len([c for c in all_conversations if c.contact_id == mine[0].id]) == 1
    assert sorted(inbound) == ["SM0", "SM1", "SM2"]


def test_a_report_step_raced_by_the_same_answer_makes_one_report(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i, text in enumerate(REPORT[:-1]):
        send(runtime, text, f"SM{i}")
    # While the confirmation is being stepped, a second confirmation (another provider id) of
    # the same sender arrives: it is stepped after, on the closed conversation.
    results = while_stepping(monkeypatch, "step", lambda: send(runtime, REPORT[-1], "SM-again"))
    reply = send(runtime, REPORT[-1], "SM9")
    joined(results)
    assert reply.params.get("reference")
    with Session(runtime.engine) as s:
        assert len(s.exec(select(Report)).all()) == 1
        inbound = s.exec(select(Message.provider_id).where(Message.direction == "in")).all()
    assert sorted(inbound) == sorted([f"SM{i}" for i in range(10)] + ["SM-again"])


def test_a_report_step_over_the_sender_limit_leaves_no_report(runtime: Runtime) -> None:
    runtime.conversations.limit = InboundLimit(messages=len(REPORT) - 1)
    for i, text in enumerate(REPORT[:-1]):
        send(runtime, text, f"SM{i}")
    before = conversation_of(runtime)
    reply = send(runtime, REPORT[-1], "SM9")
    assert reply.status == "throttled"
    with Session(runtime.engine) as s:
        assert s.exec(select(Report)).all() == []
        assert s.exec(select(QueueEntry)).all() == []
        assert s.exec(select(Outbox)).all() == []
        assert len(s.exec(select(InboundThrottle)).all()) == 1
    after = conversation_of(runtime)
    assert (after.node, after.status, after.updated_at) == (
        before.node,
        before.status,
        before.updated_at,
    )


def test_last_seen_is_the_time_of_the_latest_message_on_every_database(runtime: Runtime) -> None:
    start = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def at(seconds: int, text: str, pid: str) -> datetime:
        runtime.conversations.handle(
            Inbound("sms", NUMBER, Input("text", text), pid), now=start + timedelta(seconds=seconds)
        )
        with Session(runtime.engine) as s:
            return s.exec(select(Contact.last_seen_at)).one()

    for seconds, text in [(0, "Bonjour"), (20, "1"), (50, "1"), (90, "1")]:
        assert at(seconds, text, f"SM{seconds}") == start + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "effect",
    [
        Effect("set_language", {"language": "bm"}),
        Effect("set_consent", {"consent": True}),
        Effect("set_consent", {"consent": False}),
        Effect("opt_out", {}),
        Effect("opt_in", {}),
        Effect("set_discreet", {"discreet": True}),
    ],
)
def test_contact_effects_set_what_they_say(effect: Effect) -> None:
    assert effect.kind in CONTACT_EFFECTS
    contact = Contact(
        address_hash="h", address_enc="e", channel="tel", alias=1, survey_consent=True
    )
    before = contact.model_dump()
    apply(None, [effect], contact=contact, conversation=None, flow=None, channel="sms", now=None)  # type: ignore[arg-type]
    after = contact.model_dump()
    changed = {k: v for k, v in after.items() if before[k] != v}
    expected = contact_values(effect)
    assert changed == {k: v for k, v in expected.items() if before[k] != v}
    assert all(after[k] == v for k, v in expected.items())
