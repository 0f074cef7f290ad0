"""Key rotation: every stored address moves to the new key, lookups work throughout, and the
command resumes after an interruption."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet
from sqlmodel import Session, select

from citoyen.cli import main
from citoyen.config import Settings
from citoyen.db import get_engine, write_session
from citoyen.models import Outbox, Stakeholder
from citoyen.services.contacts import find_contact, get_or_create_contact
from citoyen.services.keyrotation import remaining, rotate_keys
from citoyen.services.privacy import Vault

OLD = "q3zkx8cQoB9o6c1ZCqbsb9Uu3mC1uHnP0E0y0F4l1yM="  # the test settings' key
NEW = Fernet.generate_key().decode()
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
NUMBERS = [f"+2237640{i:04d}" for i in range(7)]


def _seed(engine) -> None:  # type: ignore[no-untyped-def]
    old = Vault(OLD)
    with write_session(engine) as session:
        for number in NUMBERS:
            get_or_create_contact(session, old, number, NOW)
        session.add(
            Stakeholder(
                code="police",
                name="Police",
                kind="police",
                on_call=[
                    {
                        "channel": "sms",
                        "address_enc": old.encrypt("tel:+22320200001"),
                        "hash": old.hash("tel:+22320200001"),
                        "hint": "tel:…01",
                    },
                    {"note": "an entry without an address is kept as is"},
                ],
            )
        )
        session.add(
            Outbox(
                idempotency_key="alert:1",
                channel="sms",
                address_enc=old.encrypt("tel:+22320200002"),
                body="alert",
            )
        )


def test_rotation_moves_everything_to_the_new_key(db_url: str) -> None:
    engine = get_engine(db_url)
    _seed(engine)
    both = Vault(f"{NEW},{OLD}")
    new_only = Vault(NEW)
    assert remaining(engine, both) == len(NUMBERS) + 2

    # During the rotation contacts are still found (by their old hash).
    with Session(engine) as session:
        assert find_contact(session, both, NUMBERS[0]) is not None
        assert find_contact(session, new_only, NUMBERS[0]) is None

    seen: list[tuple[int, int]] = []
    result = rotate_keys(engine, both, batch_size=3, progress=lambda d, t: seen.append((d, t)))
    assert (result.contacts, result.stakeholders, result.outbox) == (len(NUMBERS), 1, 1)
    assert seen[-1] == (len(NUMBERS) + 2, len(NUMBERS) + 2)
    assert remaining(engine, both) == 0

    with Session(engine) as session:
        for number in NUMBERS:  # found and readable with the new key alone
            contact = find_contact(session, new_only, number)
            assert contact is not None
            assert new_only.decrypt(contact.address_enc) == f"tel:{number}"
            with pytest.raises(ValueError):
                Vault(OLD).decrypt(contact.address_enc)
        stakeholder = session.exec(select(Stakeholder)).one()
        entry = stakeholder.on_call[0]
        assert new_only.decrypt(entry["address_enc"]) == "tel:+22320200001"
        assert entry["hash"] == new_only.hash("tel:+22320200001")
        assert stakeholder.on_call[1] == {"note": "an entry without an address is kept as is"}
        outbox = session.exec(select(Outbox)).one()
        assert new_only.decrypt(outbox.address_enc) == "tel:+22320200002"

    again = rotate_keys(engine, both)
    assert again.changed == 0 and again.unchanged == len(NUMBERS) + 2


def test_rotation_resumes_after_an_interruption(db_url: str) -> None:
    engine = get_engine(db_url)
    _seed(engine)
    both = Vault(f"{NEW},{OLD}")

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rotate_keys(engine, both, batch_size=2, progress=stop)
    # The first batch was committed; the rest still under the old key, and still found.
    assert remaining(engine, both) == len(NUMBERS) + 2 - 2
    with Session(engine) as session:
        assert all(find_contact(session, both, n) is not None for n in NUMBERS)
    result = rotate_keys(engine, both, batch_size=2)
    assert result.contacts == len(NUMBERS) - 2 and result.unchanged == 2
    assert remaining(engine, both) == 0


def test_keys_rotate_command(settings: Settings) -> None:
    from citoyen import db

    db.upgrade(settings.resolved_database_url)
    engine = get_engine(settings.resolved_database_url)
    _seed(engine)
    rotating = settings.model_copy(update={"data_key": f"{NEW},{OLD}"})
    runner = CliRunner()
    result = runner.invoke(main, ["keys", "rotate"], obj={"settings": rotating})
    assert result.exit_code == 0, result.output
    assert f"re-encrypted {len(NUMBERS)} contact(s)" in result.output
    assert "can be removed" in result.output

    # With the old key missing, the command says so instead of crashing.
    _seed_more = Vault(OLD).encrypt("tel:+22376999999")
    with write_session(engine) as session:
        session.add(Outbox(idempotency_key="alert:2", channel="sms", address_enc=_seed_more))
    wrong = settings.model_copy(update={"data_key": NEW})
    result = runner.invoke(main, ["keys", "rotate"], obj={"settings": wrong})
    assert result.exit_code != 0
    assert "is every key the data was written with in CITOYEN_DATA_KEY" in result.output


def test_keys_generate_prints_a_fernet_key() -> None:
    result = CliRunner().invoke(main, ["keys", "generate"])
    assert result.exit_code == 0
    Fernet(result.output.strip().encode())
