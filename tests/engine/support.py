"""Paths, the hand-built area map and the place-menu reference shared by the engine tests.

The area map has the shapes that matter for place menus: a region with cercles and communes, the
Bamako district whose children are communes directly (with quartiers below that must never be
asked), a region with more cercles than fit in one menu, and a region with no children at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from citoyen.engine import textnorm
from citoyen.engine.places import DEEPER_RANK, LEVEL_RANK, PlaceLevel, place_menus
from citoyen.engine.types import AreaNode, Option

FIXTURES = Path(__file__).parent / "fixtures"
VALID = FIXTURES / "valid"
BROKEN = FIXTURES / "broken"
REPO = Path(__file__).resolve().parents[2]


def _areas() -> tuple[dict[str, AreaNode], tuple[str, ...]]:
    nodes: list[AreaNode] = []

    def add(code: str, name: str, level: str, parent: str | None, children: tuple[str, ...] = ()):
        nodes.append(AreaNode(code, name, level, parent, children))

    add("R1", "Kayes", "region", None, ("C11", "C12"))
    add("C11", "Kita", "cercle", "R1", ("K111", "K112"))
    add("K111", "Kita Ville", "commune", "C11")
    add("K112", "Sefeto", "commune", "C11")
    add("C12", "Nioro", "cercle", "R1", ("K121",))
    add("K121", "Nioro Ville", "commune", "C12")
    communes = tuple(f"B{i}" for i in range(1, 7))
    add("BKO", "Bamako", "district", None, communes)
    for i, code in enumerate(communes, start=1):
        add(
            code,
            f"Commune {['I', 'II', 'III', 'IV', 'V', 'VI'][i - 1]}",
            "commune",
            "BKO",
            (f"Q{i}",),
        )
        add(f"Q{i}", f"Quartier {i}", "quartier", code)
    cercles = tuple(f"C2{i:02d}" for i in range(1, 12))
    add("R2", "Mopti", "region", None, cercles)
    for i, code in enumerate(cercles, start=1):
        add(code, f"Cercle {i}", "cercle", "R2", (f"K2{i:02d}",))
        add(f"K2{i:02d}", f"Commune {i} de Mopti", "commune", code)
    add("R3", "Taoudénit", "region", None)
    return {n.code: n for n in nodes}, ("R1", "BKO", "R2", "R3")


AREAS, ROOTS = _areas()


# -- place menus: the engine's former per-step computation, which the memoised menus must equal --


def reference_rank(areas: Mapping[str, AreaNode], code: str) -> int:
    return LEVEL_RANK.get(areas[code].level, DEEPER_RANK)


def reference_children(areas: Mapping[str, AreaNode], code: str, target: int) -> list[str]:
    return [c for c in areas[code].children if c in areas and reference_rank(areas, c) <= target]


def reference_by_name(areas: Mapping[str, AreaNode], codes: list[str], text: str) -> str | None:
    wanted = textnorm.normalise(text)
    for code in codes:
        if wanted in (textnorm.normalise(code), textnorm.normalise(areas[code].name)):
            return code
    return None


def assert_level_matches(areas: Mapping[str, AreaNode], level: PlaceLevel, codes: list[str]):
    """``level`` is what the old code computed from ``codes`` (the menu's areas)."""
    assert list(level.codes) == codes
    assert level.rank == min((reference_rank(areas, c) for c in codes), default=1)
    assert level.options == tuple(Option(key=c, label=areas[c].name) for c in codes)
    for code in codes:
        for text in (code, areas[code].name, areas[code].name.upper(), f" {code.lower()} "):
            assert level.by_name.get(textnorm.normalise(text)) == reference_by_name(
                areas, codes, text
            )
    assert level.by_name.get(textnorm.normalise("no such place")) is None


def assert_menus_match(areas: Mapping[str, AreaNode], roots: tuple[str, ...]) -> None:
    """For every area and level of the map, memoised menus equal the per-step computation."""
    menus = place_menus(areas)
    assert_level_matches(areas, menus.roots(roots), [c for c in roots if c in areas])
    for code in areas:
        for target in sorted(set(LEVEL_RANK.values())):
            expected = reference_children(areas, code, target)
            assert_level_matches(areas, menus.children(code, target), expected)
            assert menus.children(code, target) is menus.children(code, target)  # memoised
