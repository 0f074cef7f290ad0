"""The engine's view of the areas: the menu map, cached per database and change marker."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session

from citoyen.engine.places import AreaMap
from citoyen.engine.types import AreaNode
from citoyen.models import Area
from citoyen.services.areas.names import menu_sort_key

# How stale a process's area menus and routing tree may be when another process edits the areas
# (conversation steps and report routing pass it as ``max_age``): checking the table on every
# message cost more than the rest of a conversation step.
AREA_RECHECK_SECONDS = 5.0

# database url -> (change marker, areas, top-level codes, time.monotonic() of the last check)
_cache: dict[str, tuple[tuple[Any, ...], AreaMap, tuple[str, ...], float]] = {}
_cache_lock = threading.Lock()


def invalidate_area_cache() -> None:
    """Forget every cached area map (called after seeding and imports; call it after edits)."""
    with _cache_lock:
        _cache.clear()


_AREAS_CHANGED = "citoyen_areas_changed"


def _note_area_changes(session: OrmSession, _flush_context: Any) -> None:
    """After a flush: remember whether it wrote areas (the lists still show what it flushed)."""
    if any(
        isinstance(obj, Area)
        for objs in (session.new, session.dirty, session.deleted)
        for obj in objs
    ):
        session.info[_AREAS_CHANGED] = True


def _invalidate_after_commit(session: OrmSession) -> None:
    """Areas written through the ORM in this process are in the next menu, whatever ``max_age``
    (invalidated at commit: before it, another session would cache the old rows again). A flag
    left by a flush that was rolled back costs at most one needless reload."""
    if session.info.pop(_AREAS_CHANGED, False):
        invalidate_area_cache()


sa.event.listen(OrmSession, "after_flush", _note_area_changes)
sa.event.listen(OrmSession, "after_commit", _invalidate_after_commit)


def _change_marker(session: Session) -> tuple[Any, ...]:
    """One cheap aggregate query that changes when areas are added, removed, moved or renamed.

    Other processes (web workers) do not see this process's :func:`invalidate_area_cache`, so the
    cache is also keyed on what the table looks like. A rename to a name of the same length in
    another process is the one change it can miss; the admin should call the invalidation.
    """
    row = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.max(Area.id),
            sa.func.count(Area.pcode),
            sa.func.sum(Area.parent_id),
            sa.func.sum(Area.position),
            sa.func.sum(sa.func.length(Area.name)),
            sa.func.min(Area.code),
            sa.func.max(Area.code),
        )
    ).one()
    return tuple(row)


def load_area_context(session: Session, *, max_age: float = 0.0) -> tuple[AreaMap, tuple[str, ...]]:
    """The area map the pure engine needs (code -> :class:`AreaNode`) and the top-level codes.

    Children are in menu order: ``position`` first (0 by default: a manual override), then by
    accent-folded name with numbers in numeric order (Bamako: Commune I ... VI). Among top-level
    areas the Bamako district comes first, then the regions.

    Areas an official import replaced are left out of menus but kept in the table (reports still
    point at them): an area without P-code whose parent has P-coded children was not in the
    official list for that parent, so it is hidden with its subtree. Quartiers under communes
    with P-codes stay, because the official table stops above them.

    Cached per database and change marker: when nothing changed it costs one aggregate query
    over the areas. ``max_age`` (seconds)
    skips even that when this process checked the marker that recently: the conversation
    service, which calls this on every step, passes a few seconds, so an area edited in another
    process reaches its menus that much later (in this process :func:`invalidate_area_cache`
    takes effect at once).

    The map is an immutable :class:`AreaMap`, the same object until the areas change, so callers
    may keep it, and views derived from it are computed once per change, not once per step: the
    place menus the engine derives (:attr:`AreaMap.menus`) and routing's area tree (cached on its
    identity).
    """
    url = str(session.get_bind().engine.url)  # password masked: fine for a key
    with _cache_lock:
        cached = _cache.get(url)
    if cached is not None and max_age > 0 and time.monotonic() - cached[3] < max_age:
        return cached[1], cached[2]
    marker = _change_marker(session)
    if cached is not None and cached[0] == marker:
        with _cache_lock:
            if _cache.get(url) is cached:
                _cache[url] = (*cached[:3], time.monotonic())
        return cached[1], cached[2]

    rows = session.execute(
        sa.select(
            Area.id, Area.code, Area.name, Area.level, Area.parent_id, Area.pcode, Area.position
        )
    ).all()
    children: dict[int | None, list[Any]] = defaultdict(list)
    for row in rows:
        children[row.parent_id].append(row)

    def order(row: Any) -> tuple[Any, ...]:
        return (row.level != "district", row.position, menu_sort_key(row.name), row.code)

    areas: dict[str, AreaNode] = {}

    def visible(row: Any) -> list[Any]:
        kids = children.get(row.id, [])
        if any(k.pcode for k in kids):
            kids = [k for k in kids if k.pcode]
        return sorted(kids, key=order)

    def build(row: Any, parent_code: str | None) -> None:
        kids = visible(row)
        areas[row.code] = AreaNode(
            code=row.code,
            name=row.name,
            level=row.level,
            parent=parent_code,
            children=tuple(k.code for k in kids),
        )
        for kid in kids:
            build(kid, row.code)

    roots = sorted(children.get(None, []), key=order)
    for root in roots:
        build(root, None)
    root_codes = tuple(r.code for r in roots)
    area_map = AreaMap(areas)
    with _cache_lock:
        _cache[url] = (marker, area_map, root_codes, time.monotonic())
    return area_map, root_codes
