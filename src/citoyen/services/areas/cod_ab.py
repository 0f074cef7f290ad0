"""Importing the official OCHA COD-AB table: checked whole, then upserted by P-code."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session

from citoyen.models import Area
from citoyen.services.areas.menus import invalidate_area_cache
from citoyen.services.areas.names import clean_name, iso_by_key, match_key
from citoyen.services.areas.rows import (
    CHILD_LEVEL,
    MAX_NAME,
    MAX_PCODE,
    ExistingAreas,
    Progress,
    area_row,
    insert_areas,
    load_existing,
    report_progress,
)


@dataclass(frozen=True)
class RowError:
    """Why one row of an imported table was refused. Row 1 is the header, as in a spreadsheet."""

    row: int
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = f"row {self.row}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.reason}"


@dataclass
class ImportResult:
    """What an import did, or why it did nothing (``errors``)."""

    rows: int = 0
    created: int = 0
    attached: int = 0  # existing areas (from the sample) that received their P-code
    updated: int = 0  # areas found by P-code whose name or parent changed
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, row: int, column: str | None, reason: str) -> None:
        self.errors.append(RowError(row, column, reason))

    def __str__(self) -> str:
        """A summary for people (the CLI prints it); errors first when there are any."""
        if self.errors:
            lines = [f"{len(self.errors)} bad row(s), nothing imported:"]
            lines += [f"  {error}" for error in self.errors]
        else:
            lines = [
                f"{self.rows} row(s): {self.created} area(s) created, {self.attached} existing "
                f"area(s) given their P-code, {self.updated} updated, {self.unchanged} unchanged"
            ]
        return "\n".join(lines + [f"note: {note}" for note in self.notes])


@dataclass(eq=False)
class _CodNode:
    pcode: str
    name: str
    depth: int  # 1 = ADM1
    parent: _CodNode | None
    row: int
    pcode_column: str
    level: str = ""
    collapsed: bool = False  # an ADM2 that is the Bamako district itself (see _plan_import)
    action: str = ""  # create | attach | update | unchanged
    code: str = ""
    iso_code: str | None = None
    area: Area | None = None  # the existing row it is, if any
    area_id: int | None = None  # known once the row exists

    @property
    def key(self) -> str:
        return match_key(self.name)

    @property
    def effective_parent(self) -> _CodNode | None:
        parent = self.parent
        while parent is not None and parent.collapsed:
            parent = parent.parent
        return parent


def _decode(raw: bytes, result: ImportResult) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        result.notes.append("the file is not UTF-8: read as Windows-1252 (cp1252)")
        return raw.decode("cp1252", errors="replace")


def _columns(header: Sequence[str], result: ImportResult) -> list[tuple[str, str]]:
    """(P-code column, name column) for ADM1, ADM2... as spelled in the file."""
    by_lower = {h.strip().lower(): h for h in header if h}
    levels: list[tuple[str, str]] = []
    for n in range(1, 5):
        pcode = by_lower.get(f"adm{n}_pcode")
        name = next(
            (by_lower[c] for c in (f"adm{n}_fr", f"adm{n}_name", f"adm{n}_en") if c in by_lower),
            None,
        )
        if pcode is None and name is None:
            break
        if pcode is None:
            result.error(1, name, f"ADM{n}_PCODE column missing (ADM{n} names without P-codes)")
            break
        if name is None:
            result.error(1, pcode, f"ADM{n} name column missing (ADM{n}_FR, _EN or _NAME)")
            break
        levels.append((pcode, name))
    if not levels and not result.errors:
        result.error(1, None, "no ADM1_PCODE and ADM1_FR/ADM1_EN/ADM1_NAME columns")
    return levels


def _read_cod_ab(path: Path, result: ImportResult) -> list[list[_CodNode]]:
    """Parse and check the whole table; nodes by depth, one per P-code, in file order."""
    text = _decode(path.read_bytes(), result)
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        result.error(1, None, "the file is empty")
        return []
    levels = _columns(header, result)
    if result.errors:
        return []
    index = {h: i for i, h in enumerate(header)}
    nodes: dict[str, _CodNode] = {}
    by_depth: list[list[_CodNode]] = [[] for _ in levels]

    for row_number, cells in enumerate(reader, start=2):

        def cell(column: str, cells: list[str] = cells) -> str:
            i = index[column]
            return cells[i] if i < len(cells) else ""

        values = [(cell(p).strip(), clean_name(cell(n))) for p, n in levels]
        depth = max((i + 1 for i, (p, n) in enumerate(values) if p or n), default=0)
        if depth == 0:
            continue  # blank line
        result.rows += 1
        parent: _CodNode | None = None
        for n in range(1, depth + 1):
            pcode, name = values[n - 1]
            pcode_col, name_col = levels[n - 1]
            problem = _row_problem(n, pcode, name, parent, pcode_col, name_col, nodes)
            if problem is not None:
                result.error(row_number, *problem)
                break
            node = nodes.get(pcode)
            if node is None:
                node = nodes[pcode] = _CodNode(pcode, name, n, parent, row_number, pcode_col)
                by_depth[n - 1].append(node)
            parent = node
    if result.rows == 0 and not result.errors:
        result.error(2, None, "the table has no rows")
    return by_depth


def _row_problem(
    n: int,
    pcode: str,
    name: str,
    parent: _CodNode | None,
    pcode_col: str,
    name_col: str,
    nodes: dict[str, _CodNode],
) -> tuple[str, str] | None:
    """(column, reason) when level ``n`` of a row cannot be accepted."""
    if not pcode:
        return pcode_col, f"missing P-code{f' for {name!r}' if name else ''}"
    if not name:
        return name_col, f"missing name for P-code {pcode}"
    if len(pcode) > MAX_PCODE:
        return pcode_col, f"P-code {pcode!r} is longer than {MAX_PCODE} characters"
    if len(name) > MAX_NAME:
        return name_col, f"name is longer than {MAX_NAME} characters"
    if parent is not None and (not pcode.startswith(parent.pcode) or pcode == parent.pcode):
        return pcode_col, (
            f"P-code {pcode} does not extend its ADM{n - 1} P-code {parent.pcode} "
            "(P-codes nest: each level adds to its parent's)"
        )
    seen = nodes.get(pcode)
    if seen is None:
        return None
    if seen.depth != n:
        return pcode_col, f"P-code {pcode} is an ADM{seen.depth} P-code at row {seen.row}"
    seen_parent = seen.parent.pcode if seen.parent else None
    this_parent = parent.pcode if parent else None
    if seen_parent != this_parent:
        return pcode_col, (
            f"P-code {pcode} is under {seen_parent} at row {seen.row} but under {this_parent} here"
        )
    if seen.name != name:
        return name_col, f"P-code {pcode} is named {seen.name!r} at row {seen.row}, {name!r} here"
    return None


def _plan_import(
    levels: list[list[_CodNode]], existing: ExistingAreas, result: ImportResult
) -> list[list[_CodNode]]:
    """Decide, for every P-code, which area it is (or will be); nothing is written here.

    An area already holding the P-code is updated (name, parent). Otherwise an area of the same
    level with the same name under the same parent and no P-code yet (one from the shipped
    sample) receives it: reports and configuration pointing at that area keep working.
    Otherwise a new area is created.

    COD-AB tables describe Bamako as ADM1 "Bamako" > ADM2 "Bamako" > ADM3 "Commune I"...; here the
    district has no cercle level, so an ADM2 named like its ADM1 district is the district itself
    ("collapsed") and its ADM3 rows become the district's communes. Its ADM2 P-code has no area
    to live on and is not stored (noted in the result).
    """
    iso = iso_by_key()
    claimed: set[int] = set()
    planned: list[list[_CodNode]] = []
    for nodes in levels:
        kept: list[_CodNode] = []
        for node in nodes:
            parent = node.effective_parent
            if (
                node.depth == 2
                and parent is not None
                and parent.level == "district"
                and node.key == parent.key
            ):
                node.collapsed = True
                result.notes.append(
                    f"ADM2 {node.pcode} {node.name!r} is the {parent.name} district itself: "
                    "its communes are placed directly under the district"
                )
                continue
            region = iso.get(node.key) if parent is None else None
            if parent is None:
                node.level = region.level if region else "region"
                node.iso_code = region.code if region else None
            else:
                node.level = CHILD_LEVEL.get(parent.level, "quartier")
            _resolve(node, parent, existing, claimed, result)
            kept.append(node)
        planned.append(kept)
    return planned


def _resolve(
    node: _CodNode,
    parent: _CodNode | None,
    existing: ExistingAreas,
    claimed: set[int],
    result: ImportResult,
) -> None:
    parent_id = parent.area_id if parent is not None else None
    area = existing.by_pcode.get(node.pcode)
    if area is not None:
        if area.level != node.level:
            result.error(
                node.row,
                node.pcode_column,
                f"P-code {node.pcode} already belongs to {area.level} {area.name!r} "
                f"({area.code}); here it would be a {node.level}",
            )
            return
        if parent is None:
            moved = area.parent_id is not None
        else:  # a parent still to be created is a move by definition
            moved = parent_id is None or area.parent_id != parent_id
        node.area, node.area_id, node.code = area, area.id, area.code
        node.action = "update" if moved or area.name != node.name else "unchanged"
        claimed.add(area.id or 0)
        return

    candidates: list[Area] = []
    if parent is None:
        by_iso = existing.by_iso.get(node.iso_code) if node.iso_code else None
        candidates = [by_iso] if by_iso is not None else []
        candidates += existing.find_child(None, node.key)
    elif parent_id is not None:
        candidates = existing.find_child(parent_id, node.key)
    for candidate in candidates:
        if (
            candidate.pcode is None
            and candidate.level == node.level
            and candidate.id not in claimed
        ):
            node.area, node.area_id, node.code = candidate, candidate.id, candidate.code
            node.action = "attach"
            claimed.add(candidate.id or 0)
            return

    if node.iso_code and node.iso_code not in existing.used_codes:
        node.code = node.iso_code
    else:
        node.code = existing.new_code(parent.code if parent is not None else None, node.name)
    existing.reserve(node.code)
    node.action = "create"


def import_cod_ab(
    session: Session, path: str | Path, progress: Progress | None = None
) -> ImportResult:
    """Import an OCHA COD-AB administrative table (CSV) into the areas, by P-code.

    Columns: ``ADM1_PCODE`` and a name column ``ADM1_FR``, ``ADM1_EN`` or ``ADM1_NAME`` (French
    preferred: it is the official language of the names), then the same for ADM2, ADM3 and an
    optional ADM4; headers are case-insensitive, other columns are ignored.

    The whole table is checked before anything is written. When any row is refused, nothing is
    written and ``result.errors`` names each bad row (spreadsheet numbering: header = row 1) and
    column. Otherwise areas are upserted by P-code (see :func:`_plan_import`); no area is ever
    deleted, so existing reports keep their area. Flushes; the caller commits.
    """
    result = ImportResult()
    levels = _read_cod_ab(Path(path), result)
    if result.errors:
        return result
    existing = load_existing(session)
    planned = _plan_import(levels, existing, result)
    if result.errors:
        return result

    total = sum(len(nodes) for nodes in planned)
    done = 0
    report_progress(progress, 0, total)
    for nodes in planned:
        new: dict[str, _CodNode] = {}
        rows: list[dict[str, Any]] = []
        for node in nodes:
            parent = node.effective_parent
            parent_id = parent.area_id if parent is not None else None
            if node.action == "create":
                new[node.code] = node
                rows.append(
                    area_row(node.code, node.name, node.level, parent_id, node.pcode, node.iso_code)
                )
                result.created += 1
                continue
            area = node.area
            assert area is not None
            if node.action == "attach":
                result.attached += 1
            elif node.action == "update":
                result.updated += 1
            else:
                result.unchanged += 1
            if area.pcode != node.pcode:
                area.pcode = node.pcode
            if area.name != node.name:
                area.name = node.name
            if area.parent_id != parent_id:
                area.parent_id = parent_id
            if node.iso_code and not area.iso_code:
                area.iso_code = node.iso_code
        session.flush()  # updates first: a P-code can't be on two rows, even for a moment
        for code, area_id in insert_areas(session, rows).items():
            new[code].area_id = area_id
        done += len(nodes)
        report_progress(progress, done, total)
    invalidate_area_cache()
    return result
