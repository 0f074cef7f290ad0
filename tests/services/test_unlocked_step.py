"""The step computed before any lock (services/unlocked_step.py): it holds no lock while the
engine steps, and whenever the rows change between its read and its write, the locking path
redoes the message on the new rows, so the outcome is the same as one message after the other."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from citoyen import engine as flow_engine
from citoyen.db import write_session
from citoyen.engine.types import Effect, Input
from citoyen.models import (
    Contact,
    Conversation,
    InboundThrottle,
    Message,
    Outbox,
    QueueEntry,
    Report,
    ReportEvent,
)
from citoyen.runtime import Runtime
from citoyen.services import unlocked_step
from citoyen.services.conversations import ConversationService, Inbound, InboundLimit, ReplyHook
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


@pytest.mark.parametrize(
    "earlier",
    [
        pytest.param(["Bonjour"], id="step-sets-the-language"),
        # A step that sets nothing on the contact, seen a moment ago: its row is not written.
        pytest.param(["Bonjour", "1"], id="step-sets-nothing"),
    ],
)
def test_a_contact_blocked_meanwhile_is_not_stepped(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, earlier: list[str]
) -> None:
    for i, text in enumerate(earlier):
        send(runtime, text, f"SM-{i}")
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


# A whole report by SMS (French): the tenth message confirms it and makes the report.
DESCRIPTION = "Des hommes armés ont volé des motos près du marché hier soir"
REPORT = ["SIGNALER", "1", "2", "1", "1", "1", "2", DESCRIPTION, "1", "1"]


def _report_rows(rt: Runtime, address_index: int) -> dict[str, Any]:
    """What the report of the ``address_index``-th contact left in the database, without ids,
    references and times (which differ between two contacts by construction)."""
    with Session(rt.engine) as s:
        contact = s.exec(select(Contact).order_by(Contact.id)).all()[address_index]
        (report,) = s.exec(select(Report).where(Report.contact_id == contact.id)).all()
        conversation = s.get(Conversation, report.conversation_id)
        entries = s.exec(select(QueueEntry).where(QueueEntry.report_id == report.id)).all()
        events = s.exec(select(ReportEvent).where(ReportEvent.report_id == report.id)).all()
        outbox = s.exec(select(Outbox.kind).where(Outbox.contact_id == contact.id)).all()
        messages = s.exec(
            select(Message.direction, Message.kind)
            .where(Message.contact_id == contact.id)
            .order_by(Message.id)
        ).all()
        skip = {"id", "reference", "contact_id", "conversation_id", "created_at", "updated_at"}
        return {
            "report": {k: v for k, v in report.model_dump().items() if k not in skip},
            "contact_area": contact.area_id,
            "conversation": (conversation.node, conversation.status, conversation.menu),
            "answers": conversation.state["answers"],
            "entries": sorted(
                (e.stakeholder_id, e.via, e.status, e.chain, e.escalation_level, e.rule_line)
                for e in entries
            ),
            "events": sorted((e.kind, e.stakeholder_id or 0) for e in events),
            "outbox": sorted(outbox),
            "messages": messages,
        }


def test_a_report_step_is_written_unlocked_as_the_locking_path_writes_it(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The expected outcome: the same conversation with every step on the locking path.
    with monkeypatch.context() as m:
        m.setattr(unlocked_step, "try_step", lambda *_args: None)
        for i, text in enumerate(REPORT):
            locked = send(runtime, text, f"SMx{i}", address=OTHER)
    for i, text in enumerate(REPORT[:-1]):
        send(runtime, text, f"SM{i}")

    def no_lock(*_args: Any) -> Any:
        raise AssertionError("the report step went to the locking path")

    monkeypatch.setattr(ConversationService, "_handle", no_lock)
    reply = send(runtime, REPORT[-1], "SM9")
    expected, got = _report_rows(runtime, 0), _report_rows(runtime, 1)
    assert got == expected
    assert got["entries"] and got["contact_area"] is not None
    with Session(runtime.engine) as s:
        report = s.exec(select(Report).order_by(Report.id.desc())).first()
        stored = s.exec(select(Message.reply).where(Message.provider_id == "SM9")).one()
    assert reply.params["reference"] == report.reference
    assert stored["params"]["reference"] == report.reference
    assert reply.prompts == locked.prompts and reply.status == locked.status
    assert {k: v for k, v in reply.params.items() if k != "reference"} == {
        k: v for k, v in locked.params.items() if k != "reference"
    }


def test_a_report_step_raced_by_the_same_answer_makes_one_report(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i, text in enumerate(REPORT[:-1]):
        send(runtime, text, f"SM{i}")
    # While the confirmation is being stepped, a second confirmation of the same sender is
    # handled completely: the first is then redone on the closed conversation.
    ran = during_next_step(monkeypatch, lambda: send(runtime, REPORT[-1], "SM-again"))
    send(runtime, REPORT[-1], "SM9")
    assert ran
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


def test_last_seen_is_kept_to_the_minute_on_sqlite(runtime: Runtime) -> None:
    start = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def at(seconds: int, text: str, pid: str) -> datetime:
        runtime.conversations.handle(
            Inbound("sms", NUMBER, Input("text", text), pid), now=start + timedelta(seconds=seconds)
        )
        with Session(runtime.engine) as s:
            return s.exec(select(Contact.last_seen_at)).one()

    assert at(0, "Bonjour", "SM1") == start
    assert at(20, "1", "SM2") == start + timedelta(seconds=20)  # sets the language
    # Sets nothing, 30 s later: on SQLite the contact's row is not written; on PostgreSQL it is
    # (its lock orders the sender's messages), in the same statement as the rest.
    kept = 20 if runtime.engine.dialect.name == "sqlite" else 50
    assert at(50, "1", "SM3") == start + timedelta(seconds=kept)
    assert at(90, "1", "SM4") == start + timedelta(seconds=90)  # a minute after: written


@pytest.mark.parametrize("locked", [False, True], ids=["unlocked", "locking-path"])
def test_steps_stamped_with_the_same_time_still_move_updated_at_forward(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, locked: bool
) -> None:
    """The unlocked write checks ``updated_at`` is still the one it read: a step that left it
    as it was (same clock reading) would let a concurrent step computed on the old state in."""
    if locked:
        monkeypatch.setattr(unlocked_step, "try_step", lambda *_args: None)
    t0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    stamps = []
    for i, text in enumerate(["SIGNALER", "1", "2"]):
        runtime.conversations.handle(Inbound("sms", NUMBER, Input("text", text), f"SM{i}"), now=t0)
        stamps.append(conversation_of(runtime).updated_at)
    assert stamps == [t0, t0 + timedelta(microseconds=1), t0 + timedelta(microseconds=2)]


def test_a_reply_hook_runs_only_for_the_replies_it_has_work_for(runtime: Runtime) -> None:
    """A ``ReplyHook`` (the voice step's) is called for the replies it says it needs, on every
    path, and its step is stored the same either way."""
    calls: list[str] = []

    def run(session: Session, reply: Any, contact_id: int) -> None:
        calls.append(reply.status)

    hook = ReplyHook(run, needed=lambda reply: reply.status == "completed")
    for i, text in enumerate(REPORT):
        runtime.conversations.handle(
            Inbound("sms", NUMBER, Input("text", text), f"SM{i}"), on_reply=hook
        )
    assert calls == ["completed"]  # the last step only: it completed the report
    with Session(runtime.engine) as s:
        assert len(s.exec(select(Report)).all()) == 1
        inbound = s.exec(select(Message.provider_id).where(Message.direction == "in")).all()
    assert sorted(inbound) == sorted(f"SM{i}" for i in range(len(REPORT)))
