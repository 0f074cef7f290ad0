"""The routing table: which stakeholders a report goes to, and who is next when nobody acts.

Pure functions over the validated configuration and an :class:`AreaTree`: no database, no clock,
so the rules can be tested (and reasoned about) case by case.

How a rule is chosen for a report (category, area, urgency):

1. A rule applies when each of its fields matches: its categories contain the report's (or it
   names none), its area is the report's area or one above it (or it names none: the whole
   country), its urgencies contain the report's (or it names none).
2. Among the rules that apply, the **most specific** wins: the deepest area first (commune over
   cercle over region over the whole country), then a rule naming categories over one that does
   not, then a rule naming urgencies over one that does not. Between equally specific rules, the
   first in the file wins (a later one is reported as shadowed by the validator).
3. The winning rule's targets are expanded: a code is that stakeholder; ``{nearest: KIND}`` is
   the stakeholder(s) of that kind whose area is the closest one containing the report's place.
4. No rule, or a rule whose targets find nobody: the report goes to the fallback (moderation)
   queue. A report is never dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from citoyen.routing.areas import AreaTree
from citoyen.routing.schema import DEFAULT_FALLBACK, Nearest

Target = str | Nearest


@dataclass(frozen=True)
class StakeholderDef:
    """A stakeholder as configured (the database row is created from it)."""

    code: str
    name: str
    kind: str
    area: str | None = None
    language: str | None = None
    on_call: tuple[str, ...] = ()
    line: int | None = None


@dataclass(frozen=True)
class Rule:
    """One routing rule; ``categories``/``urgencies`` None means any."""

    index: int
    targets: tuple[Target, ...]
    categories: frozenset[str] | None = None
    area: str | None = None
    urgencies: frozenset[str] | None = None
    line: int | None = None

    def matches(self, category: str | None, urgency: str | None) -> bool:
        if self.categories is not None and category not in self.categories:
            return False
        return self.urgencies is None or urgency in self.urgencies

    def describe(self) -> str:
        return f"the rule at line {self.line}" if self.line else f"rule {self.index + 1}"


@dataclass(frozen=True)
class RoutingConfig:
    """Stakeholders, rules, SLAs and escalation chains, validated and ready to resolve."""

    stakeholders: Mapping[str, StakeholderDef]
    rules: tuple[Rule, ...] = ()
    fallback: str = DEFAULT_FALLBACK
    sla: Mapping[str, int] = field(default_factory=dict)  # urgency -> seconds
    notify: frozenset[str] = frozenset()
    duplicate_window: int = 48 * 3600  # seconds
    escalation: Mapping[str, tuple[Target, ...]] = field(default_factory=dict)
    categories: tuple[str, ...] = ()  # the report flow's category keys

    def sla_seconds(self, urgency: str | None) -> int:
        """The time a stakeholder has to acknowledge a report of this urgency."""
        if urgency in self.sla:
            return self.sla[urgency]  # type: ignore[index]
        return self.sla.get("normal", 48 * 3600)

    def chain_name(self, kind: str) -> str:
        """The escalation chain of entries first routed to a stakeholder of ``kind``.

        A kind with its own chain uses it; others use ``default``, except the moderation
        queue, which is the end of every chain and escalates only if given a chain of its own.
        """
        if kind in self.escalation:
            return kind
        return "none" if kind == "moderation" else "default"

    def chain(self, name: str) -> tuple[Target, ...]:
        if name == "none":
            return ()
        if name in self.escalation:
            return self.escalation[name]
        return self.escalation.get("default", (self.fallback,))


@dataclass(frozen=True)
class Route:
    """One stakeholder a report goes to, and why."""

    stakeholder: str
    via: str  # rule | fallback
    rule: Rule | None = None


@dataclass(frozen=True)
class Resolution:
    routes: tuple[Route, ...]
    rule: Rule | None  # the rule that won (None: no rule applied)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(r.stakeholder for r in self.routes)

    @property
    def fallback(self) -> bool:
        return all(r.via == "fallback" for r in self.routes)


def _specificity(rule: Rule, ancestors: tuple[str, ...]) -> tuple[int, int, int] | None:
    """How specific ``rule`` is for a report whose area has these ancestors (None: n/a)."""
    if rule.area is None:
        depth = 0
    elif rule.area in ancestors:
        depth = len(ancestors) - ancestors.index(rule.area)
    else:
        return None
    return (depth, rule.categories is not None, rule.urgencies is not None)


def applicable(
    config: RoutingConfig,
    tree: AreaTree,
    *,
    category: str | None,
    area: str | None,
    urgency: str | None,
) -> list[Rule]:
    """Rules that apply, the winner first (most specific, then first in the file)."""
    ancestors = tree.ancestors(area)
    ranked: list[tuple[tuple[int, int, int], int, Rule]] = []
    for rule in config.rules:
        if not rule.matches(category, urgency):
            continue
        spec = _specificity(rule, ancestors)
        if spec is not None:
            ranked.append((spec, -rule.index, rule))
    ranked.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return [rule for _spec, _index, rule in ranked]


def select_rule(
    config: RoutingConfig,
    tree: AreaTree,
    *,
    category: str | None,
    area: str | None,
    urgency: str | None,
) -> Rule | None:
    """The rule that decides where this report goes, or None (fallback)."""
    rules = applicable(config, tree, category=category, area=area, urgency=urgency)
    return rules[0] if rules else None


def nearest(
    config: RoutingConfig,
    tree: AreaTree,
    kind: str,
    area: str | None,
    exclude: Iterable[str] = (),
) -> tuple[str, ...]:
    """Stakeholders of ``kind`` whose area is the closest one containing ``area``.

    Walks up from the report's area (commune, cercle, region) to national stakeholders, and
    stops at the first level with any; ``exclude`` skips stakeholders (already involved, or that
    declined), so escalation finds the next one up.
    """
    excluded = set(exclude)
    candidates = [
        s for s in config.stakeholders.values() if s.kind == kind and s.code not in excluded
    ]
    for level in (*tree.ancestors(area), None):
        found = tuple(sorted(s.code for s in candidates if s.area == level))
        if found:
            return found
    return ()


def expand(
    config: RoutingConfig,
    tree: AreaTree,
    targets: Iterable[Target],
    area: str | None,
    exclude: Iterable[str] = (),
) -> tuple[str, ...]:
    """Stakeholder codes for these targets, in order, without repeats or excluded ones."""
    excluded = set(exclude)
    codes: list[str] = []
    for target in targets:
        if isinstance(target, Nearest):
            found: tuple[str, ...] = nearest(config, tree, target.nearest, area, excluded)
        else:
            found = (target,) if target not in excluded else ()
        for code in found:
            if code not in codes:
                codes.append(code)
    return tuple(codes)


def resolve(
    config: RoutingConfig,
    tree: AreaTree,
    *,
    category: str | None,
    area: str | None,
    urgency: str | None,
    exclude: Iterable[str] = (),
) -> Resolution:
    """Where a report goes: the winning rule's stakeholders, else the fallback queue."""
    rule = select_rule(config, tree, category=category, area=area, urgency=urgency)
    if rule is not None:
        codes = expand(config, tree, rule.targets, area, exclude)
        if codes:
            return Resolution(tuple(Route(code, "rule", rule) for code in codes), rule)
    return Resolution((Route(config.fallback, "fallback", rule),), rule)


@dataclass(frozen=True)
class Escalation:
    level: int  # the escalation level of the new entries (the step's position + 1)
    stakeholders: tuple[str, ...]


def next_escalation(
    config: RoutingConfig,
    tree: AreaTree,
    *,
    chain: str,
    level: int,
    area: str | None,
    late_kind: str | None = None,
    late_area: str | None = None,
    exclude: Iterable[str] = (),
) -> Escalation | None:
    """Who an overdue entry at ``level`` escalates to; None when the chain is exhausted.

    Steps are tried from position ``level`` on; the first that finds anyone is used. A
    ``{nearest: KIND}`` step of the late stakeholder's own kind looks strictly above the late
    stakeholder's area (a commissariat escalates to the district police, never to a
    neighbouring commissariat or back down); other steps look from the report's area up, like
    routing does. ``exclude``: stakeholders that must not be chosen (the ones this entry was
    escalated from, those that declined). The stakeholders found may already be on the report:
    the caller decides what that means.
    """
    steps = config.chain(chain)
    excluded = set(exclude)
    for position in range(max(0, level), len(steps)):
        step = steps[position]
        if isinstance(step, Nearest) and step.nearest == late_kind:
            above = _parent(tree, late_area)
            if late_area is None or (above is None and late_area not in tree):
                codes: tuple[str, ...] = ()  # nothing above a national stakeholder
            else:
                codes = _nearest_from(config, tree, step.nearest, above, excluded)
        else:
            codes = expand(config, tree, (step,), area, excluded)
        if codes:
            return Escalation(position + 1, codes)
    return None


def _parent(tree: AreaTree, code: str | None) -> str | None:
    info = tree.get(code) if code is not None else None
    return info.parent if info is not None else None


def _nearest_from(
    config: RoutingConfig, tree: AreaTree, kind: str, start: str | None, exclude: set[str]
) -> tuple[str, ...]:
    """:func:`nearest` from ``start`` up; ``start`` None: national stakeholders only."""
    if start is None:
        return tuple(
            sorted(
                s.code
                for s in config.stakeholders.values()
                if s.kind == kind and s.area is None and s.code not in exclude
            )
        )
    return nearest(config, tree, kind, start, exclude)
