"""The spool's files: durable records, numbers encrypted, bounded, read back as they came."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from citoyen.engine.types import Input
from citoyen.messages.types import Inbound
from citoyen.services.privacy import Vault
from citoyen.services.spool import Spool, SpoolFull

NUMBER = "+22376998877"
AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def box(tmp_path: Path) -> Spool:
    from cryptography.fernet import Fernet

    return Spool(tmp_path / "spool", Vault(Fernet.generate_key().decode()), max_bytes=1_000)


def test_records_come_back_in_arrival_order_with_the_number_encrypted(box: Spool) -> None:
    for n in range(3):
        inbound = Inbound("sms", f"tel:{NUMBER}", Input("text", f"msg {n}"), provider_id=f"SM{n}")
        box.append(inbound, AT + timedelta(seconds=n))
    files = box.files()
    assert box.depth() == 3 and not box.empty()
    for path in files:
        assert NUMBER not in path.read_text() and NUMBER[1:] not in path.read_text()
    back = [box.read(path) for path in files]
    assert [(i.input.value, i.provider_id, i.address, at) for i, at in back] == [
        (f"msg {n}", f"SM{n}", f"tel:{NUMBER}", AT + timedelta(seconds=n)) for n in range(3)
    ]
    assert not list(box.folder.glob(".*.tmp"))  # written under a temporary name, then renamed


def test_the_spool_is_bounded(box: Spool) -> None:
    inbound = Inbound("sms", f"tel:{NUMBER}", Input("text", "x" * 300), provider_id="SM1")
    box.append(inbound, AT)
    with pytest.raises(SpoolFull):
        for n in range(10):
            box.append(inbound, AT + timedelta(seconds=n))
    assert 1 <= box.depth() < 10
    assert box.size() <= 1_000
