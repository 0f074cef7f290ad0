"""Area ids, codes and labels for making and routing reports, without a query per report.

A report names its place by code (the menus' value) and is stored with the area's id; routing
wants the code back and an emergency alert the place's label. Each of these was one or two
queries per report. They now come from a copy of the ``areas`` table kept per area map
(:func:`citoyen.services.areas.menus.load_area_context`, the map the menus and routing's area tree are
built from, rechecked every ``AREA_RECHECK_SECONDS``): the copy is read again whenever the map
changes, so it is never staler than the menus the citizen chose from. A code or id the copy
lacks (an area added in this transaction) is looked up in the database, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from citoyen.models import Area
from citoyen.services.areas import labels
from citoyen.services.areas.menus import AREA_RECHECK_SECONDS, load_area_context

_ROWS = sa.select(Area.id, Area.code, Area.name, Area.parent_id)
_ID_BY_CODE = sa.select(Area.id).where(Area.code == sa.bindparam("code"))


@dataclass(frozen=True)
class AreaIndex:
    """Every area of one database: id by code, and (code, name, parent id) by id."""

    ids: Mapping[str, int]
    rows: Mapping[int, tuple[str, str, int | None]]

    def label(self, area_id: int) -> str | None:
        """:func:`citoyen.services.areas.labels.area_label` from the copy (None: an unknown id)."""
        path: list[tuple[str, str, int | None]] = []
        current: int | None = area_id
        while current is not None and len(path) < 10:  # bounded, as area_path is
            row = self.rows.get(current)
            if row is None:
                return None
            path.append(row)
            current = row[2]
        return labels.label_of_path([name for _code, name, _parent in reversed(path)])


_KEPT = 4  # one per database in use (a process normally has one)
_indexes: list[tuple[Any, AreaIndex]] = []
_lock = threading.Lock()


def area_index(session: Session) -> AreaIndex:
    """The copy of the areas for the area map this session's database has now."""
    area_map, _roots = load_area_context(session, max_age=AREA_RECHECK_SECONDS)
    with _lock:
        for cached_map, index in _indexes:
            if cached_map is area_map:
                return index
    rows = session.execute(_ROWS).all()
    index = AreaIndex(
        ids={row.code: row.id for row in rows},
        rows={row.id: (row.code, row.name, row.parent_id) for row in rows},
    )
    with _lock:
        _indexes[:] = [*_indexes[-(_KEPT - 1) :], (area_map, index)]
    return index


def area_id(session: Session, code: Any) -> int | None:
    """The id of the area with this code (None for anything else, or an unknown code)."""
    if not isinstance(code, str):
        return None
    found = area_index(session).ids.get(code)
    if found is None:
        found = session.execute(_ID_BY_CODE, {"code": code}).scalar()
    return found


def area_code(session: Session, area_id: int | None) -> str | None:
    if area_id is None:
        return None
    row = area_index(session).rows.get(area_id)
    if row is not None:
        return row[0]
    area = session.get(Area, area_id)
    return area.code if area is not None else None


def area_label(session: Session, area_id: int) -> str:
    """A short display name (``Commune IV, Bamako``): see :func:`citoyen.services.areas.labels.area_label`."""
    label = area_index(session).label(area_id)
    return label if label is not None else labels.area_label(session, area_id)
