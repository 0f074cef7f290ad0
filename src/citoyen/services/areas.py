"""Administrative areas: seeding the shipped sample, importing the official table, menus and labels.

Mali's areas form a tree: region (or the Bamako district) > cercle > commune > quartier (the
district has no cercles: its communes hang directly under it). Reports, contacts, stakeholders
and routing rules point at areas, so every area needs an identifier that survives re-imports and
can be written by hand in configuration files. That identifier is ``Area.code``:

- regions and the district use their ISO 3166-2 code (``ML-1`` Kayes ... ``ML-BKO`` Bamako, from
  pycountry), because it is the one public, stable code for them;
- below, ``<parent code>.<slug>`` (``ML-2.kati``, ``ML-BKO.commune-iv``,
  ``ML-BKO.commune-i.banconi``), a readable code derived from the names when the area is created;
- a top-level area the ISO list does not know (a region of the 2023 reform brought by an import)
  gets ``ML.<slug>``.

A code is derived once, when the area is created, and never rewritten: after a rename or a move
it no longer spells the path, and that is the point (configuration and reports keep working).
The official OCHA P-code, when known, is kept beside it in ``Area.pcode``.

Names are compared with :func:`match_key` (accents, case, spaces and punctuation ignored, a few
known spelling variants mapped), because the shipped sample and the official table disagree on
accents (Segou/Ségou, Diema/Diéma) and the sample is not even consistent with itself.

Database functions here flush but never commit: the caller owns the transaction
(:func:`citoyen.db.session_scope` commits on success, rolls back on error), which is what makes an
import all-or-nothing.
"""

from __future__ import annotations

import csv
import io
import re
import threading
import time
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pycountry
import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, select

from citoyen.config import PROJECT_ROOT
from citoyen.engine.places import AreaMap
from citoyen.engine.types import AreaNode
from citoyen.models import Area

COUNTRY = "ML"
SHIPPED_CSV = "mali-areas.csv"

Progress = Callable[[int, int], None]
"""``progress(done, total)``: called as work advances, so a command can draw a progress bar."""

# The level of an area created under a parent of the given level (None: a top-level area).
_CHILD_LEVEL = {
    "region": "cercle",
    "district": "commune",
    "cercle": "commune",
    "commune": "quartier",
}

# Limits of the ``areas`` columns, checked up front so a long value is a row error, not a crash.
_MAX_NAME = 200
_MAX_PCODE = 40
_MAX_SLUG = 40

# Spellings of the same place seen in other sources (English names in COD-AB ``_EN`` columns,
# older transcriptions). Keys and values are match keys.
_ALIASES = {
    "timbuktu": "tombouctou",
    "tombouctu": "tombouctou",
    "taoudeni": "taoudenit",
    "taoudenni": "taoudenit",
    "segu": "segou",
}
_PREFIX = re.compile(r"^(?:region|district|cercle)\s+(?:de\s+|du\s+|d\s*'\s*|d\s*’\s*)")
_ROMAN = re.compile(r"M{0,3}(CM|CD|D?C{0,3})(XC|XL|L?X{0,3})(IX|IV|V?I{0,3})")
_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}


class AreaNotFound(LookupError):
    """No area has the given code or id."""


# --- names, keys, codes ------------------------------------------------------------------------


def fold(text: str) -> str:
    """Lowercase without accents: the form used to compare and sort names."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def slugify(name: str) -> str:
    """The code segment for ``name``: ascii, lowercase, words joined by hyphens."""
    # Apostrophes join (N'Gara, N’Gara -> ngara); any other run of non-letters is one hyphen.
    ascii_name = re.sub(r"['’`ʼ]", "", fold(name)).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")
    return slug[:_MAX_SLUG].rstrip("-") or "area"


def match_key(name: str) -> str:
    """What two spellings of one place have in common (``Ségou``, ``Segou``, ``Région de Ségou``).

    Spaces and punctuation are dropped too (``Kalaban Coro`` / ``Kalabancoro``), since sources
    disagree on them as much as on accents.
    """
    folded = _PREFIX.sub("", fold(" ".join(name.split())))
    key = re.sub(r"[\W_]+", "", folded)
    return _ALIASES.get(key, key)


def clean_name(name: str | None) -> str:
    """``name`` with whitespace normalised; an all-lowercase name gets a capital (``gao``)."""
    text = " ".join((name or "").split())
    if text and text == text.lower() and text[0].isalpha():
        text = text[0].upper() + text[1:]
    return text


def _roman(token: str) -> int | None:
    if not token or not _ROMAN.fullmatch(token):
        return None
    total = 0
    for i, char in enumerate(token):
        value = _ROMAN_VALUES[char]
        following = _ROMAN_VALUES[token[i + 1]] if i + 1 < len(token) else 0
        total += -value if value < following else value
    return total


def menu_sort_key(name: str) -> tuple[tuple[int, int, str], ...]:
    """Alphabetical by folded name, with numbers in numeric order.

    Digits and, after the first word, upper-case Roman numerals count as numbers, so that Bamako's
    communes come as I, II, III, IV, V, VI (and a future Commune X after IX, not after I).
    """
    key: list[tuple[int, int, str]] = []
    for i, token in enumerate(re.findall(r"[^\W_]+", name)):
        number = int(token) if token.isdigit() else None
        if number is None and i > 0 and token.isupper():
            number = _roman(token)
        key.append((0, number, "") if number is not None else (1, 0, fold(token)))
    return tuple(key)


@dataclass(frozen=True)
class IsoRegion:
    """A first-level subdivision of Mali in ISO 3166-2."""

    code: str
    name: str
    level: str  # region | district


@lru_cache(maxsize=1)
def iso_regions() -> tuple[IsoRegion, ...]:
    """Mali's regions and district from pycountry (ML-1 ... ML-10, ML-BKO)."""
    subdivisions = pycountry.subdivisions.get(country_code=COUNTRY) or []
    return tuple(
        IsoRegion(
            code=sub.code,
            name=sub.name,
            level="district" if sub.type.lower() == "district" else "region",
        )
        for sub in sorted(subdivisions, key=lambda s: (len(s.code), s.code))
    )


def _iso_by_key() -> dict[str, IsoRegion]:
    return {match_key(region.name): region for region in iso_regions()}


def shipped_csv_path() -> Path:
    """The sample area list shipped in the project's ``data/`` folder."""
    for base in (PROJECT_ROOT, Path.cwd()):
        path = base / "data" / SHIPPED_CSV
        if path.is_file():
            return path
    raise FileNotFoundError(f"data/{SHIPPED_CSV} not found in {PROJECT_ROOT} or {Path.cwd()}")


# --- what is already in the database ----------------------------------------------------------


class _Existing:
    """Every area row, indexed the ways seeding and importing look them up.

    A whole country is a few thousand rows: reading them once and matching in memory is far
    cheaper than one query per CSV row, and lets an import check everything before writing.
    """

    def __init__(self, areas: Iterable[Area]) -> None:
        self.by_code: dict[str, Area] = {}
        self.used_codes: set[str] = set()
        self.by_pcode: dict[str, Area] = {}
        self.by_iso: dict[str, Area] = {}
        self.children: dict[int | None, list[Area]] = defaultdict(list)
        self._by_key: dict[tuple[int | None, str], list[Area]] = defaultdict(list)
        for area in areas:
            self.add(area)

    def add(self, area: Area) -> None:
        self.by_code[area.code] = area
        self.used_codes.add(area.code)
        if area.pcode:
            self.by_pcode[area.pcode] = area
        if area.iso_code and area.parent_id is None:
            self.by_iso[area.iso_code] = area
        if area.id is not None:
            self.children[area.parent_id].append(area)
            self._by_key[(area.parent_id, match_key(area.name))].append(area)

    def find_child(self, parent_id: int | None, key: str) -> list[Area]:
        return self._by_key.get((parent_id, key), [])

    def has_official_children(self, parent_id: int | None) -> bool:
        """True when an imported official table listed this parent's children (they have P-codes)."""
        return parent_id is not None and any(a.pcode for a in self.children.get(parent_id, ()))

    def reserve(self, code: str) -> None:
        """Mark ``code`` as taken by an area about to be created."""
        self.used_codes.add(code)

    def new_code(self, parent_code: str | None, name: str) -> str:
        """``<parent code>.<slug>``, with ``-2``, ``-3``... when two siblings share a name."""
        base = f"{parent_code or COUNTRY}.{slugify(name)}"
        code, n = base, 2
        while code in self.used_codes:
            code, n = f"{base}-{n}", n + 1
        return code


def _load_existing(session: Session) -> _Existing:
    return _Existing(session.exec(select(Area)).all())


def _insert(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert area rows in one batched statement; return their ids by code.

    A bulk INSERT ... RETURNING instead of ORM objects: building ~800 model instances costs
    several times more than the database work, and seeding runs at first start.
    """
    if not rows:
        return {}
    table = Area.__table__  # Core, not ORM bulk mode: the ORM's per-row bookkeeping is the cost
    result = session.execute(sa.insert(table).returning(table.c.id, table.c.code), rows)
    return {code: area_id for area_id, code in result}


def _row(
    code: str,
    name: str,
    level: str,
    parent_id: int | None,
    pcode: str | None = None,
    iso_code: str | None = None,
) -> dict[str, Any]:
    return {
        "code": code,
        "name": name[:_MAX_NAME],
        "level": level,
        "parent_id": parent_id,
        "pcode": pcode,
        "iso_code": iso_code,
        "position": 0,
    }


def _report(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


# --- the shipped sample -------------------------------------------------------------------------


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
    iso = _iso_by_key()
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
                    node = node.child(name, _CHILD_LEVEL.get(node.level, "quartier"))
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
    existing = _load_existing(session)
    created = done = 0
    _report(progress, 0, total)
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
            rows.append(_row(node.code, node.name, node.level, parent_id, None, node.iso_code))
        for code, area_id in _insert(session, rows).items():
            new[code].area_id = area_id
        session.flush()  # ISO codes set on existing regions
        created += len(rows)
        _report(progress, done, total)
    invalidate_area_cache()
    return created


def _find_seeded(existing: _Existing, node: _SeedNode, parent_id: int | None) -> Area | None:
    if node.iso_code:
        area = existing.by_iso.get(node.iso_code)
        if area is not None:
            return area
        area = existing.by_code.get(node.iso_code)
        if area is not None and area.parent_id is None:
            return area
    matches = existing.find_child(parent_id, node.key)
    return matches[0] if matches else None


# --- importing the official COD-AB table -------------------------------------------------------


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
    if len(pcode) > _MAX_PCODE:
        return pcode_col, f"P-code {pcode!r} is longer than {_MAX_PCODE} characters"
    if len(name) > _MAX_NAME:
        return name_col, f"name is longer than {_MAX_NAME} characters"
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
    levels: list[list[_CodNode]], existing: _Existing, result: ImportResult
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
    iso = _iso_by_key()
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
                node.level = _CHILD_LEVEL.get(parent.level, "quartier")
            _resolve(node, parent, existing, claimed, result)
            kept.append(node)
        planned.append(kept)
    return planned


def _resolve(
    node: _CodNode,
    parent: _CodNode | None,
    existing: _Existing,
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
    existing = _load_existing(session)
    planned = _plan_import(levels, existing, result)
    if result.errors:
        return result

    total = sum(len(nodes) for nodes in planned)
    done = 0
    _report(progress, 0, total)
    for nodes in planned:
        new: dict[str, _CodNode] = {}
        rows: list[dict[str, Any]] = []
        for node in nodes:
            parent = node.effective_parent
            parent_id = parent.area_id if parent is not None else None
            if node.action == "create":
                new[node.code] = node
                rows.append(
                    _row(node.code, node.name, node.level, parent_id, node.pcode, node.iso_code)
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
        for code, area_id in _insert(session, rows).items():
            new[code].area_id = area_id
        done += len(nodes)
        _report(progress, done, total)
    invalidate_area_cache()
    return result


# --- the engine's view: menus ------------------------------------------------------------------

# How stale a process's area menus and routing tree may be when another process edits the areas
# (conversation steps and report routing pass it as ``max_age``): checking the table on every
# message cost more than the rest of a conversation step.
AREA_RECHECK_SECONDS = 5.0

# database url -> (change marker, areas, top-level codes, time.monotonic() of the last check)
_cache: dict[str, tuple[tuple[Any, ...], AreaMap, tuple[str, ...], float]] = {}
_cache_lock = threading.Lock()


def invalidate_area_cache() -> None:
    """Forget every cached area map (called after seeding and imports; call it after edits)."""
    with _cache_lock:
        _cache.clear()


_AREAS_CHANGED = "citoyen_areas_changed"


def _note_area_changes(session: OrmSession, _flush_context: Any) -> None:
    """After a flush: remember whether it wrote areas (the lists still show what it flushed)."""
    if any(
        isinstance(obj, Area)
        for objs in (session.new, session.dirty, session.deleted)
        for obj in objs
    ):
        session.info[_AREAS_CHANGED] = True


def _invalidate_after_commit(session: OrmSession) -> None:
    """Areas written through the ORM in this process are in the next menu, whatever ``max_age``
    (invalidated at commit: before it, another session would cache the old rows again). A flag
    left by a flush that was rolled back costs at most one needless reload."""
    if session.info.pop(_AREAS_CHANGED, False):
        invalidate_area_cache()


sa.event.listen(OrmSession, "after_flush", _note_area_changes)
sa.event.listen(OrmSession, "after_commit", _invalidate_after_commit)


def _change_marker(session: Session) -> tuple[Any, ...]:
    """One cheap aggregate query that changes when areas are added, removed, moved or renamed.

    Other processes (web workers) do not see this process's :func:`invalidate_area_cache`, so the
    cache is also keyed on what the table looks like. A rename to a name of the same length in
    another process is the one change it can miss; the admin should call the invalidation.
    """
    row = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.max(Area.id),
            sa.func.count(Area.pcode),
            sa.func.sum(Area.parent_id),
            sa.func.sum(Area.position),
            sa.func.sum(sa.func.length(Area.name)),
            sa.func.min(Area.code),
            sa.func.max(Area.code),
        )
    ).one()
    return tuple(row)


def load_area_context(session: Session, *, max_age: float = 0.0) -> tuple[AreaMap, tuple[str, ...]]:
    """The area map the pure engine needs (code -> :class:`AreaNode`) and the top-level codes.

    Children are in menu order: ``position`` first (0 by default: a manual override), then by
    accent-folded name with numbers in numeric order (Bamako: Commune I ... VI). Among top-level
    areas the Bamako district comes first, then the regions.

    Areas an official import replaced are left out of menus but kept in the table (reports still
    point at them): an area without P-code whose parent has P-coded children was not in the
    official list for that parent, so it is hidden with its subtree. Quartiers under communes
    with P-codes stay, because the official table stops above them.

    Cached per database and change marker: when nothing changed it costs one aggregate query
    over the areas. ``max_age`` (seconds)
    skips even that when this process checked the marker that recently: the conversation
    service, which calls this on every step, passes a few seconds, so an area edited in another
    process reaches its menus that much later (in this process :func:`invalidate_area_cache`
    takes effect at once).

    The map is an immutable :class:`AreaMap`, the same object until the areas change, so callers
    may keep it, and views derived from it are computed once per change, not once per step: the
    place menus the engine derives (:attr:`AreaMap.menus`) and routing's area tree (cached on its
    identity).
    """
    url = str(session.get_bind().engine.url)  # password masked: fine for a key
    with _cache_lock:
        cached = _cache.get(url)
    if cached is not None and max_age > 0 and time.monotonic() - cached[3] < max_age:
        return cached[1], cached[2]
    marker = _change_marker(session)
    if cached is not None and cached[0] == marker:
        with _cache_lock:
            if _cache.get(url) is cached:
                _cache[url] = (*cached[:3], time.monotonic())
        return cached[1], cached[2]

    rows = session.execute(
        sa.select(
            Area.id, Area.code, Area.name, Area.level, Area.parent_id, Area.pcode, Area.position
        )
    ).all()
    children: dict[int | None, list[Any]] = defaultdict(list)
    for row in rows:
        children[row.parent_id].append(row)

    def order(row: Any) -> tuple[Any, ...]:
        return (row.level != "district", row.position, menu_sort_key(row.name), row.code)

    areas: dict[str, AreaNode] = {}

    def visible(row: Any) -> list[Any]:
        kids = children.get(row.id, [])
        if any(k.pcode for k in kids):
            kids = [k for k in kids if k.pcode]
        return sorted(kids, key=order)

    def build(row: Any, parent_code: str | None) -> None:
        kids = visible(row)
        areas[row.code] = AreaNode(
            code=row.code,
            name=row.name,
            level=row.level,
            parent=parent_code,
            children=tuple(k.code for k in kids),
        )
        for kid in kids:
            build(kid, row.code)

    roots = sorted(children.get(None, []), key=order)
    for root in roots:
        build(root, None)
    root_codes = tuple(r.code for r in roots)
    area_map = AreaMap(areas)
    with _cache_lock:
        _cache[url] = (marker, area_map, root_codes, time.monotonic())
    return area_map, root_codes


# --- labels ------------------------------------------------------------------------------------


def get_area(session: Session, area: int | str) -> Area:
    """The area with this id (int) or code (str); :class:`AreaNotFound` when there is none."""
    if isinstance(area, int):
        found = session.get(Area, area)
    else:
        found = session.exec(select(Area).where(Area.code == area)).first()
    if found is None:
        raise AreaNotFound(f"no area {area!r}")
    return found


def area_path(session: Session, area: int | str | Area) -> list[Area]:
    """The area and its ancestors, top level first (``[Koulikoro, Kati, Kalaban Coro]``)."""
    current: Area | None = area if isinstance(area, Area) else get_area(session, area)
    path: list[Area] = []
    while current is not None and len(path) < 10:  # bounded: a corrupt cycle must not hang
        path.append(current)
        current = session.get(Area, current.parent_id) if current.parent_id is not None else None
    return path[::-1]


def area_label(session: Session, area: int | str | Area) -> str:
    """A short display name: the area, its parent and its top level (``Commune IV, Bamako``).

    ``Kati, Koulikoro`` for a cercle, ``Kalaban Coro, Kati, Koulikoro`` for a commune,
    ``Banconi, Commune I, Bamako`` for a quartier; a name repeating the one before it is dropped
    (the commune of Kati in the cercle of Kati reads ``Kati, Koulikoro``).
    """
    return label_of_path([item.name for item in area_path(session, area)])


def label_of_path(names: list[str]) -> str:
    """:func:`area_label` from the names of an area's path, top level first."""
    picked = [names[-1]]
    if len(names) > 1:
        picked.append(names[-2])
    if len(names) > 2:
        picked.append(names[0])
    kept: list[str] = []
    for name in picked:
        if not kept or kept[-1] != name:
            kept.append(name)
    return ", ".join(kept)


@dataclass(frozen=True)
class AreaRow:
    """One area as ``citoyen areas list`` shows it: its code, level, name and full place."""

    code: str
    level: str
    name: str
    place: str  # "Kadiolo, Sikasso": the area and its parents, nearest first


def find_areas(
    session: Session, *, under: str | None = None, search: str | None = None
) -> list[AreaRow]:
    """Areas below ``under`` (its code; the area itself excluded) whose name or code contains
    ``search`` (case and accents ignored), in tree order. Raises KeyError for an unknown
    ``under`` code. All areas are read at once: a country has a few thousand at most."""
    areas = list(session.exec(select(Area)).all())
    by_id = {a.id: a for a in areas}
    children: dict[int | None, list[Area]] = {}
    for area in areas:
        children.setdefault(area.parent_id, []).append(area)
    if under is not None:
        root = next((a for a in areas if a.code == under), None)
        if root is None:
            raise KeyError(under)
        starts = children.get(root.id, [])
    else:
        starts = children.get(None, [])
    wanted = fold(search) if search else None
    rows: list[AreaRow] = []

    def walk(nodes: list[Area]) -> None:
        for area in sorted(nodes, key=lambda a: (a.position, menu_sort_key(a.name))):
            if wanted is None or wanted in fold(area.name) or wanted in fold(area.code):
                names, node = [], area
                while node is not None:
                    names.append(node.name)
                    node = by_id.get(node.parent_id) if node.parent_id else None
                rows.append(AreaRow(area.code, area.level, area.name, ", ".join(names)))
            walk(children.get(area.id, []))

    walk(starts)
    return rows
