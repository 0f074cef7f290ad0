"""Load and validate ``config/stakeholders.yaml`` and ``config/routing.yaml``.

Like flows, these files are edited by hand by people who are not programmers, and a mistake here
means a concern reaching the wrong people or nobody. So they are checked by
``citoyen flows check`` with the same kind of messages (file, line, problem): errors for what
cannot work (an unknown stakeholder, area, category or urgency, a bad SLA duration, an on-call
address that is not a phone number or Telegram id), warnings for what probably is not what the
author meant (a category or area no rule reaches, a rule that never applies because others take
every report it matches, a rule whose stakeholders cover none of some communes, texts too long
for two SMS).

Area codes are checked against the tree the caller gives: the shipped sample's (no database
needed), or the database's for a deployment that imported other areas.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml.error import YAMLError

from citoyen.engine import sms
from citoyen.engine.layout import (
    LEGACY_NAMES,
    ROUTING_FILE,
    SETTINGS_FILE,
    STAKEHOLDERS_FILE,
    Layout,
)
from citoyen.engine.loader import (
    FlowError,
    Level,
    Problem,
    _pydantic_problems,
    _Source,
    plain,
)
from citoyen.engine.schema import ActionNode, ChoiceNode, Flow, duration_seconds
from citoyen.engine.schema import Settings as FlowSettings
from citoyen.i18n import Catalog, read_yaml, yaml_error_line
from citoyen.routing import texts
from citoyen.routing.areas import AreaInfo, AreaTree
from citoyen.routing.schema import (
    CLOSE_REASONS,
    DEFAULT_FALLBACK,
    DEFAULT_SLA,
    KINDS,
    NOTIFIABLE,
    URGENCIES,
    Nearest,
    RoutingFile,
    StakeholdersFile,
)
from citoyen.routing.table import (
    RoutingConfig,
    Rule,
    StakeholderDef,
    Target,
    expand,
    select_rule,
)

MAX_SMS_SEGMENTS = 2
# More examples than this in one message would bury it.
_EXAMPLES = 5


class RoutingError(FlowError):
    """Stakeholders or routing rules have errors; ``problems`` holds every finding.

    A kind of :class:`FlowError`: both are configuration that stops the service at start.
    """


def check(
    flows_dir: Path,
    locales_dir: Path,
    *,
    areas: AreaTree | None,
    config_dir: Path | None = None,
) -> list[Problem]:
    """Every problem (errors and warnings) of the stakeholders and routing files; never raises.

    ``areas``: the tree area codes must exist in (the shipped sample's is
    :func:`citoyen.services.areas.trees.shipped_area_tree`; None: area codes are not checked).
    ``config_dir``: where the files are (None: ``config/`` beside the flows folder); the flows
    give the report categories.
    """
    return _Checker(Layout.of(flows_dir, config_dir), Path(locales_dir), areas).run()[0]


def load_routing(
    flows_dir: Path,
    locales_dir: Path,
    *,
    areas: AreaTree | None = None,
    config_dir: Path | None = None,
) -> RoutingConfig:
    """The validated routing configuration; :class:`RoutingError` on any error.

    The service loads it without an area tree by default: at run time rules are resolved against
    the database's areas, where a code that does not exist simply never matches, and
    ``citoyen flows check`` / ``citoyen stakeholders sync`` report such codes.
    """
    layout = Layout.of(flows_dir, config_dir)
    problems, config = _Checker(layout, Path(locales_dir), areas).run()
    if config is None or any(p.level == "error" for p in problems):
        raise RoutingError(problems)
    return config


def flow_categories(flows_dir: Path) -> tuple[str, ...] | None:
    """The category keys reports can have: the options of the choice nodes whose answer a
    ``create_report`` action files as the category. None when no flow could be read (the flow
    validator reports why)."""
    categories: dict[str, None] = {}
    readable = False
    for path in sorted(Path(flows_dir).glob("*.yaml")):
        if path.name in LEGACY_NAMES:
            continue  # configuration in the layout before (engine/layout.py)
        try:
            flow = Flow.model_validate(plain(read_yaml(path)))
        except (YAMLError, ValidationError, OSError):
            continue
        readable = True
        answers = {
            action.create_report.category
            for node in flow.nodes.values()
            if isinstance(node, ActionNode)
            for action in node.do
            if action.create_report and action.create_report.category
        }
        for node in flow.nodes.values():
            if isinstance(node, ChoiceNode) and node.save in answers:
                categories.update(dict.fromkeys(o.key for o in node.options))
    return tuple(categories) if readable else None


def _close(word: str, choices: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _names(values: Iterable[str]) -> str:
    return ", ".join(values)


class _Checker:
    """Collects the problems of one check; builds the configuration when it is sound."""

    def __init__(self, layout: Layout, locales_dir: Path, areas: AreaTree | None) -> None:
        self.layout = layout
        self.flows_dir = layout.flows_dir
        self.s_found = layout.config_file(STAKEHOLDERS_FILE)
        self.r_found = layout.config_file(ROUTING_FILE)
        self.locales_dir = locales_dir
        self.tree = areas
        self.problems: list[Problem] = []
        self.enabled: list[str] = []
        self.emergency: dict[str, str] = {}
        self.categories: tuple[str, ...] | None = None
        self.catalog = Catalog({}, {})
        self.stakeholders: dict[str, StakeholderDef] = {}
        self.s_file = self.s_found.file
        self.r_file = self.r_found.file
        self.r_source: _Source | None = None
        self.stakeholders_known = True

    def add(self, level: Level, file: str, line: int | None, message: str) -> None:
        self.problems.append(Problem(level, file, line, None, message))

    def run(self) -> tuple[list[Problem], RoutingConfig | None]:
        self._load_context()
        before = len(self.problems)
        self.problems.extend(self.s_found.problems + self.r_found.problems)
        have_s = self.s_found.path.is_file()
        have_r = self.r_found.path.is_file()
        config: RoutingConfig | None = None
        if not have_s and not have_r:
            self.add(
                "warning",
                self.r_file,
                None,
                f"not found: every report goes to the '{DEFAULT_FALLBACK}' queue "
                f"(see docs/routing.md)",
            )
            fallback = StakeholderDef(DEFAULT_FALLBACK, "Moderation", "moderation")
            self.stakeholders = {DEFAULT_FALLBACK: fallback}
            config = self._routing(RoutingFile())
        elif not have_s:
            self.add("error", self.s_file, None, f"not found, but {ROUTING_FILE} needs it")
        else:
            self._load_stakeholders()
            if have_r:
                spec = self._read_routing()
                if spec is not None:
                    config = self._routing(spec)
            else:
                self.add(
                    "warning",
                    self.r_file,
                    None,
                    f"not found: every report goes to the '{DEFAULT_FALLBACK}' queue",
                )
                config = self._routing(RoutingFile())
        errors = any(p.level == "error" for p in self.problems[before:])
        if config is not None and not errors:
            if have_r:  # without the file, the one warning above says it all
                self._warnings(config)
            self._check_texts(config)
        self.problems.sort(key=lambda p: (p.file, p.line or 0, p.level, p.message))
        return self.problems, (None if errors else config)

    # -- context: languages, texts, categories ------------------------------------------------

    def _load_context(self) -> None:
        """Languages and emergency numbers (settings.yaml), texts, the report categories.

        Problems in those files are the flow validator's to report; here they only make the
        corresponding checks less complete.
        """
        if self.locales_dir.is_dir():
            self.catalog = Catalog.load(self.locales_dir, strict=False)
        self.enabled = list(self.catalog.languages)
        try:
            settings = FlowSettings.model_validate(
                plain(read_yaml(self.layout.config_file(SETTINGS_FILE).path))
            )
        except (YAMLError, ValidationError, OSError):
            settings = None
        if settings is not None:
            self.enabled = [x for x in settings.languages.enabled if x in self.catalog.languages]
            self.emergency = dict(settings.emergency_numbers)
        self.categories = flow_categories(self.flows_dir)

    def _read(self, path: Path, file: str) -> _Source | None:
        try:
            return _Source(file, read_yaml(path))
        except YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            self.add("error", file, yaml_error_line(exc), f"bad YAML: {problem}")
        except OSError as exc:
            self.add("error", file, None, f"cannot read: {exc.strerror}")
        return None

    def _validate(self, model: Any, source: _Source) -> Any:
        if not isinstance(source.tree, Mapping):
            self.add("error", source.file, None, "must be a mapping (see docs/routing.md)")
            return None
        try:
            return model.model_validate(plain(source.tree))
        except ValidationError as exc:
            self.problems.extend(_pydantic_problems(exc, source))
            return None

    def _area_problem(self, code: str) -> str | None:
        if self.tree is None or code in self.tree:
            return None
        return f"unknown area '{code}'{_close(code, (a.code for a in self.tree))}"

    # -- stakeholders.yaml ----------------------------------------------------------------------

    def _load_stakeholders(self) -> None:
        from citoyen.messages.addresses import AddressError, staff_address

        source = self._read(self.s_found.path, self.s_file)
        spec = self._validate(StakeholdersFile, source) if source is not None else None
        if spec is None:
            self.stakeholders_known = False  # do not also report every code as unknown
            return
        assert source is not None
        seen: dict[str, int | None] = {}
        for i, item in enumerate(spec.stakeholders):
            line = source.line("stakeholders", i)
            who = f"stakeholder '{item.code}'"
            if item.code in seen:
                self.add(
                    "error",
                    self.s_file,
                    source.line("stakeholders", i, "code"),
                    f"{who} is defined twice (first at line {seen[item.code]})",
                )
                continue
            seen[item.code] = line
            if item.area is not None and (problem := self._area_problem(item.area)):
                self.add(
                    "error",
                    self.s_file,
                    source.line("stakeholders", i, "area"),
                    f"{who}: {problem}",
                )
            if item.language is not None and self.enabled and item.language not in self.enabled:
                self.add(
                    "error",
                    self.s_file,
                    source.line("stakeholders", i, "language"),
                    f"{who}: language '{item.language}' is not enabled ({_names(self.enabled)})",
                )
            for j, address in enumerate(item.on_call):
                message = None
                if not address.startswith(("tel:", "telegram:")):
                    message = "must start with tel: (a phone number) or telegram: (a chat id)"
                else:
                    try:
                        staff_address(address)
                    except AddressError as exc:
                        message = str(exc)
                if message:
                    self.add(
                        "error",
                        self.s_file,
                        source.line("stakeholders", i, "on_call", j),
                        f"{who}: on-call address '{address}': {message}",
                    )
            self.stakeholders[item.code] = StakeholderDef(
                code=item.code,
                name=item.name,
                kind=item.kind,
                area=item.area,
                language=item.language,
                on_call=tuple(item.on_call),
                line=line,
            )

    # -- routing.yaml ---------------------------------------------------------------------------

    def _read_routing(self) -> RoutingFile | None:
        source = self._read(self.r_found.path, self.r_file)
        self.r_source = source
        return self._validate(RoutingFile, source) if source is not None else None

    def _line(self, *path: Any) -> int | None:
        return self.r_source.line(*path) if self.r_source is not None else None

    def _error(self, path: tuple[Any, ...], message: str) -> None:
        self.add("error", self.r_file, self._line(*path), message)

    def _warn(self, path: tuple[Any, ...], message: str) -> None:
        self.add("warning", self.r_file, self._line(*path), message)

    def _check_target(self, target: Target, path: tuple[Any, ...], who: str) -> None:
        if not self.stakeholders_known:
            return
        if isinstance(target, Nearest):
            if not any(s.kind == target.nearest for s in self.stakeholders.values()):
                self._warn(
                    path,
                    f"{who}: no stakeholder has kind '{target.nearest}', "
                    f"so {{nearest: {target.nearest}}} never finds anyone",
                )
        elif target not in self.stakeholders:
            self._error(
                path,
                f"{who}: unknown stakeholder '{target}'{_close(target, self.stakeholders)}",
            )

    def _routing(self, spec: RoutingFile) -> RoutingConfig:
        fallback = spec.fallback
        if self.stakeholders_known and fallback not in self.stakeholders:
            self._error(
                ("fallback",),
                f"the fallback queue '{fallback}' is not a stakeholder of {STAKEHOLDERS_FILE}",
            )
        elif fallback in self.stakeholders and self.stakeholders[fallback].kind != "moderation":
            self._warn(
                ("fallback",),
                f"the fallback queue '{fallback}' has kind "
                f"'{self.stakeholders[fallback].kind}', not 'moderation'",
            )
        sla = self._sla(spec.sla)
        for i, status in enumerate(spec.notify):
            if status not in NOTIFIABLE:
                self._error(
                    ("notify", i),
                    f"notify: unknown status '{status}' (one of: {_names(NOTIFIABLE)})",
                )
        window = self._duration(
            spec.duplicates.window, ("duplicates", "window"), "duplicates.window"
        )
        for name, steps in spec.escalation.items():
            if name not in KINDS and name != "default":
                self._error(
                    ("escalation", name),
                    f"escalation: '{name}' is neither a stakeholder kind nor 'default'",
                )
            for j, step in enumerate(steps):
                self._check_target(step, ("escalation", name, j), f"escalation '{name}'")
        rules = tuple(self._rule(i, rule) for i, rule in enumerate(spec.rules))
        return RoutingConfig(
            stakeholders=dict(self.stakeholders),
            rules=rules,
            fallback=fallback,
            sla=sla,
            notify=frozenset(s for s in spec.notify if s in NOTIFIABLE),
            duplicate_window=window or 48 * 3600,
            escalation={name: tuple(steps) for name, steps in spec.escalation.items()},
            categories=self.categories or (),
        )

    def _duration(self, text: str, path: tuple[Any, ...], what: str) -> int | None:
        try:
            seconds = duration_seconds(text)
        except ValueError:
            self._error(
                path,
                f"{what}: '{text}' is not a duration (a number then s, m, h or d: 15m, 2h, 2d)",
            )
            return None
        if seconds <= 0:
            self._error(path, f"{what}: must be longer than 0")
            return None
        return seconds

    def _sla(self, given: Mapping[str, str]) -> dict[str, int]:
        sla = {u: duration_seconds(d) for u, d in DEFAULT_SLA.items()}
        for urgency, text in given.items():
            if urgency not in URGENCIES:
                self._error(
                    ("sla", urgency),
                    f"sla: unknown urgency '{urgency}' (one of: {_names(URGENCIES)})",
                )
                continue
            seconds = self._duration(str(text), ("sla", urgency), f"sla.{urgency}")
            if seconds is not None:
                sla[urgency] = seconds
        return sla

    def _rule(self, i: int, spec: Any) -> Rule:
        who = f"rule {i + 1}"
        if spec.category is not None and self.categories is not None:
            for value in spec.category:
                if value not in self.categories:
                    self._error(
                        ("rules", i, "category"),
                        f"{who}: unknown category '{value}'{_close(value, self.categories)} "
                        f"(the report flow's categories: {_names(self.categories)})",
                    )
        if spec.urgency is not None:
            for value in spec.urgency:
                if value not in URGENCIES:
                    self._error(
                        ("rules", i, "urgency"),
                        f"{who}: unknown urgency '{value}' (one of: {_names(URGENCIES)})",
                    )
        if spec.area is not None and (problem := self._area_problem(spec.area)):
            self._error(("rules", i, "area"), f"{who}: {problem}")
        for j, target in enumerate(spec.to):
            self._check_target(target, ("rules", i, "to", j), who)
        return Rule(
            index=i,
            targets=tuple(spec.to),
            categories=frozenset(spec.category) if spec.category is not None else None,
            area=spec.area,
            urgencies=frozenset(spec.urgency) if spec.urgency is not None else None,
            line=self._line("rules", i),
        )

    # -- warnings -------------------------------------------------------------------------------

    def _warnings(self, config: RoutingConfig) -> None:
        tree = self.tree or self._flat_tree(config)
        self._check_shadowed(config, tree)
        self._check_categories(config)
        if self.tree is not None:
            self._check_areas(config, self.tree)
            self._check_coverage(config, self.tree)
        self._check_unused(config)

    @staticmethod
    def _flat_tree(config: RoutingConfig) -> AreaTree:
        """Without the area tree, each area named by a rule stands alone (enough to compare
        rules of one area with each other)."""
        codes = {r.area for r in config.rules if r.area} | {
            s.area for s in config.stakeholders.values() if s.area
        }
        return AreaTree({c: AreaInfo(c, c, "area", None) for c in codes if c})

    def _categories_of(self, rule: Rule, config: RoutingConfig) -> list[str | None]:
        if rule.categories is not None:
            return sorted(rule.categories)
        known = set(config.categories) | {
            c for r in config.rules if r.categories for c in r.categories
        }
        return [*sorted(known), None]  # None: a report without category (an unfinished call)

    def _check_shadowed(self, config: RoutingConfig, tree: AreaTree) -> None:
        for rule in config.rules:
            urgencies = sorted(rule.urgencies) if rule.urgencies is not None else URGENCIES
            winners: dict[int, Rule] = {}
            applies = False
            for category in self._categories_of(rule, config):
                for urgency in urgencies:
                    winner = select_rule(
                        config, tree, category=category, area=rule.area, urgency=urgency
                    )
                    if winner is rule:
                        applies = True
                        break
                    if winner is not None:
                        winners[winner.index] = winner
                if applies:
                    break
            if not applies:
                others = ", ".join(w.describe() for _i, w in sorted(winners.items()))
                self.add(
                    "warning",
                    self.r_file,
                    rule.line,
                    f"rule {rule.index + 1} never applies: every report it matches goes by "
                    f"{others or 'other rules'} (the most specific rule wins, then the first one)",
                )

    def _check_categories(self, config: RoutingConfig) -> None:
        if not config.rules:
            self._warn(("rules",), f"no rules: every report goes to the '{config.fallback}' queue")
            return
        for category in config.categories:
            if not any(r.categories is None or category in r.categories for r in config.rules):
                self._warn(
                    ("rules",),
                    f"category '{category}' is reached by no rule: all its reports go to "
                    f"the '{config.fallback}' queue",
                )

    def _check_areas(self, config: RoutingConfig, tree: AreaTree) -> None:
        if not config.rules or any(r.area is None for r in config.rules):
            return
        reached = {r.area for r in config.rules}
        full: dict[str, bool] = {}

        def unreached(code: str) -> bool:
            """No rule reaches this area nor anything below it."""
            if code not in full:
                full[code] = not (set(tree.ancestors(code)) & reached) and all(
                    unreached(child) for child in children.get(code, ())
                )
            return full[code]

        children: dict[str | None, list[str]] = {}
        for area in tree:
            children.setdefault(area.parent, []).append(area.code)
        for area in tree:
            if area.level == "quartier":
                continue
            if unreached(area.code) and (area.parent is None or not unreached(area.parent)):
                self._warn(
                    ("rules",),
                    f"area '{area.code}' ({area.name}) is reached by no rule: all its reports "
                    f"go to the '{config.fallback}' queue",
                )

    def _check_coverage(self, config: RoutingConfig, tree: AreaTree) -> None:
        """A rule whose stakeholders cover none of some communes sends them to moderation."""
        communes = [a.code for a in tree if a.level == "commune"]
        for rule in config.rules:
            if not all(isinstance(t, Nearest) for t in rule.targets):
                continue  # a stakeholder named by code always receives
            missed = []
            for commune in communes:
                if not tree.is_within(commune, rule.area):
                    continue
                if expand(config, tree, rule.targets, commune):
                    continue
                if self._wins_somewhere(config, tree, rule, commune):
                    missed.append(commune)
            if missed:
                examples = ", ".join(missed[:_EXAMPLES]) + (
                    ", ..." if len(missed) > _EXAMPLES else ""
                )
                self.add(
                    "warning",
                    self.r_file,
                    rule.line,
                    f"rule {rule.index + 1} finds no stakeholder for {len(missed)} commune(s), "
                    f"whose reports go to the '{config.fallback}' queue: {examples}",
                )

    def _wins_somewhere(self, config: RoutingConfig, tree: AreaTree, rule: Rule, area: str) -> bool:
        urgencies = sorted(rule.urgencies) if rule.urgencies is not None else URGENCIES
        return any(
            select_rule(config, tree, category=category, area=area, urgency=urgency) is rule
            for category in self._categories_of(rule, config)
            for urgency in urgencies
        )

    def _check_unused(self, config: RoutingConfig) -> None:
        named: set[str] = {config.fallback}
        kinds: set[str] = set()
        targets = [t for r in config.rules for t in r.targets]
        targets += [t for steps in config.escalation.values() for t in steps]
        for target in targets:
            if isinstance(target, Nearest):
                kinds.add(target.nearest)
            else:
                named.add(target)
        for code, stakeholder in config.stakeholders.items():
            if code not in named and stakeholder.kind not in kinds:
                self.add(
                    "warning",
                    self.s_file,
                    stakeholder.line,
                    f"stakeholder '{code}' is never routed to: no rule or escalation names it "
                    f"or its kind '{stakeholder.kind}'",
                )

    # -- texts ----------------------------------------------------------------------------------

    def _check_texts(self, config: RoutingConfig) -> None:
        cat = self.catalog
        langs = self.enabled
        if not langs:
            return
        required = [f"{texts.NOTIFY_PREFIX}{s}" for s in NOTIFIABLE if s in config.notify]
        required += [
            texts.ALERT_EMERGENCY,
            texts.ALERT_ESCALATED,
            texts.ALERT_CITIZEN_UPDATE,
            texts.ALERT_PLACE_UNKNOWN,
            texts.ALERT_CATEGORY_UNKNOWN,
            *(texts.urgency_key(u) for u in URGENCIES),
            # Discreet mode can be switched on by any contact: its texts must always exist.
            texts.DISCREET_NOTIFY,
            texts.DISCREET_STAFF_REPLY,
        ]
        for key in required:
            # A text present in some languages only is reported by the flow validator.
            if not any(cat.has(key, lang) for lang in langs):
                self._error(
                    ("notify",) if key.startswith(texts.NOTIFY_PREFIX) else (),
                    f"text '{key}' is missing in every language (needed to tell citizens and "
                    "stakeholders about reports)",
                )
        suffixes = set(config.categories) | set(CLOSE_REASONS)
        for lang in langs:
            for key in cat.keys(lang):
                if key.startswith(texts.NOTIFY_PREFIX):
                    self._check_notify_key(key, lang, suffixes)
                elif key.startswith("alert."):
                    self._check_text(key, lang, texts.ALERT_PLACEHOLDERS)
                elif key.startswith(texts.TEMPLATE_PREFIX):
                    self._check_template_key(key, lang)
                elif key == texts.STAFF_REPLY or key == texts.DISCREET_STAFF_REPLY:
                    self._check_text(key, lang, texts.STAFF_REPLY_PLACEHOLDERS)
                elif key.startswith(texts.DISCREET_PREFIX):
                    self._check_text(key, lang, texts.NOTIFY_PLACEHOLDERS)

    def _check_template_key(self, key: str, lang: str) -> None:
        parts = key.split(".")
        if len(parts) != 3 or parts[1] not in NOTIFIABLE:
            self.add(
                "warning",
                self.catalog.file(lang),
                self.catalog.line(key, lang),
                f"text '{key}' is never offered: response templates are "
                f"template.<status>.<name>, status one of {_names(NOTIFIABLE)}",
            )
            return
        self._check_text(key, lang, texts.NOTIFY_PLACEHOLDERS)

    def _check_notify_key(self, key: str, lang: str, suffixes: set[str]) -> None:
        parts = key.split(".")
        line = self.catalog.line(key, lang)
        file = self.catalog.file(lang)
        if parts[1] not in NOTIFIABLE or len(parts) > 3:
            self.add(
                "warning",
                file,
                line,
                f"text '{key}' is never used: notifications are notify.<status> or "
                f"notify.<status>.<category or closing reason>, status one of "
                f"{_names(NOTIFIABLE)}",
            )
            return
        if len(parts) == 3 and parts[2] not in suffixes:
            self.add(
                "warning",
                file,
                line,
                f"text '{key}' is never used: '{parts[2]}' is neither a category nor a "
                f"closing reason{_close(parts[2], suffixes)}",
            )
            return
        self._check_text(key, lang, texts.NOTIFY_PLACEHOLDERS)

    def _check_text(self, key: str, lang: str, allowed: frozenset[str]) -> None:
        cat = self.catalog
        extra = cat.placeholders(key, lang) - allowed - set(self.emergency)
        if extra:
            names = ", ".join(f"{{{n}}}" for n in sorted(extra))
            self.add(
                "warning",
                cat.file(lang),
                cat.line(key, lang),
                f"text '{key}' uses {names}, which is never given "
                f"(available: {', '.join(f'{{{n}}}' for n in sorted(allowed))} and the "
                "emergency numbers)",
            )
        text = cat.render(key, lang, {**self.emergency, **texts.SAMPLE_PARAMS})
        count = sms.segments(text)
        if count > MAX_SMS_SEGMENTS:
            self.add(
                "warning",
                cat.file(lang),
                cat.line(key, lang),
                f"SMS in '{lang}' costs {count} segments ({sms.encoding(text)}, "
                f"{sms.length(text)} units) for '{key}'; keep it to {MAX_SMS_SEGMENTS}",
            )
