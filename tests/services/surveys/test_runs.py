"""Survey runs: audience, sample, one invitation per contact and run, quiet hours, reminders, STOP."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from citoyen.models import Conversation, Outbox, SurveyRun
from citoyen.services.surveys.runs import (
    eligible_ids,
    plan,
    send_reminders,
    start_run,
    update_invitations,
)
from tests.services.surveys.conftest import (
    MORNING,
    add_contact,
    contact_row,
    definition,
    invitations,
    survey_rows,
)


def test_audience_is_consenting_reachable_contacts_only(runtime) -> None:
    yes = add_contact(runtime, "+22376000001")
    tg = add_contact(runtime, "telegram:5550001")
    add_contact(runtime, "+22376000002", consent=None)  # never asked
    add_contact(runtime, "+22376000003", consent=False)
    add_contact(runtime, "+22376000004", opted_out=True)
    add_contact(runtime, "+22376000005", blocked=True)
    add_contact(runtime, "withheld:CA" + "1" * 32)  # a withheld caller cannot be reached
    with Session(runtime.engine) as session:
        assert eligible_ids(session, definition(), MORNING) == sorted([yes, tg])
        only_sms = definition(channels=["sms"])
        assert eligible_ids(session, only_sms, MORNING) == [yes]


def test_filters_by_area_and_language(runtime) -> None:
    commune_i = add_contact(runtime, "+22376000011", area="ML-BKO.commune-i", language="bm")
    add_contact(runtime, "+22376000012", area="ML-BKO.commune-ii", language="fr")
    elsewhere = add_contact(runtime, "+22376000013", area=None, language="bm")
    with Session(runtime.engine) as session:
        by_area = definition(audience={"areas": ["ML-BKO.commune-i"]})
        assert eligible_ids(session, by_area, MORNING) == [commune_i]
        # A region (the Bamako district) includes its communes.
        district = definition(audience={"areas": ["ML-BKO"]})
        assert len(eligible_ids(session, district, MORNING)) == 2
        by_language = definition(audience={"languages": ["bm"]})
        assert eligible_ids(session, by_language, MORNING) == sorted([commune_i, elsewhere])


def test_sample_is_reproducible_per_run_and_sized(runtime) -> None:
    for i in range(20):
        add_contact(runtime, f"+2237601{i:04d}")
    with Session(runtime.engine) as session:
        sized = definition(audience={"sample": {"size": 5}})
        first = plan(session, sized, "k1", MORNING)
        again = plan(session, sized, "k1", MORNING)
        other = plan(session, sized, "k2", MORNING)
        assert first.eligible == 20 and len(first.drawn) == 5
        assert [c.contact_id for c in first.drawn] == [c.contact_id for c in again.drawn]
        assert [c.contact_id for c in first.drawn] != [c.contact_id for c in other.drawn]
        share = plan(session, definition(audience={"sample": {"share": 0.25}}), "k1", MORNING)
        assert len(share.drawn) == 5


def test_channel_follows_what_the_contact_uses(runtime) -> None:
    tg = add_contact(runtime, "telegram:5550002")
    texter = add_contact(runtime, "+22376000021", last_channel="sms")
    caller = add_contact(runtime, "+22376000022", last_channel="voice")
    new = add_contact(runtime, "+22376000023")
    with Session(runtime.engine) as session:
        drawn = {c.contact_id: c.channel for c in plan(session, definition(), "k", MORNING).drawn}
        assert drawn == {tg: "telegram", texter: "sms", caller: "voice", new: "sms"}
        no_voice = definition(channels=["sms", "telegram"])
        drawn = {c.contact_id: c.channel for c in plan(session, no_voice, "k", MORNING).drawn}
        assert drawn[caller] == "sms"


def test_run_invites_each_contact_once_even_when_fired_twice(runtime) -> None:
    ids = [add_contact(runtime, f"+2237602{i:04d}") for i in range(4)]
    tg = add_contact(runtime, "telegram:5550003")
    survey = definition(channels=["telegram", "sms"])
    first = start_run(runtime, survey, MORNING, key="2026-11-28T09:00:00Z", trigger="schedule")
    assert first.invited == 5 and first.per_channel == {"sms": 4, "telegram": 1}
    rows_after_first = len(survey_rows(runtime))
    second = start_run(runtime, survey, MORNING, key="2026-11-28T09:00:00Z", trigger="schedule")
    assert second.invited == 0 and second.already == 5
    assert len(invitations(runtime)) == 5
    assert len(survey_rows(runtime)) == rows_after_first
    assert sorted(i.contact_id for i in invitations(runtime)) == sorted([*ids, tg])
    with Session(runtime.engine) as session:
        runs = session.exec(select(SurveyRun)).all()
        assert len(runs) == 1 and runs[0].invited == 5 and runs[0].status == "done"


def test_concurrent_runs_of_one_firing_invite_once(runtime) -> None:
    """Two workers firing the same schedule at once: the unique constraint holds."""
    for i in range(12):
        add_contact(runtime, f"+2237603{i:04d}")
    survey = definition(channels=["sms"])
    barrier = threading.Barrier(2)
    results = []

    def fire() -> None:
        barrier.wait()
        results.append(start_run(runtime, survey, MORNING, key="2026-12-01T09:00:00Z"))

    threads = [threading.Thread(target=fire) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.invited for r in results) == 12
    assert len(invitations(runtime)) == 12
    invite_rows = [r for r in survey_rows(runtime) if ":invite:" in r.idempotency_key]
    assert len({r.contact_id for r in invite_rows}) == 12
    assert len({r.idempotency_key.split(":")[1] for r in invite_rows}) == 12


def test_invitation_is_the_flow_first_question_with_the_stop_notice(runtime) -> None:
    fr = add_contact(runtime, "+22376000031", language="fr")
    bm = add_contact(runtime, "+22376000032", language="bm")
    tg = add_contact(runtime, "telegram:5550004", language="en")
    start_run(runtime, definition(), MORNING)
    catalog = runtime.bundle.catalog
    bodies: dict[int, str] = {}
    rows = {}
    for row in survey_rows(runtime):  # a long (UCS-2) text is cut into several SMS
        bodies[row.contact_id] = (bodies.get(row.contact_id, "") + "\n\n" + row.body).strip()
        rows[row.contact_id] = row
    assert set(rows) == {fr, bm, tg}
    for cid, lang in ((fr, "fr"), (bm, "bm"), (tg, "en")):
        body = bodies[cid]
        assert catalog.render("perceived_safety.safe_after_dark", lang, {}) in body
        assert body.rstrip().endswith(catalog.render("survey.stop_notice", lang, {}))
    # Telegram: the answers are buttons carrying the option keys.
    buttons = rows[tg].payload["buttons"]
    assert [b[1] for b in buttons] == [
        "very_safe",
        "fairly_safe",
        "bit_unsafe",
        "very_unsafe",
        "never_alone",
        "dont_know",
    ]
    # The conversation waits on the first question, pinned to the flow version.
    with Session(runtime.engine) as session:
        conv = session.get(Conversation, invitations(runtime)[0].conversation_id)
        assert conv.flow_id == "perceived_safety" and conv.status == "waiting"
        assert conv.node == "safe_after_dark"


def test_quiet_hours_defer_never_drop(runtime) -> None:
    add_contact(runtime, "+22376000041")
    late = datetime(2026, 11, 28, 21, 30, tzinfo=UTC)  # 21:30 in Bamako
    start_run(runtime, definition(quiet_hours={"start": "08:00", "end": "20:00"}), late)
    [row] = survey_rows(runtime)
    assert row.status == "pending"
    assert row.next_attempt_at == datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    [invitation] = invitations(runtime)
    assert invitation.send_at == row.next_attempt_at
    assert invitation.expires_at == row.next_attempt_at + timedelta(days=3)


def test_every_message_of_a_survey_carries_its_window(runtime) -> None:
    """Invitations (SMS, Telegram, each part of a long SMS) and reminders carry the survey's
    quiet hours in its time zone: the dispatcher holds them outside it (docs/outbox.md)."""
    add_contact(runtime, "+22376000042")
    add_contact(runtime, "telegram:5550042")
    survey = definition(
        quiet_hours={"start": "09:00", "end": "18:00"},
        schedule={"cron": "0 9 1 * *", "timezone": "Africa/Lagos"},
        reminder={"after": "1d"},
    )
    start_run(runtime, survey, MORNING)
    assert send_reminders(runtime, {"test_survey": survey}, MORNING + timedelta(days=1)) == 2
    found = survey_rows(runtime)
    assert {r.channel for r in found} == {"sms", "telegram"}
    assert any(r.idempotency_key.endswith(":reminder") for r in found)
    assert {r.quiet_hours for r in found} == {"09:00-18:00 Africa/Lagos"}


def test_a_contact_in_another_conversation_is_not_interrupted(runtime) -> None:
    from citoyen.engine.types import Input
    from citoyen.messages.types import Inbound

    busy = add_contact(runtime, "+22376000051")
    runtime.conversations.handle(
        Inbound("sms", "tel:+22376000051", Input("text", "Bonjour")), MORNING
    )
    free = add_contact(runtime, "+22376000052")
    result = start_run(runtime, definition(), MORNING)
    assert result.invited == 1 and result.skipped == {"busy": 1}
    assert [i.contact_id for i in invitations(runtime)] == [free]
    assert busy != free


def test_skip_recently_surveyed_and_frequency_cap(runtime) -> None:
    cid = add_contact(runtime, "+22376000061")
    survey = definition(
        audience={"skip_surveyed_within": "20d"}, frequency_cap={"max": 2, "per": "365d"}
    )
    start_run(runtime, survey, MORNING, key="a")
    update_invitations(runtime, MORNING + timedelta(days=5))  # expired: the contact is free again
    with Session(runtime.engine) as session:
        assert eligible_ids(session, survey, MORNING + timedelta(days=10)) == []
        assert eligible_ids(session, survey, MORNING + timedelta(days=21)) == [cid]
    start_run(runtime, survey, MORNING + timedelta(days=21), key="b")
    update_invitations(runtime, MORNING + timedelta(days=30))
    with Session(runtime.engine) as session:
        # Two invitations within a year: capped, however long ago the last one was.
        assert eligible_ids(session, survey, MORNING + timedelta(days=60)) == []
        assert eligible_ids(session, survey, MORNING + timedelta(days=367)) == [cid]


def test_one_reminder_within_quiet_hours(runtime) -> None:
    add_contact(runtime, "+22376000071")
    surveys = {"test_survey": definition(reminder={"after": "1d"})}
    start_run(runtime, surveys["test_survey"], MORNING)
    assert send_reminders(runtime, surveys, MORNING + timedelta(hours=23)) == 0
    evening = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)
    assert send_reminders(runtime, surveys, evening) == 1
    assert send_reminders(runtime, surveys, evening + timedelta(hours=1)) == 0
    reminder = [r for r in survey_rows(runtime) if r.idempotency_key.endswith(":reminder")]
    assert len(reminder) == 1
    catalog = runtime.bundle.catalog
    assert reminder[0].body.startswith(catalog.render("survey.reminder", "fr", {}))
    assert reminder[0].body.endswith(catalog.render("survey.stop_notice", "fr", {}))
    assert reminder[0].next_attempt_at == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def test_stop_in_the_middle_of_a_survey_is_honoured_at_once(runtime) -> None:
    from citoyen.engine.types import Input
    from citoyen.messages.types import Inbound
    from citoyen.services.dispatch import Dispatcher

    cid = add_contact(runtime, "+22376000081")
    surveys = {"test_survey": definition(reminder={"after": "1d"})}
    start_run(runtime, surveys["test_survey"], MORNING)
    svc = runtime.conversations
    reply = svc.handle(Inbound("sms", "tel:+22376000081", Input("text", "1")), MORNING)
    assert reply.status == "waiting"  # first answer taken, second question asked
    reply = svc.handle(Inbound("sms", "tel:+22376000081", Input("text", "STOP")), MORNING)
    assert contact_row(runtime, cid).opted_out
    # Nothing more: no reminder is queued, and a survey row still queued is skipped.
    assert send_reminders(runtime, surveys, MORNING + timedelta(days=2)) == 0
    assert update_invitations(runtime, MORNING) == {"stopped": 1}
    with Session(runtime.engine) as session:
        row = session.exec(select(Outbox).where(Outbox.kind == "survey")).one()
        row.status, row.next_attempt_at = "pending", MORNING
        session.add(row)
        session.commit()
    stats = Dispatcher(runtime, channel_limits={}, recipient_limits={}).run_once(MORNING)
    assert stats.skipped == 1 and stats.sent == 0


@pytest.mark.parametrize("answers", [("1", "2", "3")])
def test_completed_survey_marks_the_invitation(runtime, answers) -> None:
    from citoyen.engine.types import Input
    from citoyen.messages.types import Inbound

    add_contact(runtime, "+22376000091")
    start_run(runtime, definition(), MORNING)
    for text in answers:
        runtime.conversations.handle(
            Inbound("sms", "tel:+22376000091", Input("text", text)), MORNING
        )
    assert update_invitations(runtime, MORNING) == {"completed": 1}
    [invitation] = invitations(runtime)
    assert invitation.status == "completed"


def test_plan_of_a_wave_larger_than_one_statement_can_carry(runtime) -> None:
    """70,000 drawn contacts: more ids than PostgreSQL takes parameters in one statement
    (65,535), so the plan's lookups must not put them all in one ``IN`` list."""
    from citoyen.models import Contact

    count = 70_000
    rows = [
        {
            "address_hash": f"bench-{i:06d}",
            "address_enc": "not-read-by-plan",
            "channel": "tel",
            "alias": 1000 + i % 9000,
            "language": "fr",
            "survey_consent": True,
            "opted_out": False,
            "blocked": False,
            "created_at": MORNING,
            "last_seen_at": MORNING,
        }
        for i in range(count)
    ]
    with runtime.engine.begin() as conn:
        conn.execute(Contact.__table__.insert(), rows)
    caller = add_contact(runtime, "+22376000099", last_channel="voice")  # the last id
    with Session(runtime.engine) as session:
        the_plan = plan(session, definition(), "wave", MORNING)
    assert the_plan.eligible == count + 1
    drawn = {c.contact_id: c.channel for c in the_plan.drawn}
    assert len(drawn) == count + 1
    assert drawn[caller] == "voice"
    assert sum(channel == "sms" for channel in drawn.values()) == count
