"""Perceived safety (SDG 16.1.4) as it may be published: the indicator's cells, protected.

:mod:`citoyen.services.surveys.indicators` computes every cell; here the numbers of answers of
every area and period, along the whole area tree and the periods under their year, go through
:func:`~citoyen.services.publication.suppression.protect`. A hidden cell shows nothing: no n, no
count of "safe" or "don't know" answers, no share, interval or change (the same pattern hides
the "safe" counts, which add up along the same relations). The CLI, the admin dashboard, the
public pages and the open data all read these cells.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from sqlmodel import Session

from citoyen.services.publication.areas import COUNTRY, COUNTRY_NAME, AreaTree
from citoyen.services.publication.periods import span, time_hierarchy
from citoyen.services.publication.suppression import Protected, protect
from citoyen.services.surveys import indicators


@dataclass(frozen=True)
class SafetyCell:
    """One published cell; every figure is None when the cell is suppressed."""

    area_code: str
    area_name: str
    level: str
    period: str
    n: int | None
    safe: int | None
    excluded: int | None
    share: float | None
    low: float | None
    high: float | None
    change: float | None
    suppressed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FIELDS = tuple(SafetyCell.__dataclass_fields__)


def threshold_for(survey: Any, floor: int, asked: int | None = None) -> int:
    """The survey's ``min_n``, the setting and any ``--min-n``: the highest wins (the setting is
    a floor no command can lower)."""
    return max(floor, survey.indicator.min_n, asked or 0)


def protected_answers(
    session: Session, survey: Any, period: indicators.Period, threshold: int
) -> tuple[Protected, list[indicators.Observation], AreaTree, list[str]]:
    """The protected cube of answer counts (n) of ``survey`` per area and period."""
    tree = AreaTree(session)
    observations = indicators.observations(session, survey, period)
    excluded = set(survey.indicator.excluded)
    counts: Counter[tuple[str, str]] = Counter()
    labels = set()
    for obs in observations:
        labels.add(obs.period)
        if obs.answer not in excluded:
            counts[(tree.leaf(obs.area_id), obs.period)] += 1
    leaves = {leaf for leaf, _ in counts}
    periods = span(labels)
    protected = protect(counts, [tree.hierarchy(leaves), time_hierarchy(periods)], threshold)
    return protected, observations, tree, periods


def level_areas(tree: AreaTree, by: str) -> list[tuple[str, str]]:
    """(code, name) of every published area of level ``by``: the whole grid, so that a missing
    row never tells a zero. The Bamako district stands as its own cercle."""
    if by == "national":
        return [(COUNTRY, COUNTRY_NAME)]
    out = [(a.code, a.name) for a in tree.areas.values() if a.level == by]
    if by == "cercle":
        parents_of_communes = {a.parent for a in tree.areas.values() if a.level == "commune"}
        out += [
            (a.code, a.name)
            for a in tree.areas.values()
            if a.level == "region" and a.code in parents_of_communes
        ]
    return sorted(out)


def published_series(
    session: Session,
    survey: Any,
    by: indicators.By = "commune",
    period: indicators.Period = "month",
    *,
    floor: int,
    min_n: int | None = None,
) -> list[SafetyCell]:
    """The indicator for every area of level ``by`` and every period from the first answer to
    the last, each small cell and its complements suppressed (what any face may show)."""
    threshold = threshold_for(survey, floor, min_n)
    protected, observations, tree, periods = protected_answers(session, survey, period, threshold)
    ind = survey.indicator
    raw = {
        (c.area_code, c.period): c
        for c in indicators.compute(
            observations, by, period, safe=ind.safe, excluded=ind.excluded, min_n=1
        )
        if protected.visible((c.area_code, c.period)) is not None
    }
    out = []
    for code, name in level_areas(tree, by):
        for label in periods:
            c = raw.get((code, label))
            if c is None:
                out.append(SafetyCell(code, name, by, label, *([None] * 7), True))  # type: ignore[arg-type]
                continue
            before = raw.get((code, indicators.previous_period(label, period)))
            change = None if before is None else c.share - before.share  # type: ignore[operator]
            out.append(
                SafetyCell(
                    code,
                    name,
                    by,
                    label,
                    c.n,
                    c.safe,
                    c.excluded,
                    c.share,
                    c.low,
                    c.high,
                    change,
                    False,
                )
            )
    return out


@dataclass(frozen=True)
class Results:
    """What ``citoyen survey results`` shows: the published cells and how many answers the
    indicator question has (to say why no cell is shown)."""

    cells: list[SafetyCell]
    answers: int


def survey_results(
    runtime: Any,
    survey: Any,
    by: indicators.By = "commune",
    period: indicators.Period = "month",
    *,
    min_n: int | None = None,
) -> Results:
    """:func:`published_series` of a survey, protected with the deployment's publication floor
    (``CITOYEN_PUBLICATION_MIN_COUNT``), and the number of answers behind it."""
    with Session(runtime.engine) as session:
        cells = published_series(
            session, survey, by, period, floor=runtime.settings.publication_min_count, min_n=min_n
        )
        answers = len(indicators.observations(session, survey, period))
    return Results(cells, answers)
