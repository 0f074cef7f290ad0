"""Phone recording access: PINs hashed, weak ones refused, wrong tries throttled in the DB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.models import AuditEvent, PromptRecorder, User
from citoyen.runtime import Runtime
from citoyen.services.prompts import PromptError
from citoyen.services.prompts.pins import (
    FAILURE_WINDOW,
    MAX_FAILURES,
    check_pin,
    clear_pin,
    recorders,
    set_pin,
)

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def check(runtime: Runtime, staff: str, pin: str, now: datetime = NOW):  # type: ignore[no-untyped-def]
    with write_session(runtime.engine) as session:
        return check_pin(session, staff, pin, now)


def test_a_pin_is_stored_hashed_and_opens_the_recorder(runtime: Runtime, staff: User) -> None:
    set_pin(runtime, staff.id, "4821", by_user_id=None)
    with Session(runtime.engine) as session:
        row = session.exec(select(PromptRecorder)).one()
        assert row.user_id == staff.id and "4821" not in row.pin_hash
        assert session.exec(select(AuditEvent.action)).all() == ["prompt_pin_set"]
    assert check(runtime, str(staff.id), "4821") == ("ok", staff.id)
    assert check(runtime, str(staff.id), "4822") == ("wrong", None)
    assert [r.email for r in recorders(runtime)] == ["awa@example.ml"]
    assert clear_pin(runtime, staff.id, by_user_id=None) is True
    assert check(runtime, str(staff.id), "4821") == ("wrong", None)
    assert clear_pin(runtime, staff.id, by_user_id=None) is False


@pytest.mark.parametrize(
    ("pin", "message"),
    [
        ("12a4", "4 to 8 digits"),
        ("123", "4 to 8 digits"),
        ("123456789", "4 to 8 digits"),
        ("0000", "too easy"),
        ("1234", "too easy"),
        ("8765", "too easy"),
    ],
)
def test_bad_pins_are_refused(runtime: Runtime, staff: User, pin: str, message: str) -> None:
    with pytest.raises(PromptError, match=message):
        set_pin(runtime, staff.id, pin, by_user_id=None)
    with Session(runtime.engine) as session:
        assert session.exec(select(PromptRecorder)).all() == []


def test_an_inactive_user_gets_no_pin_and_cannot_use_one(runtime: Runtime, staff: User) -> None:
    set_pin(runtime, staff.id, "4821", by_user_id=None)
    with write_session(runtime.engine) as session:
        session.get(User, staff.id).active = False
    assert check(runtime, str(staff.id), "4821") == ("wrong", None)
    with pytest.raises(PromptError, match="no active user"):
        set_pin(runtime, staff.id, "5930", by_user_id=None)


def test_wrong_pins_lock_the_staff_number_until_the_window_passes(
    runtime: Runtime, staff: User
) -> None:
    set_pin(runtime, staff.id, "4821", by_user_id=None)
    for i in range(MAX_FAILURES):
        assert check(runtime, str(staff.id), "9999", NOW + timedelta(seconds=i))[0] == "wrong"
    # even the right PIN is refused while locked
    assert check(runtime, str(staff.id), "4821", NOW + timedelta(minutes=1)) == ("locked", None)
    later = NOW + FAILURE_WINDOW + timedelta(seconds=MAX_FAILURES + 1)
    assert check(runtime, str(staff.id), "4821", later) == ("ok", staff.id)


def test_a_new_pin_lifts_the_lock(runtime: Runtime, staff: User) -> None:
    set_pin(runtime, staff.id, "4821", by_user_id=None)
    for _ in range(MAX_FAILURES):
        check(runtime, str(staff.id), "9999")
    assert check(runtime, str(staff.id), "4821")[0] == "locked"
    set_pin(runtime, staff.id, "5930", by_user_id=None)
    assert check(runtime, str(staff.id), "5930") == ("ok", staff.id)


def test_unknown_staff_numbers_are_wrong_and_throttled_too(runtime: Runtime) -> None:
    for _ in range(MAX_FAILURES):
        assert check(runtime, "77", "4821")[0] == "wrong"
    assert check(runtime, "77", "4821")[0] == "locked"


def test_leading_zeros_share_the_failure_count(runtime: Runtime, staff: User) -> None:
    set_pin(runtime, staff.id, "4821", by_user_id=None)
    for i in range(MAX_FAILURES):
        assert check(runtime, "0" * i + str(staff.id), "9999")[0] == "wrong"
    assert check(runtime, f"00{staff.id}", "4821") == ("locked", None)
