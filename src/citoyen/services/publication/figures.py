"""The public figures: reports, response times and perceived safety, per area and month.

Built from the database in one pass and protected table by table
(:mod:`citoyen.services.publication.suppression`):

- **reports**: reports received per area × month (under its year) × category (under "all").
  Reports merged into another one are left out: they are the same event told twice.
- **entries**: queue entries per area × month × kind of stakeholder (declined entries left out:
  the report went to another queue, whose entry counts). Beside each visible cell: the share
  taken in hand or closed no later than the deadline (among entries whose outcome is known),
  the median hours to being taken in hand and to being closed, each shown only when it rests on
  at least the threshold of entries.
- **resolved**: share of the visible report cells (all categories) whose report is resolved.
- **safety**: each survey's answers per area × month, as :mod:`.safety` publishes them.

Nothing here holds a reference, a text, a contact or a date finer than the month; places stop
at the commune. :func:`public_figures` keeps the result for ``CITOYEN_PUBLIC_CACHE_SECONDS`` so a
crowd of readers costs one computation.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, select

from citoyen.models import QueueEntry, Report, Stakeholder
from citoyen.services.publication.areas import AreaTree
from citoyen.services.publication.periods import span, time_hierarchy
from citoyen.services.publication.safety import protected_answers, threshold_for
from citoyen.services.publication.suppression import Hierarchy, Protected, protect
from citoyen.services.surveys.indicators import previous_period, wilson
from citoyen.services.trial import real_reports

ALL = "*"


def month_of(moment: datetime) -> str:
    """The month of a UTC moment in Bamako (UTC+0 all year)."""
    moment = moment.astimezone(UTC)
    return f"{moment.year:04d}-{moment.month:02d}"


def flat(name: str, values: Iterable[str]) -> Hierarchy:
    return Hierarchy(name, {ALL: None, **dict.fromkeys(values, ALL)})


@dataclass
class EntryStats:
    decided: int = 0
    on_time: int = 0
    ack_hours: list[float] = field(default_factory=list)
    close_hours: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class SafetyTable:
    survey: str
    protected: Protected
    safe: dict[tuple[str, str], int]


@dataclass(frozen=True)
class PublicFigures:
    computed_at: datetime
    threshold: int
    tree: AreaTree
    months: list[str]
    reports: Protected
    resolved: dict[tuple[str, str], int]
    entries: Protected
    entry_stats: dict[tuple[str, str, str], EntryStats]
    safety: list[SafetyTable]

    @property
    def years(self) -> list[str]:
        return sorted({m[:4] for m in self.months}, reverse=True)

    # --- what pages and downloads read: None wherever the figure may not be published ----

    def reports_count(self, area: str, period: str, category: str = ALL) -> int | None:
        return self.reports.visible((area, period, category))

    def share_resolved(self, area: str, period: str) -> float | None:
        n = self.reports.visible((area, period, ALL))
        return None if not n else self.resolved.get((area, period), 0) / n

    def response(self, area: str, period: str, kind: str = ALL) -> dict[str, Any]:
        """Entries, share on time, median hours to acknowledgement and to closing."""
        n = self.entries.visible((area, period, kind))
        stats = self.entry_stats.get((area, period, kind), EntryStats())
        enough = self.threshold

        def median(values: list[float]) -> float | None:
            return round(statistics.median(values), 1) if n and len(values) >= enough else None

        return {
            "entries": n,
            "on_time": (stats.on_time / stats.decided if n and stats.decided >= enough else None),
            "median_ack_hours": median(stats.ack_hours),
            "median_close_hours": median(stats.close_hours),
        }

    def safety_cell(self, table: SafetyTable, area: str, period: str) -> dict[str, Any] | None:
        n = table.protected.visible((area, period))
        if not n:
            return None
        safe = table.safe.get((area, period), 0)
        low, high = wilson(safe, n)
        before = table.protected.visible((area, previous_period(period, "month")))
        change = None
        if before:
            change = safe / n - table.safe.get((area, previous_period(period, "month")), 0) / before
        return {"n": n, "share": safe / n, "low": low, "high": high, "change": change}

    @property
    def categories(self) -> list[str]:
        return [c for c in self.reports.dims[2].values if c != ALL]

    @property
    def kinds(self) -> list[str]:
        return [k for k in self.entries.dims[2].values if k != ALL]


def compute(session: Session, runtime: Any, now: datetime) -> PublicFigures:
    """Every public figure at ``now`` (months up to ``now``'s, none ahead)."""
    threshold = runtime.settings.publication_min_count
    tree = AreaTree(session)
    current = month_of(now)

    report_counts: Counter[tuple[str, str, str]] = Counter()
    resolved_leaf: Counter[tuple[str, str]] = Counter()
    for area_id, created_at, category, status in session.exec(
        select(Report.area_id, Report.created_at, Report.category, Report.status).where(
            Report.merged_into_id.is_(None),
            real_reports(),
        )
    ):
        month = month_of(created_at)
        if month > current:
            continue
        leaf = tree.leaf(area_id)
        report_counts[(leaf, month, category or "none")] += 1
        if status == "resolved":
            resolved_leaf[(leaf, month)] += 1

    entry_counts: Counter[tuple[str, str, str]] = Counter()
    leaf_stats: dict[tuple[str, str, str], EntryStats] = defaultdict(EntryStats)
    rows = session.exec(
        select(
            QueueEntry.area_id,
            QueueEntry.created_at,
            QueueEntry.due_at,
            QueueEntry.acknowledged_at,
            QueueEntry.closed_at,
            Stakeholder.kind,
        )
        .join(Stakeholder, Stakeholder.id == QueueEntry.stakeholder_id)
        .where(QueueEntry.status != "declined")
    )
    for area_id, created, due, acked, closed, kind in rows:
        month = month_of(created)
        if month > current:
            continue
        key = (tree.leaf(area_id), month, kind)
        entry_counts[key] += 1
        stats = leaf_stats[key]
        if acked is not None or closed is not None or due <= now:
            stats.decided += 1
            if (acked is not None and acked <= due) or (closed is not None and closed <= due):
                stats.on_time += 1
        if acked is not None:
            stats.ack_hours.append((acked - created).total_seconds() / 3600)
        if closed is not None:
            stats.close_hours.append((closed - created).total_seconds() / 3600)

    months = span([m for _, m, _ in report_counts] + [m for _, m, _ in entry_counts], current)
    times = time_hierarchy(months)
    leaves = {a for a, _, _ in report_counts} | {a for a, _, _ in entry_counts}
    areas = tree.hierarchy(leaves)
    categories = {c for *_, c in report_counts} | known_categories(runtime)
    reports = protect(report_counts, [areas, times, flat("category", categories)], threshold)
    entries = protect(
        entry_counts, [areas, times, flat("kind", {k for *_, k in entry_counts})], threshold
    )
    return PublicFigures(
        computed_at=now,
        threshold=threshold,
        tree=tree,
        months=months,
        reports=reports,
        resolved=_roll_up(resolved_leaf, [areas, times]),
        entries=entries,
        entry_stats=_roll_up_stats(leaf_stats, entries.dims),
        safety=_safety(session, runtime, threshold),
    )


def known_categories(runtime: Any) -> set[str]:
    """Every category citizens can choose (``report.category.<code>`` texts): each is a column
    of the table whether it has reports or not, so an empty one is a hidden zero and "all
    categories" minus the shown ones never gives a single small category away."""
    prefix = "report.category."
    catalog = runtime.bundle.catalog
    return {
        key[len(prefix) :]
        for key in catalog.keys("fr")
        if key.startswith(prefix) and "." not in key[len(prefix) :]
    }


def _roll_up(leaf: Counter[tuple[str, str]], dims: list[Hierarchy]) -> dict[tuple[str, str], int]:
    out: Counter[tuple[str, str]] = Counter()
    for (area, month), n in leaf.items():
        for a in dims[0].chain(area):
            for t in dims[1].chain(month):
                out[(a, t)] += n
    return dict(out)


def _roll_up_stats(
    leaf: dict[tuple[str, str, str], EntryStats], dims: tuple[Hierarchy, ...]
) -> dict[tuple[str, str, str], EntryStats]:
    out: dict[tuple[str, str, str], EntryStats] = defaultdict(EntryStats)
    for (area, month, kind), stats in leaf.items():
        for a in dims[0].chain(area):
            for t in dims[1].chain(month):
                for k in dims[2].chain(kind):
                    cell = out[(a, t, k)]
                    cell.decided += stats.decided
                    cell.on_time += stats.on_time
                    cell.ack_hours.extend(stats.ack_hours)
                    cell.close_hours.extend(stats.close_hours)
    return dict(out)


def _safety(session: Session, runtime: Any, floor: int) -> list[SafetyTable]:
    from citoyen.services.surveys import load_surveys

    tables = []
    for name, survey in sorted(load_surveys(runtime.settings.flows_dir).surveys.items()):
        protected, observations, tree, _ = protected_answers(
            session, survey, "month", threshold_for(survey, floor)
        )
        safe_leaf: Counter[tuple[str, str]] = Counter()
        for obs in observations:
            if obs.answer in survey.indicator.safe:
                safe_leaf[(tree.leaf(obs.area_id), obs.period)] += 1
        tables.append(SafetyTable(name, protected, _roll_up(safe_leaf, list(protected.dims))))
    return tables


_cache: dict[int, tuple[Any, float, PublicFigures]] = {}
_cache_lock = threading.Lock()  # guards _cache and _refreshing
_compute_lock = threading.Lock()  # one computation at a time per process
_refreshing: set[int] = set()


def _fresh(runtime: Any, now: datetime | None, *, reuse: bool = False) -> PublicFigures:
    """Compute and keep the figures; with ``reuse``, first take those another reader may have
    computed while this one waited for the lock."""
    with _compute_lock:
        if reuse:
            with _cache_lock:
                hit = _cache.get(id(runtime))
            if hit is not None and hit[0] is runtime:
                return hit[2]
        with Session(runtime.engine) as session:
            figures = compute(session, runtime, now or datetime.now(UTC))
        with _cache_lock:
            # The runtime is held with its figures: its id cannot be reused by another meanwhile.
            _cache[id(runtime)] = (runtime, time.monotonic(), figures)
    return figures


def _refresh(runtime: Any, now: datetime | None) -> None:
    try:
        _fresh(runtime, now)
    except Exception:
        logging.getLogger(__name__).exception("public figures: refresh failed, kept the last")
    finally:
        with _cache_lock:
            _refreshing.discard(id(runtime))


def public_figures(runtime: Any, now: datetime | None = None) -> PublicFigures:
    """The figures, recomputed at most once per ``CITOYEN_PUBLIC_CACHE_SECONDS`` per process.

    Computing them takes seconds for a whole country (docs/transparency.md): once they are
    older than that, readers keep getting the last ones while one background thread computes
    the next; only the very first readers of a process wait, one computation for all of them.
    """
    ttl = runtime.settings.public_cache_seconds
    key = id(runtime)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] is runtime:
            if time.monotonic() - hit[1] < ttl:
                return hit[2]
            if key not in _refreshing:
                _refreshing.add(key)
                threading.Thread(
                    target=_refresh, args=(runtime, now), name="public-figures", daemon=True
                ).start()
            return hit[2]
    return _fresh(runtime, now, reuse=True)  # the first readers: one computes for all


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
