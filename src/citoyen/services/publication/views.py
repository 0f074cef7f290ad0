"""One area and year of the public figures, as the pages, the open data and the bulletin show it.

Every number comes from :class:`~citoyen.services.publication.figures.PublicFigures`, which
returns None wherever a figure may not be published; nothing is computed here but layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from citoyen.services.publication.areas import UNSTATED, PublicArea
from citoyen.services.publication.figures import ALL, PublicFigures

OPEN_DATA_COLUMNS = (
    ("table", "reports | response | safety"),
    ("area_code", "area code (P-code based; ML = Mali)"),
    ("area_name", "area name"),
    ("level", "national | region | cercle | commune"),
    ("period", "YYYY-MM (a month) or YYYY (the year)"),
    (
        "group",
        "reports: a category or * (all); response: a kind of stakeholder or *; safety: the survey",
    ),
    (
        "measure",
        "reports: count, share_resolved; response: entries, on_time, median_ack_hours, median_close_hours; safety: n, share, low, high, change",
    ),
    (
        "value",
        "the figure; empty when suppressed (fewer than the threshold, or would give one away)",
    ),
)


@dataclass(frozen=True)
class AreaView:
    area: PublicArea
    path: list[PublicArea]
    children: list[PublicArea]
    year: str
    years: list[str]
    months: list[str]
    threshold: int
    categories: list[str]
    reports: dict[tuple[str, str], int | None]  # (category or *, month or year) -> count
    resolved: float | None
    kinds: list[str]
    response: dict[str, dict[str, Any]]  # kind or * -> figures for the year
    safety: list[tuple[str, dict[str, dict[str, Any] | None]]]  # (survey, month -> cell)

    def rows(self) -> list[dict[str, Any]]:
        """The open data: one row per figure, suppressed ones with an empty value."""
        a = self.area
        base = {"area_code": a.code, "area_name": a.name, "level": a.level}
        out: list[dict[str, Any]] = []
        for (category, period), n in sorted(self.reports.items()):
            out.append(
                {
                    **base,
                    "table": "reports",
                    "period": period,
                    "group": category,
                    "measure": "count",
                    "value": n,
                }
            )
        out.append(
            {
                **base,
                "table": "reports",
                "period": self.year,
                "group": ALL,
                "measure": "share_resolved",
                "value": _round(self.resolved, 3),
            }
        )
        for kind, figures in sorted(self.response.items()):
            for measure, value in figures.items():
                out.append(
                    {
                        **base,
                        "table": "response",
                        "period": self.year,
                        "group": kind,
                        "measure": measure,
                        "value": _round(value, 3),
                    }
                )
        for survey, cells in self.safety:
            for month, cell in sorted(cells.items()):
                for measure in ("n", "share", "low", "high", "change"):
                    value = None if cell is None else cell[measure]
                    out.append(
                        {
                            **base,
                            "table": "safety",
                            "period": month,
                            "group": survey,
                            "measure": measure,
                            "value": _round(value, 3),
                        }
                    )
        return out


def _round(value: Any, digits: int) -> Any:
    return round(value, digits) if isinstance(value, float) else value


def area_view(fig: PublicFigures, code: str, year: str | None = None) -> AreaView | None:
    """The page of ``code`` for ``year`` (default: the latest); None for an unknown area or
    year (or a pseudo-area "commune not stated", which has no page)."""
    area = fig.tree.areas.get(code)
    if area is None or code.endswith(UNSTATED):
        return None
    years = fig.years
    year = year or (years[0] if years else None)
    if year is None or year not in years:
        return None
    months = [m for m in fig.months if m.startswith(year + "-")]
    periods = [*months, year]
    reports = {
        (c, p): fig.reports_count(code, p, c) for c in [*fig.categories, ALL] for p in periods
    }
    safety = [(t.survey, {m: fig.safety_cell(t, code, m) for m in months}) for t in fig.safety]
    return AreaView(
        area=area,
        path=fig.tree.path(code),
        children=fig.tree.children(code),
        year=year,
        years=years,
        months=months,
        threshold=fig.threshold,
        categories=fig.categories,
        reports=reports,
        resolved=fig.share_resolved(code, year),
        kinds=fig.kinds,
        response={k: fig.response(code, year, k) for k in [*fig.kinds, ALL]},
        safety=safety,
    )
