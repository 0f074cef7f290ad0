"""Place menus computed once per area map instead of on every conversation step.

A place question shows the children of the last chosen area down to the node's level (regions,
then cercles, then communes), pages them, and matches what the citizen typed against their codes
and names. All of that depends only on the area map, which changes rarely (an import, an admin
edit), while a conversation step happens on every message. :class:`PlaceMenus` memoises each
menu the first time it is asked for; :class:`AreaMap` is an area map that cannot change, so it can
carry its :class:`PlaceMenus` for as long as it lives (``load_area_context`` caches one per
database). A plain ``dict`` still works: the engine then builds a :class:`PlaceMenus` per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NoReturn

from citoyen.engine import textnorm
from citoyen.engine.types import AreaNode, Option

# Rank of area levels: a place node asks down to its ``levels`` rank. The Bamako district is
# region-level and its children are communes, so "cercle" stops at the district itself.
LEVEL_RANK = {"region": 1, "district": 1, "cercle": 2, "commune": 3}
DEEPER_RANK = 4  # quartiers, villages and any unknown level: never asked


def rank_of(area: AreaNode) -> int:
    """The menu rank of an area's level (:data:`DEEPER_RANK` for levels never asked)."""
    return LEVEL_RANK.get(area.level, DEEPER_RANK)


@dataclass(frozen=True)
class PlaceLevel:
    """The areas of one place menu before paging, and what answering it needs.

    ``rank`` is the shallowest rank among ``codes`` (1 when there are none): it picks the menu's
    header. ``options`` has one option per code, in the same order. ``by_name`` maps the
    normalised code and name of each area to its code (the first area wins, as a scan in menu
    order would).
    """

    codes: tuple[str, ...]
    rank: int
    options: tuple[Option, ...]
    by_name: Mapping[str, str] = field(repr=False)

    @classmethod
    def of(cls, codes: tuple[str, ...], areas: Mapping[str, AreaNode]) -> PlaceLevel:
        by_name: dict[str, str] = {}
        for code in codes:
            by_name.setdefault(textnorm.normalise(code), code)
            by_name.setdefault(textnorm.normalise(areas[code].name), code)
        return cls(
            codes=codes,
            rank=min((rank_of(areas[c]) for c in codes), default=1),
            options=tuple(Option(key=c, label=areas[c].name) for c in codes),
            by_name=by_name,
        )


class PlaceMenus:
    """Memoised place menus of one area map (which must not change while this is used).

    The memo holds at most one entry per area and level, so it is bounded by the map. Threads
    may share it: two that miss at once both compute the same menu and one result is kept.
    """

    def __init__(self, areas: Mapping[str, AreaNode]) -> None:
        self._areas = areas
        self._levels: dict[tuple[Any, ...], PlaceLevel] = {}

    def roots(self, area_roots: tuple[str, ...]) -> PlaceLevel:
        """The top menu: the given top-level codes that are in the map, in their order."""
        key = ("roots", area_roots)
        level = self._levels.get(key)
        if level is None:
            codes = tuple(c for c in area_roots if c in self._areas)
            level = self._levels[key] = PlaceLevel.of(codes, self._areas)
        return level

    def children(self, code: str, target: int) -> PlaceLevel:
        """Children of ``code`` in the map whose rank is at most ``target``, in menu order."""
        key = (code, target)
        level = self._levels.get(key)
        if level is None:
            areas = self._areas
            codes = tuple(
                c for c in areas[code].children if c in areas and rank_of(areas[c]) <= target
            )
            level = self._levels[key] = PlaceLevel.of(codes, areas)
        return level


class AreaMap(dict[str, AreaNode]):
    """An area map (code -> :class:`AreaNode`) that cannot change, with its place menus.

    Being immutable, one instance can be shared by every conversation step of a process and keep
    its :attr:`menus` between steps. Reading works as on any dict; ``dict(area_map)`` gives a
    mutable copy.
    """

    @cached_property
    def menus(self) -> PlaceMenus:
        return PlaceMenus(self)

    def _immutable(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("an AreaMap cannot change; copy it with dict(...) first")

    __setitem__ = __delitem__ = __ior__ = _immutable
    clear = pop = popitem = setdefault = update = _immutable

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle and copy rebuild from a plain dict (the default would call __setitem__).
        return (AreaMap, (dict(self),))


def place_menus(areas: Mapping[str, AreaNode]) -> PlaceMenus:
    """The memoised menus of an :class:`AreaMap`; fresh ones for any other mapping."""
    return areas.menus if isinstance(areas, AreaMap) else PlaceMenus(areas)
