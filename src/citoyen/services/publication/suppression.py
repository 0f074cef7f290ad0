"""Which cells of a table of counts may be published: primary and secondary suppression.

A published table is a *cube*: every combination of the values of its dimensions (areas, months,
categories...), each dimension a hierarchy whose totals are values too (a cercle is the sum of
its communes, a year of its months, ``*`` of every category). A reader knows every relation
"parent = sum of its children" along every dimension, so hiding a small cell is not enough:

- **Primary suppression.** Every cell whose count is under the threshold is hidden, zeros
  included. A zero that showed would tell the reader which hidden cells are zero, and absent
  rows would do the same, so the cube is always complete: a commune without reports is listed,
  hidden, like a commune with three.
- **Secondary suppression.** For every relation (one parent and its children, the other
  coordinates fixed) with exactly one hidden member, that member would be the parent minus the
  others: the smallest visible child is hidden as well (the parent when no child is left), and
  this repeats until no relation has exactly one hidden member. Since two relations can combine
  into a third (subtracting one total from another), an exact audit then solves the published
  system (Gaussian elimination over the hidden cells) and hides one more cell next to
  any hidden cell it can still pin down, until none can be.

Pure: counts in, the set of hidden cells out. :mod:`citoyen.services.publication.tables` applies
it to the database's figures; the property test in ``tests/services/publication`` plays the
reader and tries to recover every hidden cell.

What stays known (docs/transparency.md): when the hidden members of a relation add up to a small
number, the reader learns that small sum (not who it belongs to); a sum of zero tells that every
hidden member is zero. Zeros are not protected.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

Cell = tuple[str, ...]

# The audit's elimination is exact and costs about (hidden cells)² per relation: a connected group
# of more hidden cells than this is audited piecewise, around each hidden non-zero cell.
AUDIT_LIMIT = 1500
PRIME = 2**61 - 1


@dataclass(frozen=True)
class Hierarchy:
    """One dimension: every value with its parent (``None`` at a root). Leaves carry the data."""

    name: str
    parent: Mapping[str, str | None]
    children: dict[str, list[str]] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        kids: dict[str, list[str]] = defaultdict(list)
        for value, parent in self.parent.items():
            if parent is not None:
                kids[parent].append(value)
        object.__setattr__(self, "children", {k: sorted(v) for k, v in kids.items()})

    @property
    def values(self) -> list[str]:
        return sorted(self.parent)

    def chain(self, value: str) -> list[str]:
        """``value`` and its ancestors, up to the root (bounded: a cycle must not hang)."""
        out = []
        node: str | None = value
        while node is not None and len(out) <= len(self.parent):
            out.append(node)
            node = self.parent.get(node)
        return out


@dataclass(frozen=True)
class Protected:
    """A complete cube of counts and the cells that must not be published."""

    dims: tuple[Hierarchy, ...]
    counts: dict[Cell, int]
    hidden: frozenset[Cell]
    threshold: int

    def visible(self, cell: Cell) -> int | None:
        """The count of ``cell`` if it may be published, else None."""
        return None if cell in self.hidden or cell not in self.counts else self.counts[cell]


def cube(leaf_counts: Mapping[Cell, int], dims: Sequence[Hierarchy]) -> dict[Cell, int]:
    """Every cell of the cube with its count: leaf counts rolled up every dimension's chain."""
    counts: dict[Cell, int] = dict.fromkeys(itertools.product(*(d.values for d in dims)), 0)
    for leaf, n in leaf_counts.items():
        if n < 0:
            raise ValueError("counts are never negative")
        for cell in itertools.product(*(d.chain(v) for d, v in zip(dims, leaf, strict=True))):
            if cell not in counts:
                raise KeyError(f"{cell} is not a cell of the cube")
            counts[cell] += n
    return counts


def relations(dims: Sequence[Hierarchy]) -> list[tuple[Cell, tuple[Cell, ...]]]:
    """Every published identity ``parent = sum(children)``, along each dimension."""
    out = []
    for axis, dim in enumerate(dims):
        others = [d.values for i, d in enumerate(dims) if i != axis]
        for parent, kids in sorted(dim.children.items()):
            for rest in itertools.product(*others):

                def at(value: str, rest: tuple[str, ...] = rest, axis: int = axis) -> Cell:
                    return (*rest[:axis], value, *rest[axis:])

                out.append((at(parent), tuple(at(k) for k in kids)))
    return out


def protect(
    leaf_counts: Mapping[Cell, int],
    dims: Sequence[Hierarchy],
    threshold: int,
    *,
    hide: Iterable[Cell] = (),
    keep: Iterable[Cell] = (),
) -> Protected:
    """The cube of ``leaf_counts`` with the cells to hide so that none under ``threshold`` can be
    read or recovered from the others (see the module's docstring).

    ``hide`` and ``keep`` tie this cube to another one already published that shares cells
    (the bulletin's weeks under the public pages' months): cells hidden there stay hidden,
    cells shown there are known anyway and are never chosen as complements."""
    if threshold < 1:
        raise ValueError("the threshold is at least 1")
    counts = cube(leaf_counts, dims)
    hidden = {cell for cell, n in counts.items() if n < threshold}
    hidden |= {cell for cell in hide if cell in counts}
    kept = frozenset(keep) - hidden
    rels = relations(dims)
    if threshold > 1:
        while True:
            _close_relations(rels, counts, hidden, kept)
            if not _audit(rels, counts, hidden, threshold, kept):
                break
    return Protected(tuple(dims), counts, frozenset(hidden), threshold)


def _close_relations(
    rels: Sequence[tuple[Cell, tuple[Cell, ...]]],
    counts: Mapping[Cell, int],
    hidden: set[Cell],
    kept: frozenset[Cell] = frozenset(),
) -> None:
    """Hide more cells until no relation has exactly one hidden member."""
    changed = True
    while changed:
        changed = False
        for parent, kids in rels:
            members = (parent, *kids)
            if sum(m in hidden for m in members) != 1:
                continue
            shown = [k for k in kids if k not in hidden and k not in kept]
            if not shown and parent in kept:
                raise ValueError(f"{members} cannot be protected: every other member is published")
            pick = min(shown, key=lambda k: (counts[k], k)) if shown else parent
            hidden.add(pick)
            changed = True


def _audit(
    rels: Sequence[tuple[Cell, tuple[Cell, ...]]],
    counts: Mapping[Cell, int],
    hidden: set[Cell],
    threshold: int,
    kept: frozenset[Cell] = frozenset(),
) -> bool:
    """Hide one more cell beside each hidden cell the published relations still determine.

    Returns whether anything was hidden (the relation rule then runs again)."""
    grew = False
    for pinned in determined(rels, hidden, counts, threshold):
        if pinned not in hidden:
            continue
        # A neighbour in one of its relations, the smallest visible one: hiding it adds an
        # unknown to the equation that pinned the cell.
        neighbours = [
            m
            for parent, kids in rels
            if pinned == parent or pinned in kids
            for m in (parent, *kids)
            if m not in hidden and m not in kept
        ]
        if neighbours:
            hidden.add(min(neighbours, key=lambda m: (counts[m], m)))
            grew = True
    return grew


def determined(
    rels: Iterable[tuple[Cell, tuple[Cell, ...]]],
    hidden: set[Cell] | frozenset[Cell],
    counts: Mapping[Cell, int] | None = None,
    threshold: int = 1,
) -> set[Cell]:
    """The hidden cells whose value follows from the published ones by linear algebra.

    Each relation restricted to the hidden cells is a row (the visible cells move to the right
    side, known); a hidden cell is determined exactly when its unit vector is in the rows' span,
    which for a reduced row echelon form means one of its rows is that unit vector. Exact
    arithmetic (modulo a large prime), one connected group of hidden cells at a time.
    """
    rows: list[dict[Cell, int]] = []
    for parent, kids in rels:
        row: dict[Cell, int] = {}
        if parent in hidden:
            row[parent] = 1
        for k in kids:
            if k in hidden:
                row[k] = -1
        if row:
            rows.append(row)
    out: set[Cell] = set()
    for group in _components(rows):
        cells = {c for r in group for c in r}
        if len(cells) <= AUDIT_LIMIT:
            out |= _unit_rows(group)
        else:
            out |= _local_audit(group, counts, threshold)
    return out


def _local_audit(
    rows: list[dict[Cell, int]], counts: Mapping[Cell, int] | None, threshold: int
) -> set[Cell]:
    """The small non-zero hidden cells pinned by the relations within two steps of them, for
    groups too large to solve whole (mostly hidden zeros of a large cube). A subset of the
    equations that pins a cell pins it in the whole system too, so whatever this finds is a real
    leak; what it cannot see is a leak that needs equations from farther away, or of a zero or
    a cell over the threshold (docs/transparency.md)."""
    by_cell: dict[Cell, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        for c in row:
            by_cell[c].append(i)
    out: set[Cell] = set()
    for cell in by_cell:
        if counts is not None and not 0 < counts.get(cell, 0) < threshold:
            continue
        near = set(by_cell[cell])
        for i in list(near):
            for c in rows[i]:
                near.update(by_cell[c])
        if len(near) > AUDIT_LIMIT:
            near = set(by_cell[cell])
        if cell in _unit_rows(_peel([rows[i] for i in sorted(near)], cell)):
            out.add(cell)
    return out


def _peel(rows: list[dict[Cell, int]], target: Cell) -> list[dict[Cell, int]]:
    """``rows`` without those that cannot help pin ``target``: a row holding a cell that no
    other remaining row holds can always be met by choosing that cell, so dropping it leaves
    what the others say about ``target`` unchanged. Repeated until none is left (rows holding
    ``target`` stay). Most of a neighbourhood's edge goes, and the elimination is much smaller.
    """
    holders: dict[Cell, set[int]] = defaultdict(set)
    for i, row in enumerate(rows):
        for c in row:
            holders[c].add(i)
    alive = set(range(len(rows)))
    todo = [i for i, row in enumerate(rows) if any(len(holders[c]) == 1 for c in row)]
    while todo:
        i = todo.pop()
        if i not in alive or target in rows[i]:
            continue
        if not any(len(holders[c]) == 1 for c in rows[i]):
            continue
        alive.discard(i)
        for c in rows[i]:
            holders[c].discard(i)
            if len(holders[c]) == 1:
                todo.extend(holders[c])
    return [rows[i] for i in sorted(alive)]


def _components(rows: list[dict[Cell, int]]) -> list[list[dict[Cell, int]]]:
    """Rows grouped by the hidden cells they share (union-find)."""
    root: dict[Cell, Cell] = {}

    def find(c: Cell) -> Cell:
        while root.setdefault(c, c) != c:
            root[c] = root[root[c]]
            c = root[c]
        return c

    for row in rows:
        first, *rest = row
        for c in rest:
            root[find(c)] = find(first)
    groups: dict[Cell, list[dict[Cell, int]]] = defaultdict(list)
    for row in rows:
        groups[find(next(iter(row)))].append(row)
    return list(groups.values())


def _unit_rows(rows: list[dict[Cell, int]]) -> set[Cell]:
    """Cells whose unit vector is a row of the reduced row echelon form of ``rows``.

    Arithmetic modulo the prime 2^61 - 1 rather than with fractions (ten times faster): a cell
    determined over the rationals is determined modulo the prime too, so nothing is missed; the
    converse fails only when the prime divides a pivot, which for these small integer rows does
    not happen in practice, and would only hide one cell more."""
    pivots: dict[Cell, dict[Cell, int]] = {}
    for raw in rows:
        row = {c: v % PRIME for c, v in raw.items()}
        for pivot in [c for c in row if c in pivots]:
            factor = row.get(pivot)
            if factor:
                _axpy(row, pivots[pivot], factor)
        if not row:
            continue
        pivot = min(row)
        inverse = pow(row[pivot], PRIME - 2, PRIME)
        row = {c: v * inverse % PRIME for c, v in row.items()}
        for other in pivots.values():
            factor = other.get(pivot)
            if factor:
                _axpy(other, row, factor)
        pivots[pivot] = row
    return {pivot for pivot, row in pivots.items() if len(row) == 1}


def _axpy(target: dict[Cell, int], row: Mapping[Cell, int], factor: int) -> None:
    """``target -= factor * row`` modulo :data:`PRIME`, dropping zeros."""
    for c, v in row.items():
        value = (target.get(c, 0) - factor * v) % PRIME
        if value:
            target[c] = value
        else:
            target.pop(c, None)
