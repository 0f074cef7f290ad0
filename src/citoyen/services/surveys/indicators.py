"""The perceived-safety indicator (SDG 16.1.4) per area and period, honestly measured.

For one survey, the indicator question's answers (``safe_after_dark`` by default) given by invited
contacts are counted per area and period:

- **n** is the number of answers in the denominator: every answer except the ``excluded`` ones
  ("don't know"), which are counted apart. "I never walk alone after dark" stays in the
  denominator and is *not* counted as feeling safe: people who avoid going out after dark
  mostly do so because they do not feel safe, and leaving them out would make an area look
  safer the more its people stay home (docs/surveys.md).
- **share** = (very safe + fairly safe) / n, with a **Wilson 95% interval** (it stays within
  [0, 1] and behaves for small n and shares near 0 or 1, unlike the normal approximation).
- **change** = share minus the previous period's share for the same area (None when either is
  missing or suppressed).
- Cells with n below ``min_n`` (default 10) are **suppressed**: share, interval and change are
  withheld (n is still shown), so that nobody's answer can be told apart in a small commune.
- **Roll-up**: an answer counts for its commune, that commune's cercle, its region and the
  country; an answer whose area is only known at a higher level counts from that level up.
  The Bamako district has communes but no cercles: it stands as its own cercle.

Only answers to invitations count (a random draw of consenting contacts): someone who starts the
survey by keyword chose to answer, which would bias the share. Answers are unweighted; the
sample is of people who reached citoyen and consented, not of the population (docs/surveys.md).
Periods are calendar months or ISO weeks in Africa/Bamako time.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from citoyen.models import Area, SurveyAnswer, SurveyInvitation

Z95 = 1.959963984540054  # two-sided 95% normal quantile
NATIONAL = "national"
LEVELS: tuple[str, ...] = ("commune", "cercle", "region", NATIONAL)
By = Literal["commune", "cercle", "region", "national"]
Period = Literal["week", "month"]


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion (``n`` > 0)."""
    if n <= 0:
        raise ValueError("n must be positive")
    if not 0 <= successes <= n:
        raise ValueError("successes must be between 0 and n")
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def period_of(moment: datetime, period: Period, zone: ZoneInfo) -> str:
    """``2026-11`` (month) or ``2026-W48`` (ISO week) of a UTC moment, in local time."""
    local = moment.astimezone(zone).date()
    if period == "month":
        return f"{local.year:04d}-{local.month:02d}"
    year, week, _ = local.isocalendar()
    return f"{year:04d}-W{week:02d}"


def previous_period(label: str, period: Period) -> str:
    if period == "month":
        year, month = (int(x) for x in label.split("-"))
        return f"{year - 1:04d}-12" if month == 1 else f"{year:04d}-{month - 1:02d}"
    year, week = label.split("-W")
    monday = date.fromisocalendar(int(year), int(week), 1) - timedelta(days=7)
    y, w, _ = monday.isocalendar()
    return f"{y:04d}-W{w:02d}"


@dataclass(frozen=True)
class AreaRef:
    code: str
    name: str
    level: str  # region | cercle | commune | national


@dataclass(frozen=True)
class Observation:
    """One answer: where (the areas it rolls up to, by level), when, and what."""

    areas: dict[str, AreaRef]
    period: str
    answer: str
    area_id: int | None = None  # the stored area, for the publication's area tree


@dataclass(frozen=True)
class Cell:
    """One area and period of the series; share/low/high/change are None when suppressed."""

    area_code: str
    area_name: str
    level: str
    period: str
    n: int
    safe: int
    excluded: int
    share: float | None
    low: float | None
    high: float | None
    change: float | None
    suppressed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


COUNTRY = AreaRef("ML", "Mali", NATIONAL)


def compute(
    observations: Iterable[Observation],
    by: By,
    period: Period,
    *,
    safe: Sequence[str],
    excluded: Sequence[str],
    min_n: int,
) -> list[Cell]:
    """The cells of one level, sorted by area then period (pure: tests check it by hand)."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    refs: dict[str, AreaRef] = {}
    for obs in observations:
        ref = obs.areas.get(by)
        if ref is None:
            continue  # known only above this level (or not at all): counted higher up
        refs[ref.code] = ref
        cell = counts[(ref.code, obs.period)]
        if obs.answer in excluded:
            cell[2] += 1
        else:
            cell[0] += 1
            if obs.answer in safe:
                cell[1] += 1
    shares: dict[tuple[str, str], float] = {}
    cells: list[Cell] = []
    for (code, label), (n, ok, skipped) in sorted(counts.items()):
        suppressed = n < min_n
        share = low = high = None
        if not suppressed:
            share = ok / n
            low, high = wilson(ok, n)
            shares[(code, label)] = share
        cells.append(
            Cell(
                code,
                refs[code].name,
                refs[code].level,
                label,
                n,
                ok,
                skipped,
                share,
                low,
                high,
                None,
                suppressed,
            )
        )
    out = []
    for cell in cells:
        before = shares.get((cell.area_code, previous_period(cell.period, period)))
        change = None
        if cell.share is not None and before is not None:
            change = cell.share - before
        out.append(Cell(**{**asdict(cell), "change": change}))
    return out


def area_levels(session: Session) -> dict[int, dict[str, AreaRef]]:
    """For each area id, the areas it rolls up to by level (itself included)."""
    rows = session.exec(select(Area)).all()
    by_id = {a.id: a for a in rows}
    out: dict[int, dict[str, AreaRef]] = {}
    for area in rows:
        levels: dict[str, AreaRef] = {NATIONAL: COUNTRY}
        node: Area | None = area
        while node is not None:
            if node.level in ("commune", "cercle"):
                levels.setdefault(node.level, AreaRef(node.code, node.name, node.level))
            elif node.level in ("region", "district"):
                ref = AreaRef(node.code, node.name, "region")
                levels.setdefault("region", ref)
                if "commune" in levels and "cercle" not in levels:
                    # Bamako: communes directly under the district, which stands as their cercle.
                    levels["cercle"] = AreaRef(node.code, node.name, "cercle")
            node = by_id.get(node.parent_id) if node.parent_id is not None else None
        out[area.id] = levels  # type: ignore[index]
    return out


def observations(session: Session, survey: Any, period: Period) -> list[Observation]:
    """The indicator question's answers to this survey's invitations."""
    levels = area_levels(session)
    rows = session.exec(
        select(SurveyAnswer.area_id, SurveyAnswer.created_at, SurveyAnswer.answer)
        .join(SurveyInvitation, SurveyInvitation.conversation_id == SurveyAnswer.conversation_id)
        .where(
            SurveyInvitation.survey == survey.id,
            SurveyAnswer.question == survey.indicator.question,
        )
    ).all()
    zone = survey.timezone
    return [
        Observation(
            levels.get(area_id, {NATIONAL: COUNTRY})
            if area_id is not None
            else {NATIONAL: COUNTRY},
            period_of(created_at, period, zone),
            answer,
            area_id,
        )
        for area_id, created_at, answer in rows
    ]


def series(
    session: Session,
    survey: Any,
    by: By = "commune",
    period: Period = "month",
    *,
    min_n: int | None = None,
) -> list[Cell]:
    """The indicator of ``survey`` (a :class:`~.definitions.SurveyDef`) per area of level ``by``
    and per period, for the admin's charts and ``citoyen survey results``."""
    if by not in LEVELS:
        raise ValueError(f"by must be one of {', '.join(LEVELS)}")
    if period not in ("week", "month"):
        raise ValueError("period must be week or month")
    ind = survey.indicator
    return compute(
        observations(session, survey, period),
        by,
        period,
        safe=ind.safe,
        excluded=ind.excluded,
        min_n=ind.min_n if min_n is None else min_n,
    )


def series_for(
    runtime: Any,
    survey_name: str,
    by: By = "commune",
    period: Period = "month",
    *,
    min_n: int | None = None,
) -> list[Cell]:
    """:func:`series` by survey name, for faces that hold a runtime (the admin dashboard).

    Raises KeyError for a survey that ``flows/surveys/`` does not define.
    """
    from citoyen.services.surveys import surveys_for

    survey = surveys_for(runtime)[survey_name]
    with Session(runtime.engine) as session:
        return series(session, survey, by, period, min_n=min_n)
