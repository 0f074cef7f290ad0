"""The area rows already stored, and how new ones are written, for seeding and imports alike."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from citoyen.models import Area
from citoyen.services.areas.names import COUNTRY, match_key, slugify

Progress = Callable[[int, int], None]
"""``progress(done, total)``: called as work advances, so a command can draw a progress bar."""

# The level of an area created under a parent of the given level (None: a top-level area).
CHILD_LEVEL = {
    "region": "cercle",
    "district": "commune",
    "cercle": "commune",
    "commune": "quartier",
}

# Limits of the ``areas`` columns, checked up front so a long value is a row error, not a crash.
MAX_NAME = 200
MAX_PCODE = 40


class ExistingAreas:
    """Every area row, indexed the ways seeding and importing look them up.

    A whole country is a few thousand rows: reading them once and matching in memory is far
    cheaper than one query per CSV row, and lets an import check everything before writing.
    """

    def __init__(self, areas: Iterable[Area]) -> None:
        self.by_code: dict[str, Area] = {}
        self.used_codes: set[str] = set()
        self.by_pcode: dict[str, Area] = {}
        self.by_iso: dict[str, Area] = {}
        self.children: dict[int | None, list[Area]] = defaultdict(list)
        self._by_key: dict[tuple[int | None, str], list[Area]] = defaultdict(list)
        for area in areas:
            self.add(area)

    def add(self, area: Area) -> None:
        self.by_code[area.code] = area
        self.used_codes.add(area.code)
        if area.pcode:
            self.by_pcode[area.pcode] = area
        if area.iso_code and area.parent_id is None:
            self.by_iso[area.iso_code] = area
        if area.id is not None:
            self.children[area.parent_id].append(area)
            self._by_key[(area.parent_id, match_key(area.name))].append(area)

    def find_child(self, parent_id: int | None, key: str) -> list[Area]:
        return self._by_key.get((parent_id, key), [])

    def has_official_children(self, parent_id: int | None) -> bool:
        """True when an imported official table listed this parent's children (they have P-codes)."""
        return parent_id is not None and any(a.pcode for a in self.children.get(parent_id, ()))

    def reserve(self, code: str) -> None:
        """Mark ``code`` as taken by an area about to be created."""
        self.used_codes.add(code)

    def new_code(self, parent_code: str | None, name: str) -> str:
        """``<parent code>.<slug>``, with ``-2``, ``-3``... when two siblings share a name."""
        base = f"{parent_code or COUNTRY}.{slugify(name)}"
        code, n = base, 2
        while code in self.used_codes:
            code, n = f"{base}-{n}", n + 1
        return code


def load_existing(session: Session) -> ExistingAreas:
    return ExistingAreas(session.exec(select(Area)).all())


def insert_areas(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert area rows in one batched statement; return their ids by code.

    A bulk INSERT ... RETURNING instead of ORM objects: building ~800 model instances costs
    several times more than the database work, and seeding runs at first start.
    """
    if not rows:
        return {}
    table = Area.__table__  # Core, not ORM bulk mode: the ORM's per-row bookkeeping is the cost
    result = session.execute(sa.insert(table).returning(table.c.id, table.c.code), rows)
    return {code: area_id for area_id, code in result}


def area_row(
    code: str,
    name: str,
    level: str,
    parent_id: int | None,
    pcode: str | None = None,
    iso_code: str | None = None,
) -> dict[str, Any]:
    return {
        "code": code,
        "name": name[:MAX_NAME],
        "level": level,
        "parent_id": parent_id,
        "pcode": pcode,
        "iso_code": iso_code,
        "position": 0,
    }


def report_progress(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)
