"""The step computed before any lock (services/unlocked_step.py): it holds no lock while the
engine steps, and whenever the rows change between its read and its write, the locking path
redoes the message on the new rows, so the outcome is the same as one message after the other."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from citoyen import engine as flow_engine
from citoyen.db import write_session
from citoyen.engine.types import Effect, Input
from citoyen.models import Contact, Conversation, Message
from citoyen.runtime import Runtime
from citoyen.services import unlocked_step
from citoyen.services.conversations import ConversationService, Inbound
from citoyen.services.effects import CONTACT_EFFECTS, apply, contact_values
from citoyen.services.setup import ensure_ready

NUMBER = "+22376000020"
OTHER = "+22376000021"


@pytest.fixture
def runtime(settings) -> Runtime:
    rt = Runtime(settings)
    ensure_ready(rt)
    return rt


def send(rt: Runtime, value: str, pid: str, address: str = NUMBER):
    return rt.conversations.handle(Inbound("sms", address, Input("text", value), pid))


def during_next_step(monkeypatch: pytest.MonkeyPatch, action: Callable[[], None]) -> list[str]:
    """Run ``action`` while the unlocked path's next engine step is being computed (once)."""
    done: list[str] = []

    def step(*args: Any, **kwargs: Any) -> Any:
        if not done:
            done.append("ran")
            action()
        return flow_engine.step(*args, **kwargs)

    monkeypatch.setattr(unlocked_step, "flow_engine", SimpleNamespace(step=step))
    return done


def conversation_of(rt: Runtime) -> Conversation:
    with Session(rt.engine) as s:
        return s.exec(select(Conversation).order_by(Conversation.id)).first()


def test_the_engine_steps_while_another_transaction_writes_the_same_contact(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    send(runtime, "Bonjour", "SM1")
    with Session(runtime.engine) as s:
        contact_id = s.exec(select(Contact.id)).one()
    finished = threading.Event()

    def write_contact() -> None:
        with write_session(runtime.engine) as s:
            s.connection().execute(
                sa.update(Contact).where(Contact.id == contact_id).values(discreet=True)
            )
        finished.set()

    def other_writer() -> None:
        # On the locking path this thread would wait for the lock held by the step that is
        # waiting for it: the step must hold none.
        worker = threading.Thread(target=write_contact, daemon=True)
        worker.start()
        worker.join(timeout=10)

    ran = during_next_step(monkeypatch, other_writer)
    reply = send(runtime, "1", "SM2")
    assert ran and finished.is_set()
    assert reply.status == "waiting" and not reply.duplicate
    conversation = conversation_of(runtime)
    assert conversation.node == "category"
    with Session(runtime.engine) as s:
        assert s.get(Contact, contact_id).discreet is True


def test_a_conversation_moved_on_meanwhile_gets_the_message_on_its_new_state(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same three answers one after the other, from another sender: the expected outcome.
    for i, text in enumerate(["Bonjour", "1", "1"]):
        send(runtime, text, f"SMx{i}", address=OTHER)
    send(runtime, "Bonjour", "SM1")
    # "1" (French) arrives; while it is being stepped, a second "1" of the same sender is
    # handled completely. The first then finds the conversation changed and is redone on it.
    ran = during_next_step(monkeypatch, lambda: send(runtime, "1", "SM3"))
    send(runtime, "1", "SM2")
    assert ran
    with Session(runtime.engine) as s:
        rows = s.exec(select(Conversation).order_by(Conversation.id)).all()
        expected, got = rows[0], rows[1]
        inbound = s.exec(
            select(Message.provider_id).where(
                Message.direction == "in", Message.contact_id == got.contact_id
            )
        ).all()
    assert sorted(inbound) == ["SM1", "SM2", "SM3"]
    assert got.node == expected.node and got.node != "category"
    assert got.state["answers"] == expected.state["answers"]


def test_a_contact_blocked_meanwhile_is_not_stepped(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    send(runtime, "Bonjour", "SM1")
    before = conversation_of(runtime)

    def block() -> None:
        with write_session(runtime.engine) as s:
            s.connection().execute(sa.update(Contact).values(blocked=True))

    ran = during_next_step(monkeypatch, block)
    reply = send(runtime, "1", "SM2")
    assert ran
    assert reply.status == "blocked" and reply.prompts == []
    after = conversation_of(runtime)
    assert (after.node, after.updated_at) == (before.node, before.updated_at)


def test_a_provider_retry_is_answered_without_writing(runtime: Runtime) -> None:
    send(runtime, "Bonjour", "SM1")
    first = send(runtime, "1", "SM2")
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_rest) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement.split(None, 1)[0].upper())

    sa.event.listen(runtime.engine, "before_cursor_execute", record)
    try:
        again = send(runtime, "1", "SM2")
    finally:
        sa.event.remove(runtime.engine, "before_cursor_execute", record)
    assert again.duplicate and again.prompts == first.prompts
    assert statements and set(statements) <= {"SELECT", "BEGIN"}, statements


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
def test_contact_effects_set_what_apply_sets(effect: Effect) -> None:
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


def test_two_first_messages_at_once_open_one_conversation(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A known contact whose conversation ended: the next message starts a new one.
    send(runtime, "Bonjour", "SM1")
    with write_session(runtime.engine) as s:
        s.connection().execute(sa.update(Conversation).values(status="completed"))
    # While "SIGNALER" is being stepped, another "SIGNALER" of the same sender starts a
    # conversation: the first finds it at write time and continues it instead of opening a
    # second one.
    ran = during_next_step_start(monkeypatch, lambda: send(runtime, "SIGNALER", "SM3"))
    send(runtime, "SIGNALER", "SM2")
    assert ran
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


def during_next_step_start(
    monkeypatch: pytest.MonkeyPatch, action: Callable[[], None]
) -> list[str]:
    """Run ``action`` while the unlocked path computes its next conversation start (once)."""
    done: list[str] = []
    real = ConversationService._first_step

    def first_step(self: ConversationService, *args: Any, **kwargs: Any) -> Any:
        if not done:
            done.append("ran")
            action()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ConversationService, "_first_step", first_step)
    return done


def test_two_first_messages_of_a_new_sender_make_one_contact(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # While a new sender's first message is being stepped, their second one is handled: the
    # first then fails on the address hash, is retried and continues the conversation.
    send(runtime, "SIGNALER", "SM0", address=OTHER)  # the flow's version is stored by now
    ran = during_next_step_start(monkeypatch, lambda: send(runtime, "Bonjour", "SM2"))
    send(runtime, "SIGNALER", "SM1")
    assert ran
    with Session(runtime.engine) as s:
        contacts = s.exec(select(Contact)).all()
        conversations = s.exec(select(Conversation)).all()
        inbound = s.exec(select(Message.provider_id).where(Message.direction == "in")).all()
    mine = [c for c in contacts if runtime.vault.decrypt(c.address_enc) == f"tel:{NUMBER}"]
    assert len(contacts) == 2 and len(mine) == 1
    assert len([c for c in conversations if c.contact_id == mine[0].id]) == 1
    assert sorted(inbound) == ["SM0", "SM1", "SM2"]
