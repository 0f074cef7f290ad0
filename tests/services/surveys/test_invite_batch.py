"""A batch of invitations writes exactly what inviting each contact alone writes, and a run
resumed after a crash invites only the contacts the crash left out."""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from citoyen.db import write_session
from citoyen.engine.types import Input
from citoyen.messages.types import Inbound
from citoyen.models import (
    Contact,
    Conversation,
    FlowVersion,
    Message,
    Outbox,
    SurveyInvitation,
    SurveyRun,
)
from citoyen.services.surveys import invite, runs
from citoyen.services.surveys.invite import Candidate, invite_batch
from citoyen.services.surveys.runs import plan, start_run
from tests.services.surveys.conftest import MORNING, add_contact, definition, invitations

TABLES = (SurveyInvitation, Conversation, Message, Outbox, FlowVersion, Contact)


def _mixed_batch(runtime: Any) -> dict[str, int]:
    """Contacts of every case a batch meets, by name."""
    ids = {
        "fr": add_contact(runtime, "+22376100001", language="fr"),
        "bm": add_contact(runtime, "+22376100002", language="bm"),
        "bm2": add_contact(runtime, "+22376100003", language="bm"),
        "no_language": add_contact(runtime, "+22376100004", language=None),
        "telegram": add_contact(runtime, "telegram:5551001", language="en"),
        "caller": add_contact(runtime, "+22376100005", last_channel="voice"),
        "withdrawn": add_contact(runtime, "+22376100006"),
        "opted_out": add_contact(runtime, "+22376100007"),
        "busy": add_contact(runtime, "+22376100008"),
        "stale": add_contact(runtime, "+22376100009"),
        "already": add_contact(runtime, "+22376100010"),
    }
    handle = runtime.conversations.handle
    # In the middle of a report: not interrupted. A report left open a month ago: closed.
    handle(Inbound("sms", "tel:+22376100008", Input("text", "Bonjour")), MORNING)
    handle(Inbound("sms", "tel:+22376100009", Input("text", "Bonjour")), MORNING - timedelta(30))
    return ids


def _after_draw(runtime: Any, ids: dict[str, int]) -> None:
    """What changes between the draw and the invitation."""
    with write_session(runtime.engine) as session:
        session.get(Contact, ids["withdrawn"]).survey_consent = False
        session.get(Contact, ids["opted_out"]).opted_out = True


def _snapshot(session: Session, before: dict[str, int]) -> dict[str, list]:
    """Every row of the tables an invitation writes, the ids of new rows replaced by what they
    stand for (the contact of an invitation or conversation), sorted."""
    conn = session.connection()
    conversations = Conversation.__table__
    invitations_table = SurveyInvitation.__table__
    new_conv = {
        cid: f"conversation of {contact}"
        for cid, contact in conn.execute(
            sa.select(conversations.c.id, conversations.c.contact_id).where(
                conversations.c.id > before["conversations"]
            )
        )
    }
    new_inv = {
        iid: f"invitation of {contact}"
        for iid, contact in conn.execute(
            sa.select(invitations_table.c.id, invitations_table.c.contact_id).where(
                invitations_table.c.id > before["survey_invitations"]
            )
        )
    }

    def canon(table: str, row: dict[str, Any]) -> dict[str, Any]:
        if row["id"] > before[table]:
            new_ids = {"conversations": new_conv, "survey_invitations": new_inv}.get(table, {})
            row["id"] = new_ids.get(row["id"], "new")
        if "conversation_id" in row:
            row["conversation_id"] = new_conv.get(row["conversation_id"], row["conversation_id"])
        if table == "outbox":
            key = re.match(r"survey:(\d+):(.*)", row["idempotency_key"])
            if key:
                iid = int(key[1])
                row["idempotency_key"] = f"survey:{new_inv.get(iid, iid)}:{key[2]}"
            if "invitation" in row["payload"]:
                iid = row["payload"]["invitation"]
                row["payload"]["invitation"] = new_inv.get(iid, iid)
        return row

    out = {}
    for model in TABLES:
        table = model.__table__
        rows = [canon(table.name, dict(r._mapping)) for r in conn.execute(sa.select(table))]
        out[table.name] = sorted(rows, key=repr)
    return out


def _max_ids(runtime: Any) -> dict[str, int]:
    with runtime.engine.connect() as conn:
        return {
            m.__table__.name: conn.execute(sa.select(sa.func.max(m.__table__.c.id))).scalar() or 0
            for m in TABLES
        }


def invite_one(session, runtime, survey, run_id, candidate, now, send_at) -> str:  # type: ignore[no-untyped-def]
    """The outcome of inviting ``candidate`` in a batch of its own."""
    batch = invite_batch(session, runtime, survey, run_id, [candidate], now, send_at)
    return batch[candidate.contact_id]


def test_a_batch_writes_the_rows_each_contact_alone_gets(runtime) -> None:
    ids = _mixed_batch(runtime)
    survey = definition()
    send_at = MORNING + timedelta(hours=1)
    with write_session(runtime.engine) as session:
        run_id = runs._get_run(session, survey, "run", "manual", MORNING).id
    with write_session(runtime.engine) as session:
        already = Candidate(ids["already"], "sms")
        assert invite_one(session, runtime, survey, run_id, already, MORNING, send_at) == "invited"
    with Session(runtime.engine) as session:
        drawn = plan(session, survey, "run", MORNING).drawn
    assert {c.contact_id for c in drawn} == set(ids.values())
    _after_draw(runtime, ids)
    before = _max_ids(runtime)

    with write_session(runtime.engine) as session:
        one = {
            c.contact_id: invite_one(session, runtime, survey, run_id, c, MORNING, send_at)
            for c in drawn
        }
        expected = _snapshot(session, before)
        session.rollback()
    with write_session(runtime.engine) as session:
        batch = invite_batch(session, runtime, survey, run_id, drawn, MORNING, send_at)
        got = _snapshot(session, before)

    assert batch == one
    names = {cid: name for name, cid in ids.items()}
    assert {names[cid]: outcome for cid, outcome in batch.items()} == {
        "fr": "invited",
        "bm": "invited",
        "bm2": "invited",
        "no_language": "invited",
        "telegram": "invited",
        "caller": "invited",
        "stale": "invited",
        "withdrawn": "no_consent",
        "opted_out": "no_consent",
        "busy": "busy",
        "already": "already",
    }
    for table, rows in expected.items():
        assert got[table] == rows, table
    assert len(got["outbox"]) > len(expected["survey_invitations"])  # the rows were compared


def test_a_first_step_with_effects_is_applied_to_each_contact(runtime, monkeypatch) -> None:
    """The shared first step is only for flows whose start writes nothing per contact: with
    effects, each contact's conversation is started on its own and gets them."""
    from citoyen.engine.types import Effect

    ids = [add_contact(runtime, f"+2237611{i:04d}") for i in range(3)]
    conversations = runtime.conversations
    real_opening, real_start = conversations.opening, conversations.start

    def with_effects(*args: Any, **kwargs: Any) -> Any:
        opening = real_opening(*args, **kwargs)
        effects = [Effect("set_discreet", {"discreet": True})]
        return replace(opening, result=replace(opening.result, effects=effects))

    started = []

    def start(session: Any, contact: Any, *args: Any, **kwargs: Any) -> Any:
        started.append(contact.id)
        return real_start(session, contact, *args, **kwargs)

    monkeypatch.setattr(conversations, "opening", with_effects)
    monkeypatch.setattr(conversations, "start", start)
    result = start_run(runtime, definition(channels=["sms"]), MORNING)
    assert result.invited == 3 and sorted(started) == sorted(ids)
    rows = invitations(runtime)
    assert sorted(i.contact_id for i in rows) == sorted(ids)
    with Session(runtime.engine) as session:
        assert all(session.get(Contact, cid).discreet for cid in ids)
        for row in rows:
            conversation = session.get(Conversation, row.conversation_id)
            assert conversation.contact_id == row.contact_id
            keys = session.execute(
                sa.select(Outbox.idempotency_key).where(Outbox.contact_id == row.contact_id)
            ).scalars()
            assert f"survey:{row.id}:invite:0" in set(keys)


@pytest.mark.parametrize("crash_after", [1])
def test_a_run_resumed_after_a_crash_invites_only_the_rest(runtime, monkeypatch, crash_after):
    ids = [add_contact(runtime, f"+2237612{i:04d}", language=("fr", "bm")[i % 2]) for i in range(7)]
    survey = definition(channels=["sms", "telegram"])
    monkeypatch.setattr(runs, "BATCH", 3)
    real = runs.invite_batch
    calls = []

    def crashing(*args: Any) -> Any:
        calls.append(1)
        if len(calls) > crash_after:
            raise RuntimeError("the worker died")
        return real(*args)

    monkeypatch.setattr(runs, "invite_batch", crashing)
    with pytest.raises(RuntimeError):
        start_run(runtime, survey, MORNING, key="k")
    first = {i.contact_id for i in invitations(runtime)}
    assert len(first) == 3

    monkeypatch.setattr(runs, "invite_batch", real)
    resumed = start_run(runtime, survey, MORNING, key="k")
    assert resumed.invited == 4 and resumed.already == 3
    rows = invitations(runtime)
    assert sorted(i.contact_id for i in rows) == sorted(ids)
    with Session(runtime.engine) as session:
        outbox = session.execute(sa.select(Outbox.contact_id, Outbox.idempotency_key)).all()
        starts = session.execute(sa.select(Message.contact_id).where(Message.kind == "start")).all()
        run = session.get(SurveyRun, rows[0].run_id)
    first_rows = [cid for cid, key in outbox if key.endswith(":invite:0")]
    assert sorted(first_rows) == sorted(ids)  # one first message each, no one twice
    assert sorted(cid for (cid,) in starts) == sorted(ids)
    assert all(i.conversation_id is not None for i in rows)
    assert run.invited == 7 and run.status == "done"


def test_an_invitation_made_meanwhile_by_another_firing_is_left_alone(runtime, monkeypatch):
    """Another worker invited a contact between this batch's check and its insert: the contact
    counts as already invited and nothing else is written for them (the conversation started
    for them in this batch is removed again)."""
    first = add_contact(runtime, "+22376130001")
    second = add_contact(runtime, "+22376130002")
    survey = definition(channels=["sms"])
    with write_session(runtime.engine) as session:
        run_id = runs._get_run(session, survey, "run", "manual", MORNING).id
    with write_session(runtime.engine) as session:  # the other worker's row (call pending)
        row = invite._invitation_row(survey, run_id, Candidate(first, "voice"), MORNING, MORNING)
        session.add(SurveyInvitation(**row))
    monkeypatch.setattr(invite, "_already_invited", lambda *args: set())  # the race
    batch = [Candidate(first, "sms"), Candidate(second, "sms")]
    with write_session(runtime.engine) as session:
        outcomes = invite_batch(session, runtime, survey, run_id, batch, MORNING, MORNING)
    assert outcomes == {first: "already", second: "invited"}
    with Session(runtime.engine) as session:
        for model in (Conversation, Message, Outbox, SurveyInvitation):
            contacts = session.execute(sa.select(model.contact_id)).scalars().all()
            assert contacts.count(second) >= 1, model.__name__
            assert contacts.count(first) == (model is SurveyInvitation), model.__name__


def test_a_wave_is_written_one_batch_after_the_other(runtime, monkeypatch) -> None:
    """Each batch in its own transaction, one after the other on every database: each contact
    invited once, the outcomes counted and the progress told in the order drawn."""
    ids = [
        add_contact(runtime, f"+2237614{i:04d}", language=("fr", "bm")[i % 2]) for i in range(23)
    ]
    monkeypatch.setattr(runs, "BATCH", 5)
    real = runs.invite_batch
    threads: list[str] = []

    def watched(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(runs, "invite_batch", watched)
    progress: list[tuple[int, int]] = []
    result = start_run(
        runtime,
        definition(channels=["sms"]),
        MORNING,
        progress=lambda d, t: progress.append((d, t)),
    )
    assert threads == [threading.current_thread().name] * 5
    assert result.invited == 23 and result.already == 0 and not result.skipped
    assert progress == [(0, 23), (5, 23), (10, 23), (15, 23), (20, 23), (23, 23)]
    assert sorted(i.contact_id for i in invitations(runtime)) == sorted(ids)
    with Session(runtime.engine) as session:
        firsts = session.execute(
            sa.select(Outbox.contact_id).where(Outbox.idempotency_key.like("%:invite:0"))
        ).all()
        pinned = session.execute(sa.select(sa.func.count()).select_from(FlowVersion)).scalar()
    assert sorted(cid for (cid,) in firsts) == sorted(ids)
    assert pinned == 1  # the flow's version, stored once by whichever batch came first
