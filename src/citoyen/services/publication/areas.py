"""The area dimension of published tables: country > region > cercle > commune.

Every area of the table ``areas`` takes part, with or without data, so that a commune without
reports is a (hidden) cell like any other and absent rows never tell a zero. Places finer than
the commune (quartiers) count for their commune. A report whose place is known only at a higher
level (a cercle, a region, nowhere) counts in a pseudo-area ``<code>~`` ("commune not stated")
under that level, so that every total is the exact sum of its parts. The Bamako district has
communes but no cercles: its communes hang directly under it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from citoyen.models import Area
from citoyen.services.publication.suppression import Hierarchy

COUNTRY = "ML"
COUNTRY_NAME = "Mali"
UNSTATED = "~"  # suffix of the pseudo-area "known only at this level"
PUBLIC_LEVELS = ("national", "region", "cercle", "commune")


@dataclass(frozen=True)
class PublicArea:
    code: str
    name: str
    level: str  # national | region | cercle | commune
    parent: str | None


class AreaTree:
    """The published areas and where each stored area counts."""

    def __init__(self, session: Session) -> None:
        rows = session.exec(select(Area)).all()
        by_id = {a.id: a for a in rows}
        self.areas: dict[str, PublicArea] = {
            COUNTRY: PublicArea(COUNTRY, COUNTRY_NAME, "national", None)
        }
        self._leaf_of_id: dict[int, str] = {}

        def public(area: Area) -> Area | None:
            """The nearest area at or above ``area`` that is published (not a quartier)."""
            node: Area | None = area
            for _ in range(10):
                if node is None or node.level in ("region", "district", "cercle", "commune"):
                    return node
                node = by_id.get(node.parent_id) if node.parent_id is not None else None
            return None

        for area in rows:
            if area.level not in ("region", "district", "cercle", "commune"):
                continue
            level = "region" if area.level == "district" else area.level
            parent_area = by_id.get(area.parent_id) if area.parent_id is not None else None
            parent = public(parent_area) if parent_area is not None else None
            self.areas[area.code] = PublicArea(
                area.code, area.name, level, parent.code if parent else COUNTRY
            )
        for area in rows:
            node = public(area)
            if node is None:
                continue
            self._leaf_of_id[area.id] = (  # type: ignore[index]
                node.code if node.level == "commune" else node.code + UNSTATED
            )

    def leaf(self, area_id: int | None) -> str:
        """The leaf value a row of ``area_id`` counts in."""
        if area_id is None:
            return COUNTRY + UNSTATED
        return self._leaf_of_id.get(area_id, COUNTRY + UNSTATED)

    def hierarchy(self, used_leaves: set[str]) -> Hierarchy:
        """Every published area, plus the "not stated" pseudo-areas that hold data."""
        parent: dict[str, str | None] = {code: a.parent for code, a in self.areas.items()}
        for leaf in used_leaves:
            if leaf.endswith(UNSTATED):
                parent[leaf] = leaf[: -len(UNSTATED)]
        return Hierarchy("area", parent)

    def children(self, code: str) -> list[PublicArea]:
        kids = [a for a in self.areas.values() if a.parent == code]
        return sorted(kids, key=lambda a: a.name)

    def path(self, code: str) -> list[PublicArea]:
        """From the country down to ``code``."""
        out = []
        node = self.areas.get(code)
        while node is not None and len(out) < 10:
            out.append(node)
            node = self.areas.get(node.parent) if node.parent else None
        return out[::-1]
