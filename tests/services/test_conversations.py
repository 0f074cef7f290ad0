"""The conversation service: dedupe, locking, pinning, expiry, consent, blocked contacts."""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from ruamel.yaml import YAML
from sqlmodel import Session, func, select

from citoyen.engine.types import Input
from citoyen.messages.types import Inbound
from citoyen.models import Contact, Conversation, FlowVersion, Message, Report
from citoyen.runtime import Runtime
from citoyen.services import flows as flows_service
from citoyen.services.setup import ensure_ready

ROOT = Path(__file__).resolve().parents[2]
NUMBER = "+22376000010"


@pytest.fixture
def runtime(settings) -> Runtime:
    rt = Runtime(settings)
    ensure_ready(rt)
    return rt


def send(rt: Runtime, value: str, pid: str | None = None, kind: str = "text", now=None, **kw):
    inbound = Inbound(kw.get("channel", "sms"), kw.get("address", NUMBER), Input(kind, value), pid)
    return rt.conversations.handle(inbound, now=now)


def count(rt: Runtime, model, *where) -> int:
    with Session(rt.engine) as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


def test_first_message_starts_report_flow_with_language_menu(runtime: Runtime) -> None:
    reply = send(runtime, "Bonjour", "SM1")
    assert reply.status == "waiting"
    assert reply.prompts[-1].kind == "language"
    assert [o.key for o in reply.prompts[-1].options] == ["fr", "bm", "en"]
    with Session(runtime.engine) as s:
        contact = s.exec(select(Contact)).one()
        assert NUMBER.removeprefix("+") not in contact.address_enc
        assert runtime.vault.decrypt(contact.address_enc) == f"tel:{NUMBER}"
        conversation = s.exec(select(Conversation)).one()
        assert conversation.flow_id == "report"
        assert conversation.expires_at is not None


def test_repeated_provider_id_answers_the_same_and_stores_nothing_new(runtime: Runtime) -> None:
    send(runtime, "Bonjour", "SM1")
    first = send(runtime, "1", "SM2")
    again = send(runtime, "1", "SM2")
    assert again.duplicate and not first.duplicate
    assert again.prompts == first.prompts
    assert count(runtime, Message, Message.direction == "in") == 2
    # The duplicate did not advance the conversation: the next real answer is the category.
    with Session(runtime.engine) as s:
        state = s.exec(select(Conversation)).one().state
    assert state["node"] == "category"


def test_concurrent_copies_of_one_message_are_handled_once(runtime: Runtime) -> None:
    send(runtime, "Bonjour", "SM1")
    replies = []
    errors = []
    barrier = threading.Barrier(4)

    def deliver() -> None:
        try:
            barrier.wait()
            replies.append(send(runtime, "1", "SM-same"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(replies) == 4
    assert sum(not r.duplicate for r in replies) == 1
    assert all(r.prompts == replies[0].prompts for r in replies)
    assert count(runtime, Message, Message.provider_id == "SM-same") == 1


def test_two_messages_of_one_contact_at_once_keep_the_conversation_whole(runtime: Runtime) -> None:
    """Both answers are applied one after the other, never both to the same state."""
    send(runtime, "Bonjour", "SM1")
    send(runtime, "1", "SM2")  # French; now at the category question
    barrier = threading.Barrier(2)

    def deliver(value: str, pid: str) -> None:
        barrier.wait()
        send(runtime, value, pid)

    threads = [
        threading.Thread(target=deliver, args=("2", "SM-a")),
        threading.Thread(target=deliver, args=("3", "SM-b")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with Session(runtime.engine) as s:
        state = s.exec(select(Conversation)).one().state
    # One answer chose the category, the other a region in the place menu.
    assert state["answers"]["category"] in ("theft", "violence")
    assert state["node"] == "place"
    assert state["scratch"], "the second answer moved into the place menus"
    assert count(runtime, Message, Message.direction == "in") == 4


def test_conversation_expires_and_a_new_one_starts(runtime: Runtime) -> None:
    t0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    send(runtime, "Bonjour", "SM1", now=t0)
    send(runtime, "1", "SM2", now=t0 + timedelta(minutes=1))
    later = t0 + timedelta(hours=3)
    reply = send(runtime, "Bonjour", "SM3", now=later)
    # French is remembered, so the new conversation skips the language menu.
    assert reply.prompts[-1].node == "category"
    with Session(runtime.engine) as s:
        statuses = [c.status for c in s.exec(select(Conversation).order_by(Conversation.id))]
    assert statuses == ["expired", "waiting"]


def test_stop_opts_out_and_start_opts_back_in(runtime: Runtime) -> None:
    send(runtime, "Bonjour", "SM1")
    send(runtime, "1", "SM2")
    reply = send(runtime, "STOP", "SM3")
    assert reply.prompts[-1].text == "system.stopped"
    with Session(runtime.engine) as s:
        contact = s.exec(select(Contact)).one()
        assert contact.opted_out and contact.survey_consent is False
    send(runtime, "START", "SM4")
    with Session(runtime.engine) as s:
        assert not s.exec(select(Contact)).one().opted_out
    assert count(runtime, Report) == 0


def test_stop_as_very_first_message(runtime: Runtime) -> None:
    reply = send(runtime, "arrêt", "SM1")
    assert [p.text for p in reply.prompts] == ["system.stopped"]
    with Session(runtime.engine) as s:
        assert s.exec(select(Contact)).one().opted_out


def test_blocked_contact_gets_no_reply_but_message_is_kept(runtime: Runtime) -> None:
    send(runtime, "Bonjour", "SM1")
    with Session(runtime.engine) as s:
        contact = s.exec(select(Contact)).one()
        contact.blocked = True
        s.add(contact)
        s.commit()
    reply = send(runtime, "1", "SM2")
    assert reply.prompts == [] and reply.status == "blocked"
    assert count(runtime, Message, Message.provider_id == "SM2") == 1


def test_conversation_finishes_on_its_pinned_version_after_the_flow_changes(
    runtime: Runtime, settings, tmp_path: Path
) -> None:
    send(runtime, "Bonjour", "SM1")
    send(runtime, "1", "SM2")  # French, now at category
    with Session(runtime.engine) as s:
        old_version = s.exec(select(Conversation)).one().flow_version
        assert s.exec(select(FlowVersion).where(FlowVersion.version == old_version)).one()

    # A new flow directory where the category question lost its "other" option.
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copytree(ROOT / "config", tmp_path / "config")
    yaml = YAML()
    for src in (ROOT / "flows").glob("*.yaml"):
        data = yaml.load(src.read_text(encoding="utf-8"))
        if src.stem == "report":
            options = data["nodes"]["category"]["options"]
            data["nodes"]["category"]["options"] = [o for o in options if o["key"] != "other"]
        with (flows / src.name).open("w", encoding="utf-8") as fh:
            yaml.dump(data, fh)
    changed = settings.model_copy(update={"flows_dir": flows})
    flows_service.clear_cache()
    new_rt = Runtime(changed)
    assert new_rt.bundle.flows["report"].version != old_version

    # The old conversation still has 8 categories: "8" (other) is valid for it.
    reply = send(new_rt, "8", "SM3")
    assert reply.prompts[-1].node == "place"
    with Session(new_rt.engine) as s:
        conversation = s.exec(select(Conversation)).one()
        assert conversation.state["answers"]["category"] == "other"
        assert conversation.flow_version == old_version
    # A new contact starts on the new version, where 8 is out of range.
    fresh = send(new_rt, "Bonjour", "SM4", address="+22376000099")
    assert fresh.prompts[-1].kind == "language"
    send(new_rt, "1", "SM5", address="+22376000099")
    reply = send(new_rt, "8", "SM6", address="+22376000099")
    assert reply.prompts[0].text == "system.invalid_choice"
    flows_service.clear_cache()


def test_unparseable_address_is_refused_before_anything_is_stored(runtime: Runtime) -> None:
    from citoyen.messages.addresses import AddressError

    with pytest.raises(AddressError):
        send(runtime, "Bonjour", "SM1", address="not a number")
    assert count(runtime, Message) == 0


def test_reference_is_in_the_reply_and_the_database(runtime: Runtime) -> None:
    script = ["Bonjour", "1", "2", "1", "1", "2", "Vol de moto devant la mosquée", "1", "2"]
    reply = None
    for i, value in enumerate(script):
        reply = send(runtime, value, f"SM{i}")
    assert reply is not None and reply.status == "completed"
    with Session(runtime.engine) as s:
        report = s.exec(select(Report)).one()
    assert reply.params["reference"] == report.reference
    assert report.category == "theft"
    assert report.description == "Vol de moto devant la mosquée"
    assert report.anonymous is True
    assert report.language == "fr"
    assert report.channel == "sms"


def test_engine_dialect_is_the_one_under_test(runtime: Runtime, db_url: str) -> None:
    assert runtime.engine.dialect.name == sa.make_url(db_url).get_backend_name()


def _make_report(rt: Runtime) -> str:
    script = ["Bonjour", "1", "2", "1", "1", "2", "Vol de moto", "1", "2"]
    reply = None
    for i, value in enumerate(script):
        reply = send(rt, value, f"SR{i}")
    assert reply is not None
    return reply.params["reference"]


def test_follow_a_report_by_its_reference(runtime: Runtime) -> None:
    reference = _make_report(runtime)
    catalog = runtime.bundle.catalog
    asked = send(runtime, "SUIVI", "F1", address="+22376000077")
    assert asked.prompts[-1].kind == "language"
    asked = send(runtime, "1", "F2", address="+22376000077")
    assert asked.prompts[-1].kind == "reference"
    told = send(runtime, reference.replace("-", ""), "F3", address="+22376000077")
    assert told.status == "completed"
    text = catalog.render(told.prompts[-1].text, "fr", told.params)
    assert reference in text
    assert catalog.render("report.status.new", "fr", {}) in text

    with Session(runtime.engine) as s:
        report = s.exec(select(Report).where(Report.reference == reference)).one()
        report.status = "resolved"
        s.add(report)
        s.commit()
    send(runtime, "suivi", "F4", address="+22376000077")
    told = send(runtime, reference, "F5", address="+22376000077")
    assert catalog.render("report.status.resolved", "fr", {}) in catalog.render(
        told.prompts[-1].text, "fr", told.params
    )


def test_follow_an_unknown_reference(runtime: Runtime) -> None:
    from citoyen.engine.refcodes import damm_digit

    send(runtime, "FOLLOW", "U1")
    send(runtime, "3", "U2")  # English
    body = "000000"
    told = send(runtime, body + str(damm_digit(body)), "U3")
    catalog = runtime.bundle.catalog
    text = catalog.render(told.prompts[-1].text, "en", told.params)
    assert catalog.render("report.status.unknown", "en", {}) in text
    assert count(runtime, Report) == 0


def test_a_new_call_starts_afresh_instead_of_resuming_an_sms_conversation(
    runtime: Runtime,
) -> None:
    send(runtime, "Bonjour", "S1")
    send(runtime, "1", "S2")  # French; the SMS conversation waits at the category question
    reply = send(runtime, None, "CA1:0", kind="start", channel="voice")
    assert reply.prompts[-1].node == "intent"  # a new report flow (language remembered)
    with Session(runtime.engine) as s:
        rows = s.exec(select(Conversation).order_by(Conversation.id)).all()
    assert [(c.channel, c.status) for c in rows] == [("sms", "interrupted"), ("voice", "waiting")]
