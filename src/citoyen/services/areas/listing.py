"""Finding area codes: the areas below one, or whose name or code contains a text
(``citoyen areas list``), each with its full place."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from citoyen.models import Area
from citoyen.services.areas.names import fold, menu_sort_key


@dataclass(frozen=True)
class AreaRow:
    """One area as ``citoyen areas list`` shows it: its code, level, name and full place."""

    code: str
    level: str
    name: str
    place: str  # "Kadiolo, Sikasso": the area and its parents, nearest first


def find_areas(
    session: Session, *, under: str | None = None, search: str | None = None
) -> list[AreaRow]:
    """Areas below ``under`` (its code; the area itself excluded) whose name or code contains
    ``search`` (case and accents ignored), in tree order. Raises KeyError for an unknown
    ``under`` code. All areas are read at once: a country has a few thousand at most."""
    areas = list(session.exec(select(Area)).all())
    by_id = {a.id: a for a in areas}
    children: dict[int | None, list[Area]] = {}
    for area in areas:
        children.setdefault(area.parent_id, []).append(area)
    if under is not None:
        root = next((a for a in areas if a.code == under), None)
        if root is None:
            raise KeyError(under)
        starts = children.get(root.id, [])
    else:
        starts = children.get(None, [])
    wanted = fold(search) if search else None
    rows: list[AreaRow] = []

    def walk(nodes: list[Area]) -> None:
        for area in sorted(nodes, key=lambda a: (a.position, menu_sort_key(a.name))):
            if wanted is None or wanted in fold(area.name) or wanted in fold(area.code):
                names, node = [], area
                while node is not None:
                    names.append(node.name)
                    node = by_id.get(node.parent_id) if node.parent_id else None
                rows.append(AreaRow(area.code, area.level, area.name, ", ".join(names)))
            walk(children.get(area.id, []))

    walk(starts)
    return rows
