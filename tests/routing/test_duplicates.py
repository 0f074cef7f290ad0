"""Possible duplicates (same category and commune, close in time) and merging them.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.models import Contact, Report, ReportEvent
from citoyen.runtime import Runtime
from citoyen.services import queues
from citoyen.services.privacy import alias_label
from tests.routing.support import T0, make_report, new_address, outbox


def suggestions(rt: Runtime, report: Report, **kw) -> list[str]:
    with Session(rt.engine) as session:
        found = queues.suggest_duplicates(session, session.get(Report, report.id), **kw)
        return [r.reference for r in found]


def merge(rt: Runtime, duplicate: Report, target: Report, at: timedelta = timedelta(hours=3)):
    with write_session(rt.engine) as session:
        return queues.change_status(
            session,
            session.get(Report, duplicate.id),
            "closed",
            reason="duplicate",
            duplicate_of=session.get(Report, target.id),
            user_id=None,
            note="same motorbike",
            now=T0 + at,
        )


def change(rt: Runtime, report: Report, to: str, at: timedelta = timedelta(hours=5)) -> None:
    with write_session(rt.engine) as session:
        queues.change_status(session, session.get(Report, report.id), to, user_id=None, now=T0 + at)


def test_suggests_same_category_and_commune_close_in_time(runtime: Runtime) -> None:
    report = make_report(runtime, category="theft", area="ML-BKO.commune-i")
    soon = make_report(
        runtime, category="theft", area="ML-BKO.commune-i", now=T0 + timedelta(hours=1)
    )
    # A quartier of the same commune counts as the commune.
    earlier = make_report(
        runtime, category="theft", area="ML-BKO.commune-i.banconi", now=T0 - timedelta(hours=20)
    )
    make_report(runtime, category="theft", area="ML-BKO.commune-ii")  # another commune
    make_report(runtime, category="violence", area="ML-BKO.commune-i")  # another category
    make_report(runtime, category="theft", area="ML-BKO.commune-i", now=T0 + timedelta(hours=49))
    closed = make_report(runtime, category="theft", area="ML-BKO.commune-i")
    with write_session(runtime.engine) as session:
        queues.change_status(
            session, session.get(Report, closed.id), "closed", reason="spam", user_id=None, now=T0
        )
    assert suggestions(runtime, report) == [soon.reference, earlier.reference]
    assert suggestions(runtime, report, window=timedelta(minutes=30)) == []
    assert suggestions(runtime, earlier) == [report.reference, soon.reference]


def test_no_suggestion_without_category_or_place(runtime: Runtime) -> None:
    for category, area in ((None, "ML-BKO.commune-i"), ("theft", None)):
        report = make_report(runtime, category=category, area=area)
        make_report(runtime, category=category, area=area)
        assert suggestions(runtime, report) == []


def test_merging_keeps_every_reporter_informed(runtime: Runtime) -> None:
    target = make_report(runtime, category="theft", area="ML-BKO.commune-i", language="fr")
    target_address = new_address()
    duplicate = make_report(
        runtime,
        category="theft",
        area="ML-BKO.commune-i",
        language="bm",
        channel="telegram",
        now=T0 + timedelta(hours=1),
    )
    other = make_report(
        runtime,
        category="theft",
        area="ML-BKO.commune-i",
        language="en",
        address=target_address,
        now=T0 + timedelta(hours=2),
    )
    catalog = runtime.bundle.catalog

    event = merge(runtime, duplicate, target)
    assert (event.from_status, event.to_status, event.note) == ("new", "closed", "same motorbike")
    assert event.data == {"reason": "duplicate", "merged_into": target.reference, "notified": 1}
    [told] = outbox(runtime, kind="notification")
    assert (told.contact_id, told.channel) == (duplicate.contact_id, "telegram")
    assert told.body == catalog.render(
        "notify.closed.duplicate",
        "bm",
        {"reference": duplicate.reference, "target_reference": target.reference},
    )
    with Session(runtime.engine) as session:
        merged = session.get(Report, duplicate.id)
        assert (merged.status, merged.merged_into_id) == ("closed", target.id)
        assert {e.status for e, _s in queues.entries(session, merged)} == {"closed"}
        [note] = session.exec(
            select(ReportEvent).where(
                ReportEvent.report_id == target.id, ReportEvent.kind == "merged"
            )
        ).all()
        assert note.data == {"merged": duplicate.reference}
        target_contact = session.get(Contact, target.contact_id)

    # A third report merged into the duplicate joins the report that is still alive.
    merge(runtime, other, duplicate, timedelta(hours=4))
    with Session(runtime.engine) as session:
        assert session.get(Report, other.id).merged_into_id == target.id

    # From now on, every status change of the target reaches all three reporters, each with
    # their own reference, in their own language and on their own channel.
    before = len(outbox(runtime, kind="notification"))
    change(runtime, target, "acknowledged")
    messages = outbox(runtime, kind="notification")[before:]
    assert sorted((m.contact_id, m.channel, m.body) for m in messages) == sorted(
        [
            (
                target.contact_id,
                "sms",
                catalog.render("notify.acknowledged", "fr", {"reference": target.reference}),
            ),
            (
                duplicate.contact_id,
                "telegram",
                catalog.render("notify.acknowledged", "bm", {"reference": duplicate.reference}),
            ),
            (
                other.contact_id,
                "sms",
                catalog.render("notify.acknowledged", "en", {"reference": other.reference}),
            ),
        ]
    )
    # Nobody learns who else reported.
    for message in messages:
        if message.contact_id != target.contact_id:
            assert alias_label(target_contact.alias) not in message.body
            assert target.reference not in message.body


def test_merge_is_refused_when_it_makes_no_sense(runtime: Runtime) -> None:
    first = make_report(runtime)
    second = make_report(runtime)
    with pytest.raises(queues.StatusError, match="cannot be merged into itself"):
        merge(runtime, first, first)
    merge(runtime, second, first)
    with pytest.raises(queues.StatusError, match="was merged into"):
        merge(runtime, second, first)
    # Merging the target into its own duplicate would make a loop.
    with pytest.raises(queues.StatusError, match="cannot be merged into itself"):
        merge(runtime, first, second)
    with pytest.raises(queues.StatusError, match=f"was merged into {first.reference}"):
        change(runtime, second, "acknowledged")


def test_following_a_merged_report_tells_the_status_of_the_report_it_joined(
    runtime: Runtime,
) -> None:
    from citoyen.services.effects import lookup_status

    target = make_report(runtime, category="theft", area="ML-BKO.commune-i")
    duplicate = make_report(
        runtime, category="theft", area="ML-BKO.commune-i", now=T0 + timedelta(hours=1)
    )
    merge(runtime, duplicate, target)
    change(runtime, target, "acknowledged")
    with Session(runtime.engine) as session:
        assert lookup_status(session, duplicate.reference) == "acknowledged"
        assert lookup_status(session, target.reference) == "acknowledged"
