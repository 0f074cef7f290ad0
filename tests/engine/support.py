"""Paths and the hand-built area map shared by the engine tests.

The area map has the shapes that matter for place menus: a region with cercles and communes, the
Bamako district whose children are communes directly (with quartiers below that must never be
asked), a region with more cercles than fit in one menu, and a region with no children at all.
"""

from __future__ import annotations

from pathlib import Path

from citoyen.engine.types import AreaNode

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
