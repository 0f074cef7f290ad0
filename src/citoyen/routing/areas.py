"""The area tree as routing sees it: codes and parents, no database rows.

Routing rules inherit down region > cercle > commune (> quartier), so resolving one needs a
report's area and its ancestors. Validation needs the same tree without a database
(``citoyen flows check`` runs anywhere), so it is built from the shipped sample exactly as a
first start would seed it; at run time it comes from the database.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


@dataclass(frozen=True)
class AreaInfo:
    code: str
    name: str
    level: str  # region | district | cercle | commune | quartier
    parent: str | None


class AreaTree:
    """Areas by code, with the walk up to the top level that routing needs."""

    def __init__(self, areas: Mapping[str, AreaInfo]) -> None:
        self._areas = dict(areas)
        self._ancestors: dict[str, tuple[str, ...]] = {}

    @classmethod
    def from_nodes(cls, nodes: Mapping[str, Any]) -> AreaTree:
        """From the engine's view (``code -> AreaNode``, :func:`load_area_context`)."""
        return cls(
            {
                code: AreaInfo(code, node.name, node.level, node.parent)
                for code, node in nodes.items()
            }
        )

    def __contains__(self, code: object) -> bool:
        return code in self._areas

    def __iter__(self) -> Iterator[AreaInfo]:
        return iter(self._areas.values())

    def __len__(self) -> int:
        return len(self._areas)

    def get(self, code: str) -> AreaInfo | None:
        return self._areas.get(code)

    def ancestors(self, code: str | None) -> tuple[str, ...]:
        """The area and the areas above it, itself first; empty for an unknown area."""
        if code is None or code not in self._areas:
            return ()
        cached = self._ancestors.get(code)
        if cached is not None:
            return cached
        path: list[str] = []
        current: str | None = code
        while current is not None and current in self._areas and len(path) < 10:
            path.append(current)  # bounded: a corrupt cycle must not hang routing
            current = self._areas[current].parent
        result = self._ancestors[code] = tuple(path)
        return result

    def depth(self, code: str) -> int:
        """1 for a top-level area, 2 below it...; 0 for an unknown one."""
        return len(self.ancestors(code))

    def is_within(self, code: str | None, scope: str | None) -> bool:
        """True when ``code`` is ``scope`` or below it (``scope`` None: the whole country)."""
        return scope is None or scope in self.ancestors(code)

    def commune_of(self, code: str | None) -> str | None:
        """The commune an area belongs to (itself for a commune, its parent for a quartier)."""
        for ancestor in self.ancestors(code):
            if self._areas[ancestor].level == "commune":
                return ancestor
        return None

    def children(self, code: str | None) -> list[str]:
        return [a.code for a in self._areas.values() if a.parent == code]


@lru_cache(maxsize=1)
def shipped_area_tree() -> AreaTree:
    """The areas a first start creates from the shipped sample (``data/mali-areas.csv``).

    Built by running the real seeding (:func:`citoyen.services.areas.seeding.seed_shipped_areas`) into a
    private in-memory SQLite database, so the codes are the ones a deployment gets, by
    construction rather than by a second implementation of the code rules.
    """
    import sqlalchemy as sa
    from sqlmodel import Session

    from citoyen.models import Area
    from citoyen.services.areas.seeding import seed_shipped_areas

    engine = sa.create_engine("sqlite://")
    try:
        Area.__table__.create(engine)  # type: ignore[attr-defined]
        with Session(engine) as session:
            seed_shipped_areas(session)
            rows = session.execute(
                sa.select(Area.id, Area.code, Area.name, Area.level, Area.parent_id)
            ).all()
    finally:
        engine.dispose()
    codes = {row.id: row.code for row in rows}
    return AreaTree(
        {
            row.code: AreaInfo(row.code, row.name, row.level, codes.get(row.parent_id))
            for row in rows
        }
    )


# (snapshot dict, tree built from it); the dict is compared by identity, so it is kept alive here.
_trees: list[tuple[Mapping[str, Any], AreaTree]] = []
_trees_lock = threading.Lock()
_TREES_KEPT = 4


def database_area_tree(session: Any, *, max_age: float = 0.0) -> AreaTree:
    """The deployment's areas (cached per database by :func:`load_area_context`; ``max_age`` as
    there). The tree is built again only when the areas changed: building it from some
    thousand areas cost more than routing a report."""
    from citoyen.services.areas.menus import load_area_context

    nodes, _roots = load_area_context(session, max_age=max_age)
    with _trees_lock:
        for cached_nodes, tree in _trees:
            if cached_nodes is nodes:
                return tree
    tree = AreaTree.from_nodes(nodes)
    with _trees_lock:
        # One per database in use (a process normally has one): the oldest goes first.
        _trees[:] = [*_trees[-(_TREES_KEPT - 1) :], (nodes, tree)]
    return tree
