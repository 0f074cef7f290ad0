"""Looking areas up by id or code, and their short display names."""

from __future__ import annotations

from sqlmodel import Session, select

from citoyen.models import Area


class AreaNotFound(LookupError):
    """No area has the given code or id."""


def get_area(session: Session, area: int | str) -> Area:
    """The area with this id (int) or code (str); :class:`AreaNotFound` when there is none."""
    if isinstance(area, int):
        found = session.get(Area, area)
    else:
        found = session.exec(select(Area).where(Area.code == area)).first()
    if found is None:
        raise AreaNotFound(f"no area {area!r}")
    return found


def area_path(session: Session, area: int | str | Area) -> list[Area]:
    """The area and its ancestors, top level first (``[Koulikoro, Kati, Kalaban Coro]``)."""
    current: Area | None = area if isinstance(area, Area) else get_area(session, area)
    path: list[Area] = []
    while current is not None and len(path) < 10:  # bounded: a corrupt cycle must not hang
        path.append(current)
        current = session.get(Area, current.parent_id) if current.parent_id is not None else None
    return path[::-1]


def area_label(session: Session, area: int | str | Area) -> str:
    """A short display name: the area, its parent and its top level (``Commune IV, Bamako``).

    ``Kati, Koulikoro`` for a cercle, ``Kalaban Coro, Kati, Koulikoro`` for a commune,
    ``Banconi, Commune I, Bamako`` for a quartier; a name repeating the one before it is dropped
    (the commune of Kati in the cercle of Kati reads ``Kati, Koulikoro``).
    """
    return label_of_path([item.name for item in area_path(session, area)])


def label_of_path(names: list[str]) -> str:
    """:func:`area_label` from the names of an area's path, top level first."""
    picked = [names[-1]]
    if len(names) > 1:
        picked.append(names[-2])
    if len(names) > 2:
        picked.append(names[0])
    kept: list[str] = []
    for name in picked:
        if not kept or kept[-1] != name:
            kept.append(name)
    return ", ".join(kept)


def areas_of_levels(session: Session, levels: tuple[str, ...]) -> list[Area]:
    """Every area of these levels, by name (the admin's menus)."""
    return list(session.exec(select(Area).where(Area.level.in_(levels)).order_by(Area.name)).all())


def names_by_code(session: Session, codes: list[str]) -> dict[str, str]:
    """The names of these areas by code (unknown codes left out)."""
    wanted = [c for c in codes if c]
    if not wanted:
        return {}
    rows = session.exec(select(Area.code, Area.name).where(Area.code.in_(wanted))).all()
    return {code: name for code, name in rows}
