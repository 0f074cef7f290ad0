"""Helpers for routing tests: configuration folders, reports made on demand, queries.

Reports are made through :func:`citoyen.services.effects.create_report` (the path every
conversation takes), so routing runs exactly as it does in production.
"""

from __future__ import annotations

import itertools
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, func, select

from citoyen.engine.layout import CONFIG_FILES, SETTINGS_FILE
from citoyen.models import Area, Contact, Conversation, Outbox, QueueEntry, Report, Stakeholder
from citoyen.runtime import Runtime
from citoyen.services import effects, queues
from citoyen.services.contacts import get_or_create_contact

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "flows"
CONFIG = ROOT / "config"
LOCALES = ROOT / "locales"
FIXTURES = Path(__file__).parent / "fixtures"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning in Bamako (UTC+0)

_numbers = itertools.count(1)


def flows_dir(tmp_path: Path, *overlays: Path, **files: str) -> Path:
    """A flows folder with its configuration folder beside it (``config/``, where the loaders
    look by default): the shipped flows and settings, then each overlay folder's YAML files,
    then ``files`` (name -> text). Configuration files go to ``config/``, flows to ``flows/``."""
    folder, config = tmp_path / "flows", tmp_path / "config"
    folder.mkdir(parents=True, exist_ok=True)
    config.mkdir(parents=True, exist_ok=True)
    for path in FLOWS.glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    shutil.copy(CONFIG / SETTINGS_FILE, config / SETTINGS_FILE)

    def place(name: str) -> Path:
        return (config if name in CONFIG_FILES else folder) / name

    for overlay in overlays:
        for path in overlay.glob("*.yaml"):
            shutil.copy(path, place(path.name))
    for name, text in files.items():
        place(name).write_text(text, encoding="utf-8")
    return folder


def line_of(path: Path, text: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line of ``path`` containing ``text``."""
    seen = 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if text in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{text!r} not in {path}")


def new_address() -> str:
    return f"+22377{next(_numbers):06d}"


def new_conversation(
    session: Session,
    rt: Runtime,
    *,
    address: str | None = None,
    channel: str = "sms",
    language: str | None = None,
    now: datetime = T0,
) -> tuple[Contact, Conversation]:
    """A contact and a finished report conversation for it, flushed in ``session``."""
    contact, _created = get_or_create_contact(session, rt.vault, address or new_address(), now)
    if language:
        contact.language = language
    conversation = Conversation(
        contact_id=contact.id,
        channel=channel,
        flow_id="report",
        flow_version="test",
        node="confirm",
        status="completed",
    )
    session.add(conversation)
    session.flush()
    return contact, conversation


def make_report(
    rt: Runtime,
    *,
    category: str | None = "theft",
    area: str | None = "ML-BKO.commune-iv",
    urgency: str = "normal",
    language: str | None = "fr",
    channel: str = "sms",
    address: str | None = None,
    now: datetime = T0,
) -> Report:
    """A report as the report flow files it, in its own committed transaction."""
    address = address or (
        f"telegram:{next(_numbers) + 800000000}" if channel == "telegram" else new_address()
    )
    with Session(rt.engine, expire_on_commit=False) as session:
        contact, conversation = new_conversation(
            session, rt, address=address, channel=channel, language=language, now=now
        )
        report = effects.create_report(
            session,
            {"category": category, "place": area, "urgency": urgency},
            contact=contact,
            conversation=conversation,
            flow=None,
            channel=channel,
            now=now,
        )
        session.commit()
        return report


def queue_codes(rt: Runtime, report: Report) -> list[str]:
    """Stakeholder codes with an entry for this report, in the order they were opened."""
    with Session(rt.engine) as session:
        report = session.get(Report, report.id)
        return [s.code for _e, s in queues.entries(session, report)]


def entry_of(session: Session, report: Report, code: str) -> QueueEntry:
    return session.exec(
        select(QueueEntry)
        .join(Stakeholder, Stakeholder.id == QueueEntry.stakeholder_id)
        .where(QueueEntry.report_id == report.id, Stakeholder.code == code)
    ).one()


def stakeholder_id(rt: Runtime, code: str) -> int:
    with Session(rt.engine) as session:
        return session.exec(select(Stakeholder.id).where(Stakeholder.code == code)).one()


def outbox(rt: Runtime, **where: Any) -> list[Outbox]:
    with Session(rt.engine) as session:
        stmt = select(Outbox).order_by(Outbox.id)
        for name, value in where.items():
            stmt = stmt.where(getattr(Outbox, name) == value)
        return list(session.exec(stmt).all())


def count(rt: Runtime, model: Any, *where: Any) -> int:
    with Session(rt.engine) as session:
        return session.exec(select(func.count()).select_from(model).where(*where)).one()


def area_id(rt: Runtime, code: str) -> int:
    with Session(rt.engine) as session:
        return session.exec(select(Area.id).where(Area.code == code)).one()
