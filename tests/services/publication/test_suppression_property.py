"""The reader as attacker: from what is published, try to recover every hidden cell.

Hypothesis generates area trees (regions, cercles, communes), months of a year and categories,
with counts that are often small; :func:`protect` decides what to hide; the attacker then knows
every published count and every relation "total = sum of its parts" along every dimension, and
solves that linear system exactly (its own elimination, written here independently of the
module's audit): subtraction along any hierarchy or margin, and any linear combination of
them. No hidden cell may come out determined.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from unittest.mock import patch

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citoyen.services.publication import suppression
from citoyen.services.publication.suppression import Hierarchy, cube, protect

THRESHOLD = 10


@st.composite
def area_tree(draw: st.DrawFn) -> Hierarchy:
    parent: dict[str, str | None] = {"ML": None}
    for r in range(draw(st.integers(1, 3))):
        region = f"R{r}"
        parent[region] = "ML"
        for c in range(draw(st.integers(1, 2))):
            cercle = f"{region}C{c}"
            parent[cercle] = region
            for m in range(draw(st.integers(1, 3))):
                parent[f"{cercle}M{m}"] = cercle
    return Hierarchy("area", parent)


def flat(name: str, n: int, total: str) -> Hierarchy:
    return Hierarchy(name, {total: None, **{f"{name}{i}": total for i in range(n)}})


@st.composite
def datasets(draw: st.DrawFn) -> tuple[dict[tuple[str, ...], int], list[Hierarchy]]:
    areas = draw(area_tree())
    months = flat("m", draw(st.integers(1, 3)), "2026")
    dims = [areas, months]
    if draw(st.booleans()):
        dims.append(flat("c", draw(st.integers(1, 3)), "*"))
    leaves = [[v for v in d.values if v not in d.children] for d in dims]
    small = st.integers(0, THRESHOLD - 1)
    count = st.one_of(small, small, st.integers(THRESHOLD, 60))
    counts = {cell: draw(count) for cell in itertools.product(*leaves)}
    return counts, dims


def attacker_recovers(published: dict[tuple[str, ...], int | None], dims: list[Hierarchy]) -> dict:
    """Every hidden cell the published figures determine, with its value (exact elimination
    of the system "parent = sum of children" with the published values substituted)."""
    equations: list[tuple[dict[tuple[str, ...], Fraction], Fraction]] = []
    for axis, dim in enumerate(dims):
        others = [d.values for i, d in enumerate(dims) if i != axis]
        for parent, kids in dim.children.items():
            for rest in itertools.product(*others):

                def at(v: str, rest: tuple[str, ...] = rest, axis: int = axis) -> tuple[str, ...]:
                    return (*rest[:axis], v, *rest[axis:])

                terms = [(at(parent), Fraction(1))] + [(at(k), Fraction(-1)) for k in kids]
                row: dict[tuple[str, ...], Fraction] = {}
                rhs = Fraction(0)
                for cell, coef in terms:
                    if published[cell] is None:
                        row[cell] = row.get(cell, Fraction(0)) + coef
                    else:
                        rhs -= coef * published[cell]
                equations.append((row, rhs))
    # Gauss-Jordan on the augmented rows, columns in a fixed order.
    solved: list[tuple[dict[tuple[str, ...], Fraction], Fraction]] = []
    for row, rhs in equations:
        row = {c: v for c, v in row.items() if v}
        for prow, prhs in solved:
            pivot = min(prow)
            f = row.get(pivot)
            if f:
                for c, v in prow.items():
                    row[c] = row.get(c, Fraction(0)) - f * v
                rhs -= f * prhs
                row = {c: v for c, v in row.items() if v}
        if not row:
            assert rhs == 0, "published figures contradict each other"
            continue
        pivot = min(row)
        s = row[pivot]
        row, rhs = {c: v / s for c, v in row.items()}, rhs / s
        for i, (orow, orhs) in enumerate(solved):
            f = orow.get(pivot)
            if f:
                new = {
                    c: orow.get(c, Fraction(0)) - f * row.get(c, Fraction(0)) for c in orow | row
                }
                solved[i] = ({c: v for c, v in new.items() if v}, orhs - f * rhs)
        solved.append((row, rhs))
    return {next(iter(r)): rhs for r, rhs in solved if len(r) == 1}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets())
def test_no_hidden_cell_can_be_recovered(data) -> None:
    counts, dims = data
    result = protect(counts, dims, THRESHOLD)
    published = {cell: result.visible(cell) for cell in result.counts}
    # Nothing under the threshold is shown, zeros included.
    assert all(n is None or n >= THRESHOLD for n in published.values())
    recovered = attacker_recovers(published, dims)
    assert not recovered, f"recovered {recovered}"


def test_the_attacker_does_recover_a_cell_left_alone() -> None:
    """The attacker is not toothless: with primary suppression only (the old behaviour), the
    cercle minus commune A gives commune B, and the attacker finds it."""
    areas = Hierarchy("area", {"C": None, "A": "C", "B": "C"})
    counts = cube({("A",): 55, ("B",): 5}, [areas])
    published = {cell: (n if n >= THRESHOLD else None) for cell, n in counts.items()}
    assert attacker_recovers(published, [areas]) == {("B",): 5}


def test_cercle_minus_commune_no_longer_gives_the_small_commune() -> None:
    """The issue's example: commune A n=55, commune B n=5 in one cercle (and a second region so
    the national total has other parts). B is hidden, and so is a complement."""
    areas = Hierarchy(
        "area", {"ML": None, "R": "ML", "C": "R", "A": "C", "B": "C", "R2": "ML", "C2": "R2"}
    )
    areas = Hierarchy("area", {**areas.parent, "D": "C2", "E": "C2"})
    months = flat("m", 2, "2026")
    counts = {("A", "m0"): 55, ("B", "m0"): 5, ("D", "m0"): 40, ("E", "m1"): 30}
    result = protect(counts, [areas, months], THRESHOLD)
    assert result.visible(("B", "m0")) is None
    assert result.visible(("B", "2026")) is None
    published = {cell: result.visible(cell) for cell in result.counts}
    assert attacker_recovers(published, [areas, months]) == {}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets())
def test_the_piecewise_audit_of_large_groups_leaves_nothing_to_recover(data) -> None:
    """Large cubes are audited around each small hidden cell instead of whole: the same
    attacker, on cubes forced down that path, recovers nothing either."""
    counts, dims = data
    with patch.object(suppression, "AUDIT_LIMIT", 4):
        result = protect(counts, dims, THRESHOLD)
    published = {cell: result.visible(cell) for cell in result.counts}
    assert not attacker_recovers(published, dims)
