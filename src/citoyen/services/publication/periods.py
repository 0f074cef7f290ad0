"""The time dimension of published tables: months (or ISO weeks) under their year.

Every period from the first to the last holds a cell, with or without data (a month without
answers is a hidden zero, not a missing row), and only periods that have begun: a month still
ahead would be a zero every reader knows.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

from citoyen.services.publication.suppression import Hierarchy


def next_period(label: str) -> str:
    """The month or ISO week after ``label`` (``2026-11`` or ``2026-W48``)."""
    if "-W" in label:
        year, week = label.split("-W")
        monday = date.fromisocalendar(int(year), int(week), 1) + timedelta(days=7)
        y, w, _ = monday.isocalendar()
        return f"{y:04d}-W{w:02d}"
    year, month = (int(x) for x in label.split("-"))
    return f"{year + 1:04d}-01" if month == 12 else f"{year:04d}-{month + 1:02d}"


def year_of(label: str) -> str:
    return label[:4]


def span(labels: Iterable[str], last: str | None = None) -> list[str]:
    """Every period from the start of the year of the earliest of ``labels`` to ``last``
    (default: the latest). Whole years: a year whose only shown month is the one with data
    would give its other (hidden) months away as zeros, and hide that month in turn."""
    wanted = sorted(set(labels))
    if not wanted:
        return []
    end = last or wanted[-1]
    first = wanted[0]
    out = [f"{first[:4]}-W01" if "-W" in first else f"{first[:4]}-01"]
    while out[-1] < end and len(out) < 10_000:
        out.append(next_period(out[-1]))
    return out


def time_hierarchy(periods: Iterable[str]) -> Hierarchy:
    """Each period under its year (a year is the sum of its months, or of its ISO weeks)."""
    parent: dict[str, str | None] = {}
    for label in periods:
        parent[label] = year_of(label)
        parent.setdefault(year_of(label), None)
    return Hierarchy("time", parent)
