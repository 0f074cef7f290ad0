"""The area tree as routing sees it: codes and parents, no database rows.

Routing rules inherit down region > cercle > commune (> quartier), so resolving one needs a
report's area and its ancestors. The tree is given to routing: built from the shipped sample
for validation, from the database at run time (:mod:`citoyen.services.areas.trees`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
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
