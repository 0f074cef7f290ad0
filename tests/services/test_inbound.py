"""The inbound hot path (citoyen.services.inbound): dedupe, contact lock and the per-sender limit
in two statements, on SQLite and PostgreSQL, under concurrency; the SQLite writer gate; the area
caches the conversation steps use."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, func, select

from citoyen import db
from citoyen.engine.types import Input
from citoyen.messages.types import Inbound, Reply
from citoyen.models import Area, Contact, Message, Report
from citoyen.runtime import Runtime
from citoyen.services.areas.menus import invalidate_area_cache, load_area_context
from citoyen.services.areas.trees import database_area_tree
from citoyen.services.setup import ensure_ready

NUMBER = "+22376000020"
LIMIT = 4
# A whole report in French: the last message (consent) creates the report.
REPORT = ["Bonjour", "1", "2", "1", "1", "2", "Vol de moto devant la mosquée", "1", "2"]
T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.fixture
def runtime(settings) -> Runtime:  # type: ignore[no-untyped-def]
    rt = Runtime(settings.model_copy(update={"inbound_limit": LIMIT}))
    ensure_ready(rt)
    return rt


def send(rt: Runtime, value: str, pid: str | None, now: datetime = T0, number: str = NUMBER):  # type: ignore[no-untyped-def]
    return rt.conversations.handle(Inbound("sms", number, Input("text", value), pid), now=now)


def count(rt: Runtime, model, *where) -> int:  # type: ignore[no-untyped-def]
    with Session(rt.engine) as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


def concurrently(*calls) -> list:  # type: ignore[no-untyped-def]
    """Run the calls in threads released together; their results (or exceptions)."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # pragma: no cover - asserted by the caller
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# --- the per-sender limit ----------------------------------------------------------------------


def test_the_limit_lets_exactly_limit_messages_in(runtime: Runtime) -> None:
    replies = [send(runtime, "Bonjour", f"SM{n}", T0 + timedelta(seconds=n)) for n in range(LIMIT)]
    assert all(r.status != "throttled" for r in replies)
    over = send(runtime, "Bonjour", "SMx", T0 + timedelta(seconds=LIMIT))
    assert over.status == "throttled" and over.prompts == []
    assert count(runtime, Message, Message.direction == "in") == LIMIT


def test_each_message_in_the_limit_has_its_reply_stored_after_it_and_one_over_has_neither(
    runtime: Runtime,
) -> None:
    """The step stores the inbound message and then its outbound reply: the reply follows its
    message, and a message over the limit leaves no reply either."""
    for n in range(LIMIT + 1):
        send(runtime, "Bonjour" if n == 0 else "9", f"SM{n}", T0 + timedelta(seconds=n))
    with Session(runtime.engine) as s:
        rows = s.exec(select(Message).order_by(Message.id)).all()
    assert [(m.direction, m.provider_id) for m in rows] == [
        pair for n in range(LIMIT) for pair in (("in", f"SM{n}"), ("out", None))
    ]
    for inbound, outbound in zip(rows[::2], rows[1::2], strict=True):
        assert outbound.kind == "reply" and outbound.body is None
        assert outbound.conversation_id == inbound.conversation_id is not None
        assert outbound.created_at == inbound.created_at
        assert outbound.reply == {
            "prompts": inbound.reply["prompts"],
            "language": inbound.reply["language"],
        }


def test_the_window_is_sliding_and_its_start_excluded(runtime: Runtime) -> None:
    window = timedelta(seconds=runtime.settings.inbound_window_seconds)
    for n in range(LIMIT):
        send(runtime, "Bonjour", f"SM{n}", T0 + timedelta(seconds=n))
    # The first message is exactly one window old: no longer counted, so one more gets in.
    assert send(runtime, "1", "SMa", T0 + window).status != "throttled"
    assert send(runtime, "1", "SMb", T0 + window).status == "throttled"
    assert count(runtime, Message, Message.direction == "in") == LIMIT + 1


def test_concurrent_messages_of_one_sender_never_pass_the_limit(runtime: Runtime) -> None:
    """The count runs after the contact lock is granted: on PostgreSQL it sees what the
    request that held the lock committed, so two workers cannot both take the last place."""
    for n in range(LIMIT - 2):
        send(runtime, "Bonjour", f"SM{n}", T0 + timedelta(seconds=n))
    later = T0 + timedelta(seconds=30)
    replies = concurrently(*(lambda n=n: send(runtime, "1", f"SMc{n}", later) for n in range(6)))
    assert not [r for r in replies if isinstance(r, Exception)]
    assert sum(r.status != "throttled" for r in replies) == 2
    assert count(runtime, Message, Message.direction == "in") == LIMIT


# --- dedupe ------------------------------------------------------------------------------------


def test_a_retry_writes_nothing_not_even_last_seen(runtime: Runtime) -> None:
    first = send(runtime, "Bonjour", "SM1", T0)
    again = send(runtime, "Bonjour", "SM1", T0 + timedelta(minutes=1))
    assert again.duplicate and again.prompts == first.prompts
    with Session(runtime.engine) as s:
        contact = s.exec(select(Contact)).one()
    assert contact.last_seen_at == T0
    assert count(runtime, Message) == 2  # the message and its reply, once


def test_a_first_message_retried_concurrently_creates_one_contact(runtime: Runtime) -> None:
    replies = concurrently(*(lambda: send(runtime, "Bonjour", "SM-first") for _ in range(4)))
    assert not [r for r in replies if isinstance(r, Exception)]
    assert sum(not r.duplicate for r in replies) == 1
    assert count(runtime, Contact) == 1
    assert count(runtime, Message, Message.provider_id == "SM-first") == 1


def test_the_last_message_of_a_report_delivered_twice_at_once_makes_one_report(settings) -> None:  # type: ignore[no-untyped-def]
    runtime = Runtime(settings)  # the default limit: a whole report fits
    ensure_ready(runtime)
    for i, value in enumerate(REPORT[:-1]):
        send(runtime, value, f"SM{i}")
    replies = concurrently(*(lambda: send(runtime, REPORT[-1], "SM-last") for _ in range(3)))
    assert not [r for r in replies if isinstance(r, Exception)]
    assert sum(not r.duplicate for r in replies) == 1
    references = {r.params.get("reference") for r in replies}
    assert len(references) == 1 and None not in references
    assert count(runtime, Report) == 1
    assert count(runtime, Message, Message.provider_id == "SM-last") == 1


def test_the_step_that_makes_a_report_stores_its_reply_after_its_message(settings) -> None:  # type: ignore[no-untyped-def]
    """The step that creates a report stores the reply with the inbound message and its
    outbound row after it, as every step does."""
    runtime = Runtime(settings)  # the default limit: a whole report fits
    ensure_ready(runtime)
    for i, value in enumerate(REPORT):
        reply = send(runtime, value, f"SM{i}")
    assert reply.params.get("reference") and count(runtime, Report) == 1
    with Session(runtime.engine) as s:
        last_in, last_out = s.exec(select(Message).order_by(Message.id.desc()).limit(2)).all()[::-1]
    assert (last_in.direction, last_in.provider_id) == ("in", f"SM{len(REPORT) - 1}")
    assert (last_out.direction, last_out.kind, last_out.body) == ("out", "reply", None)
    assert last_out.conversation_id == last_in.conversation_id is not None
    assert last_out.contact_id == last_in.contact_id
    assert last_out.channel == last_in.channel and last_out.created_at == last_in.created_at
    assert last_out.reply == {"prompts": last_in.reply["prompts"], "language": "fr"}
    assert count(runtime, Message, Message.direction == "out") == len(REPORT)


def test_the_reply_is_stored_with_the_inbound_message(runtime: Runtime) -> None:
    reply = send(runtime, "Bonjour", "SM1")
    with Session(runtime.engine) as s:
        message = s.exec(select(Message).where(Message.direction == "in")).one()
    assert message.reply is not None and message.conversation_id == reply.conversation_id
    assert Reply.from_dict(message.reply).prompts == reply.prompts


# --- the SQLite writer gate --------------------------------------------------------------------


def test_writer_gate_serialises_writers_and_is_reentrant(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = db.make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    gate = db.writer_gate(engine)
    assert gate is db.writer_gate(engine)  # one per database file
    order: list[str] = []
    with gate:
        with gate:  # nested in the same thread: no deadlock
            pass

        def other() -> None:
            with gate:
                order.append("other")

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.2)
        order.append("holder")  # the other thread is still waiting
    thread.join(5)
    assert order == ["holder", "other"]
    engine.dispose()


# --- area caches -------------------------------------------------------------------------------


def test_area_menus_may_be_a_few_seconds_stale_for_other_processes_edits(
    runtime: Runtime,
) -> None:
    with Session(runtime.engine) as session:
        first, _ = load_area_context(session, max_age=60)
        kati = session.exec(select(Area).where(Area.code == "ML-2.kati")).one()
        # Another process's edit: nothing in this process hears of it.
        with runtime.engine.begin() as other:
            other.execute(
                sa.insert(Area).values(
                    code="ML-2.kati.zz", name="Aaa", level="commune", parent_id=kati.id
                )
            )
        session.commit()
        assert "ML-2.kati.zz" not in load_area_context(session, max_age=60)[0]
        assert "ML-2.kati.zz" in load_area_context(session)[0]  # max_age 0: checked now
        assert "ML-2.kati.zz" not in first


def test_routing_area_tree_is_built_again_only_after_a_change(runtime: Runtime) -> None:
    with Session(runtime.engine) as session:
        tree = database_area_tree(session)
        assert database_area_tree(session) is tree
        invalidate_area_cache()
        rebuilt = database_area_tree(session)
        assert rebuilt is not tree and len(rebuilt) == len(tree)


def test_areas_written_through_the_orm_here_are_in_the_next_menu_at_once(
    runtime: Runtime,
) -> None:
    with Session(runtime.engine) as session:
        load_area_context(session, max_age=60)
        kati = session.exec(select(Area).where(Area.code == "ML-2.kati")).one()
        with Session(runtime.engine) as editor:  # an edit in this process, not yet committed
            editor.add(Area(code="ML-2.kati.zy", name="Aab", level="commune", parent_id=kati.id))
            editor.flush()
            assert "ML-2.kati.zy" not in load_area_context(session, max_age=60)[0]
            editor.commit()
        session.commit()
        assert "ML-2.kati.zy" in load_area_context(session, max_age=60)[0]
