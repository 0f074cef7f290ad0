"""Seeding the shipped sample: the ISO regions and ``data/mali-areas.csv``, idempotently."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session

from citoyen.config import PROJECT_ROOT
from citoyen.models import Area
from citoyen.services.areas.menus import invalidate_area_cache
from citoyen.services.areas.names import clean_name, iso_by_key, iso_regions, match_key
from citoyen.services.areas.rows import (
    CHILD_LEVEL,
    ExistingAreas,
    Progress,
    area_row,
    insert_areas,
    load_existing,
    report_progress,
)

SHIPPED_CSV = "mali-areas.csv"


def shipped_csv_path() -> Path:
    """The sample area list shipped in the project's ``data/`` folder."""
    for base in (PROJECT_ROOT, Path.cwd()):
        path = base / "data" / SHIPPED_CSV
        if path.is_file():
            return path
    raise FileNotFoundError(f"data/{SHIPPED_CSV} not found in {PROJECT_ROOT} or {Path.cwd()}")


@dataclass(eq=False)
class _SeedNode:
    name: str
    level: str
    key: str
    parent: _SeedNode | None = None
    iso_code: str | None = None
    children: dict[str, _SeedNode] = field(default_factory=dict)
    area_id: int | None = None  # the row found or created for it
    code: str = ""

    def child(self, name: str, level: str) -> _SeedNode:
        """The child called ``name``, merged with an earlier row naming the same place."""
        key = match_key(name)
        node = self.children.get(key)
        if node is None:
            node = self.children[key] = _SeedNode(name=name, level=level, key=key, parent=self)
        return node


def _shipped_tree(path: Path) -> list[_SeedNode]:
    """ISO regions, then the CSV's rows merged into one tree (repeated rows collapse)."""
    iso = iso_by_key()
    roots: dict[str, _SeedNode] = {}
    for region in iso_regions():
        key = match_key(region.name)
        roots[key] = _SeedNode(region.name, region.level, key, iso_code=region.code)

    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        expected = {"level1_type", "level1", "cercle", "commune"}
        missing = expected - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for row_number, row in enumerate(reader, start=2):
            top = clean_name(row.get("level1"))
            if not top:
                raise ValueError(f"{path}, row {row_number}: empty level1")
            key = match_key(top)
            root = roots.get(key)
            if root is None:
                kind = (row.get("level1_type") or "").strip().lower()
                level = "district" if kind == "district" else "region"
                region = iso.get(key)
                root = roots[key] = _SeedNode(
                    top, level, key, iso_code=region.code if region else None
                )
            node = root
            for column in ("cercle", "commune", "quartier"):
                name = clean_name(row.get(column))
                if name:
                    node = node.child(name, CHILD_LEVEL.get(node.level, "quartier"))
    return list(roots.values())


def _by_depth(roots: Sequence[_SeedNode]) -> list[list[_SeedNode]]:
    levels: list[list[_SeedNode]] = []
    current = list(roots)
    while current:
        levels.append(current)
        current = [child for node in current for child in node.children.values()]
    return levels


def seed_shipped_areas(
    session: Session, csv_path: str | Path | None = None, progress: Progress | None = None
) -> int:
    """Create the ISO regions and the shipped sample's areas that are missing; return how many.

    Idempotent: areas are found again by ISO code (top level) or by name under their parent, so a
    second run creates nothing. Written level by level (one batched INSERT per level) because the
    whole country has to load in a moment on SQLite at first start.

    Once an official COD-AB table has been imported for a parent (its children carry P-codes),
    the sample no longer adds children there: the official list is the authority.
    Flushes; the caller commits.
    """
    roots = _shipped_tree(Path(csv_path) if csv_path is not None else shipped_csv_path())
    levels = _by_depth(roots)
    total = sum(len(nodes) for nodes in levels)
    existing = load_existing(session)
    created = done = 0
    report_progress(progress, 0, total)
    for nodes in levels:
        new: dict[str, _SeedNode] = {}
        rows: list[dict[str, Any]] = []
        for node in nodes:
            done += 1
            parent = node.parent
            if parent is not None and parent.area_id is None:
                continue  # parent skipped (an official list replaced it): skip the subtree too
            parent_id = parent.area_id if parent is not None else None
            area = _find_seeded(existing, node, parent_id)
            if area is not None:
                if node.iso_code and not area.iso_code:
                    area.iso_code = node.iso_code
                node.area_id, node.code = area.id, area.code
                continue
            if existing.has_official_children(parent_id):
                continue
            if node.iso_code and node.iso_code not in existing.used_codes:
                node.code = node.iso_code
            else:
                node.code = existing.new_code(parent.code if parent else None, node.name)
            existing.reserve(node.code)
            new[node.code] = node
            rows.append(area_row(node.code, node.name, node.level, parent_id, None, node.iso_code))
        for code, area_id in insert_areas(session, rows).items():
            new[code].area_id = area_id
        session.flush()  # ISO codes set on existing regions
        created += len(rows)
        report_progress(progress, done, total)
    invalidate_area_cache()
    return created


def _find_seeded(existing: ExistingAreas, node: _SeedNode, parent_id: int | None) -> Area | None:
    if node.iso_code:
        area = existing.by_iso.get(node.iso_code)
        if area is not None:
            return area
        area = existing.by_code.get(node.iso_code)
        if area is not None and area.parent_id is None:
            return area
    matches = existing.find_child(parent_id, node.key)
    return matches[0] if matches else None
