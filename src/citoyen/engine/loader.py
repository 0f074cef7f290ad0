"""Load and validate flows, settings and locales (``citoyen flows check``).

Flows and texts are edited by hand by people who are not programmers, and a mistake must never
surface as a broken conversation in front of a citizen. Everything is therefore checked at load,
and each problem names the file, the line, the node and what is wrong, so it can be fixed without
reading code. ``check`` returns every problem; ``load_bundle`` refuses to start on any error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from ruamel.yaml.error import YAMLError

from citoyen.engine import sms, sms_budget, textnorm
from citoyen.engine.layout import LEGACY_NAMES, SETTINGS_FILE, SURVEYS_DIR, Layout
from citoyen.engine.problems import Level, Problem
from citoyen.engine.refcodes import parse_reference
from citoyen.engine.schema import (
    EFFECT_PARAMS,
    KEYWORD_NAMES,
    NODE_TYPES,
    TRIGGER_ANSWERS,
    ActionNode,
    AllCondition,
    AnswerCondition,
    AnyCondition,
    BranchNode,
    ChoiceNode,
    Flow,
    LanguageNode,
    NotCondition,
    NumberNode,
    Settings,
    TextNode,
    waits,
)
from citoyen.i18n import Catalog, read_yaml, yaml_error_line

# Texts the engine itself emits (docs/flows.md), with the placeholders each may use beyond the
# emergency numbers.
SYSTEM_KEYS: dict[str, frozenset[str]] = {
    "system.invalid_choice": frozenset(),
    "system.invalid_number": frozenset({"min", "max"}),
    "system.help": frozenset(),
    "system.stopped": frozenset(),
    "system.started": frozenset(),
    "system.discreet_on": frozenset(),
    "system.discreet_off": frozenset(),
    "system.goodbye": frozenset(),
    "system.no_answer": frozenset(),
    "system.more": frozenset(),
    "system.language_prompt": frozenset(),
    "system.language_option": frozenset({"n"}),
    "system.place_region": frozenset(),
    "system.place_cercle": frozenset(),
    "system.place_commune": frozenset(),
    "system.place_unknown": frozenset(),
    "system.expired": frozenset(),
    "system.text_too_long": frozenset({"max_length"}),
    "system.voice_option": frozenset({"label", "n"}),
    "system.invalid_reference": frozenset(),
}
# System texts needed only when the global keyword that says them is configured (a deployment
# without the discreet keywords needs no text for them).
KEYWORD_SYSTEM_KEYS: dict[str, str] = {
    "system.discreet_on": "discreet",
    "system.discreet_off": "normal",
}
# System texts a voice call can play (keyword replies and text_too_long only exist in messages).
VOICE_SYSTEM_KEYS: tuple[str, ...] = tuple(
    k
    for k in SYSTEM_KEYS
    if k
    not in (
        "system.help",
        "system.stopped",
        "system.started",
        "system.discreet_on",
        "system.discreet_off",
        "system.text_too_long",
    )
)
# Lines of menus, measured within the menus they belong to (voice_option is never sent by SMS).
_NOT_SMS = frozenset({"system.language_option", "system.voice_option"})
MAX_OPTIONS = 9
MAX_SMS_SEGMENTS = 2
# Stand-in for a report reference when measuring SMS length (references are short codes).
SAMPLE_REFERENCE = "K7P-4QX9"
_UNION_TAGS = frozenset({"bool", "int", "float", "str", "none"})
# What may follow a trigger keyword as its reference: digits with spaces, dashes or dots.
_REFERENCE_TEXT = re.compile(r"\s*\d[\d\s.\-]*")


class FlowError(Exception):
    """Flows or locales have errors; ``problems`` holds all findings, warnings included."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in self.errors))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]


@dataclass
class Bundle:
    """Everything the conversation service needs: flows by id, settings and texts."""

    flows: dict[str, Flow]
    settings: Settings
    catalog: Catalog
    warnings: list[Problem] = field(default_factory=list)
    # The flows survey calls run (the surveys of flows/surveys/ that call): heard on calls.
    survey_flows: frozenset[str] = frozenset()

    def call_flows(self) -> list[Flow]:
        """The flows a call can run (:func:`call_flows`)."""
        return call_flows(self.flows, self.survey_flows)

    def flow_for(
        self,
        trigger: Literal[
            "default", "first_contact", "incoming_call", "after_report", "report_addition"
        ],
    ) -> Flow | None:
        """The flow started by a trigger kind (the validator allows one flow per kind)."""
        for flow in self.flows.values():
            if any(t.kind == trigger and getattr(t, trigger) for t in flow.triggers):
                return flow
        return None

    def flow_for_keyword(self, text: str) -> Flow | None:
        """The flow whose trigger keyword matches the whole message, if any."""
        for flow in self.flows.values():
            for trigger in flow.triggers:
                if trigger.keyword and textnorm.find_keyword(text, {"k": trigger.keyword}):
                    return flow
        return None

    def triggered_by(self, text: str) -> tuple[Flow, str | None] | None:
        """The flow a message's trigger keyword starts, and the reference written after it.

        "SUIVI" and "SUIVI 161-6414" both start the follow flow (the second with its reference
        given); a keyword followed by anything but a reference is not a trigger ("signaler un
        vol" is a description, not the keyword SIGNALER).
        """
        flow = self.flow_for_keyword(text)
        if flow is not None:
            return flow, None
        head, _, rest = text.strip().partition(" ")
        reference = parse_reference(rest) if _REFERENCE_TEXT.fullmatch(rest) else None
        if reference is None:
            return None
        flow = self.flow_for_keyword(head)
        return (flow, reference) if flow is not None else None


def check(
    flows_dir: Path, locales_dir: Path, *, audio: bool = True, config_dir: Path | None = None
) -> list[Problem]:
    """Every problem (errors and warnings) in flows, settings and locales; never raises.

    ``audio=False`` leaves out the per-text warnings about shipped recordings: ``citoyen flows
    check`` reports the prompt library instead (recordings also live in the database there).
    ``config_dir``: where ``settings.yaml`` is (None: ``config/`` beside the flows folder).
    """
    checker = _Checker(Layout.of(flows_dir, config_dir), Path(locales_dir))
    checker.audio = audio
    return checker.run()[0]


# What a flow with a ``request_callback`` action needs besides its nodes' texts: the outcome the
# citizen is told (``callback.<outcome>``, citoyen.services.callbacks) and what an answered
# call-back says first (``callback.call_intro``, a voice prompt).
CALLBACK_OUTCOMES: tuple[str, ...] = (
    "requested",
    "later",
    "pending",
    "limit",
    "no_phone",
    "unavailable",
)
CALLBACK_INTRO = "callback.call_intro"
CALLBACK_KEYS: tuple[str, ...] = (
    *(f"callback.{outcome}" for outcome in CALLBACK_OUTCOMES),
    CALLBACK_INTRO,
)


def requests_callback(flow: Flow) -> bool:
    """Whether a node of ``flow`` asks for a call-back (``request_callback``)."""
    return any(
        action.kind == "request_callback"
        for node in flow.nodes.values()
        if isinstance(node, ActionNode)
        for action in node.do
    )


def _flow_with(flows: Mapping[str, Flow], kind: str) -> Flow | None:
    for flow in flows.values():
        if any(t.kind == kind and getattr(t, kind) for t in flow.triggers):
            return flow
    return None


def call_flows(flows: Mapping[str, Flow], called: Iterable[str] = ()) -> list[Flow]:
    """The flows a call can run, in file order: the one an incoming call starts (its
    ``incoming_call`` trigger; without one, the ``first_contact`` and ``default`` flows, or the
    first flow, as the conversation service falls back) and ``called``, those the server starts
    on a call (survey calls: :func:`survey_flows`).

    Every other flow is started by a typed message only (a keyword, a message about a recent
    report: a call sends neither), so its texts are only ever sent as text.
    """
    incoming = _flow_with(flows, "incoming_call")
    if incoming is not None:
        starts = [incoming]
    else:
        starts = [f for f in (_flow_with(flows, k) for k in ("first_contact", "default")) if f]
        starts = starts or list(flows.values())[:1]
    ids = {flow.id for flow in starts} | set(called)
    return [flow for flow in flows.values() if flow.id in ids]


def survey_flows(flows_dir: Path) -> frozenset[str]:
    """The flows survey calls run: the ``flow`` of each ``<flows>/surveys/*.yaml`` whose
    ``channels`` include ``voice``.

    Read leniently, these two fields only: :mod:`citoyen.services.surveys.definitions`
    validates survey files and reports their problems; a file it would refuse counts here as
    well as it can (a prompt too many in the catalogue is better than one missing).
    """
    folder = Path(flows_dir) / SURVEYS_DIR
    found: set[str] = set()
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            tree = plain(read_yaml(path))
        except (YAMLError, OSError, ValueError):
            continue
        if not isinstance(tree, dict):
            continue
        channels, flow = tree.get("channels"), tree.get("flow")
        if isinstance(channels, list) and "voice" in channels and isinstance(flow, str):
            found.add(flow)
    return frozenset(found)


def voice_keys(flows: Mapping[str, Flow], called: Iterable[str] = ()) -> list[str]:
    """Every text key a call can play (the prompt library's catalogue), without repeats: the
    engine's voice texts, then in file order the node and option texts of each flow a call can
    run (:func:`call_flows`; ``called``: the flows survey calls run) and, for a flow that asks
    for call-backs, the opening of the answered call-back (the flow itself runs on text
    channels: a caller is already on the phone)."""
    keys: dict[str, None] = dict.fromkeys(VOICE_SYSTEM_KEYS)
    heard = {flow.id for flow in call_flows(flows, called)}
    for flow in flows.values():
        if flow.id in heard:
            for name, node in flow.nodes.items():
                keys.update(dict.fromkeys(k for k, _path in _texts(name, node)))
        if requests_callback(flow):
            keys[CALLBACK_INTRO] = None
    return list(keys)


def load_bundle(flows_dir: Path, locales_dir: Path, *, config_dir: Path | None = None) -> Bundle:
    """Load flows, settings and locales; raise :class:`FlowError` if anything is an error.

    ``config_dir``: where ``settings.yaml`` is (None: ``config/`` beside the flows folder).
    """
    problems, bundle = _Checker(Layout.of(flows_dir, config_dir), Path(locales_dir)).run()
    if bundle is None or any(p.level == "error" for p in problems):
        raise FlowError(problems)
    return bundle


# -- helpers ----------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """ruamel's round-trip objects (CommentedMap, ScalarString...) as plain Python data."""
    if isinstance(value, Mapping):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bool) or type(value).__name__ == "ScalarBoolean":
        return bool(value)
    for kind in (int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


class _Source:
    """A parsed YAML file with the line numbers ruamel keeps."""

    def __init__(self, file: str, tree: Any) -> None:
        self.file = file
        self.tree = tree

    def line(self, *path: Any) -> int | None:
        """1-based line of the deepest element of ``path`` that exists in the file."""
        node, line = self.tree, None
        for step in path:
            try:
                if isinstance(node, Mapping) and step in node:
                    line = int(node.lc.key(step)[0]) + 1
                elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
                    line = int(node.lc.item(step)[0]) + 1
                else:
                    break
            except (AttributeError, KeyError, TypeError):
                break
            node = node[step]
        return line


def _clean_loc(loc: Sequence[Any], tree: Any) -> list[Any]:
    """Pydantic's error location without the union tags it inserts (node type, member types)."""
    out: list[Any] = []
    node = tree
    for i, step in enumerate(loc):
        if (isinstance(node, Mapping) and step in node) or (
            isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)
        ):
            out.append(step)
            node = node[step]
        elif isinstance(step, str) and (
            "[" in step
            or step.endswith("-condition")
            or step in _UNION_TAGS
            or (i == 2 and out[:1] == ["nodes"] and step in NODE_TYPES)
        ):
            continue
        else:
            out.append(step)
            node = None
    return out


def _pydantic_problems(exc: ValidationError, source: _Source) -> list[Problem]:
    """Turn pydantic errors into Problems with the YAML line and the node they concern."""
    grouped: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for err in exc.errors():
        loc = tuple(_clean_loc(err["loc"], source.tree))
        grouped.setdefault(loc, []).append(dict(err))
    problems = []
    for loc, errs in grouped.items():
        node = loc[1] if len(loc) >= 2 and loc[0] == "nodes" else None
        message = " or ".join(dict.fromkeys(_message(loc, e) for e in errs))
        problems.append(Problem("error", source.file, source.line(*loc), node, message))
    return problems


def _message(loc: Sequence[Any], err: Mapping[str, Any]) -> str:
    kind, name = err["type"], loc[-1] if loc else ""
    if kind == "extra_forbidden":
        if len(loc) >= 3 and loc[-3] == "do" and isinstance(loc[-2], int):
            return f"unknown action '{name}'"
        return f"unknown field '{name}'"
    if kind == "union_tag_invalid":
        return f"unknown node type '{err['ctx']['tag']}' (one of: {', '.join(NODE_TYPES)})"
    if kind == "union_tag_not_found":
        return f"missing 'type' (one of: {', '.join(NODE_TYPES)})"
    if kind == "missing":
        return f"missing '{name}'"
    if kind == "value_error":  # our own validators write whole sentences
        return str(err["msg"]).removeprefix("Value error, ")
    return f"{name}: {err['msg']}" if isinstance(name, str) and name else str(err["msg"])


def _conditions(cond: BaseModel) -> Iterator[BaseModel]:
    yield cond
    if isinstance(cond, AllCondition | AnyCondition):
        for sub in cond.all_ if isinstance(cond, AllCondition) else cond.any_:
            yield from _conditions(sub)
    elif isinstance(cond, NotCondition):
        yield from _conditions(cond.not_)


def _targets(name: str, node: BaseModel) -> list[tuple[str, tuple[Any, ...]]]:
    """Nodes a node can go to, each with the YAML path of the field that names it."""
    out: list[tuple[str, tuple[Any, ...]]] = []
    if isinstance(node, ChoiceNode):
        for i, opt in enumerate(node.options):
            if opt.next:
                out.append((opt.next, ("nodes", name, "options", i, "next")))
        if node.next:
            out.append((node.next, ("nodes", name, "next")))
    elif isinstance(node, BranchNode):
        for i, branch in enumerate(node.branches):
            out.append((branch.next, ("nodes", name, "branches", i, "next")))
        out.append((node.default, ("nodes", name, "default")))
    elif getattr(node, "next", None):
        out.append((node.next, ("nodes", name, "next")))  # type: ignore[attr-defined]
    return out


def _texts(name: str, node: BaseModel) -> list[tuple[str, tuple[Any, ...]]]:
    """Text keys a node shows, each with its YAML path."""
    out: list[tuple[str, tuple[Any, ...]]] = []
    text = getattr(node, "text", None)
    if text:
        out.append((text, ("nodes", name, "text")))
    if isinstance(node, ChoiceNode):
        out.extend(
            (o.text, ("nodes", name, "options", i, "text")) for i, o in enumerate(node.options)
        )
    return out


def _answer_refs(name: str, node: BaseModel) -> list[tuple[str, tuple[Any, ...]]]:
    """Answer names a node reads (conditions and actions), with the YAML path of each."""
    refs: list[tuple[str, tuple[Any, ...]]] = []
    if isinstance(node, BranchNode):
        for i, branch in enumerate(node.branches):
            for cond in _conditions(branch.if_):
                if isinstance(cond, AnswerCondition):
                    refs.append((cond.answer, ("nodes", name, "branches", i, "if")))
    if isinstance(node, ActionNode):
        for i, action in enumerate(node.do):
            path = ("nodes", name, "do", i)
            if action.create_report:
                refs.extend((v, path) for v in action.create_report.model_dump().values() if v)
            if isinstance(action.save_answers, list):
                refs.extend((v, path) for v in action.save_answers)
            if action.set_consent and action.set_consent.answer:
                refs.append((action.set_consent.answer, path))
            if action.set_language:
                refs.append((action.set_language.answer, path))
            if action.lookup_report:
                refs.append((action.lookup_report.answer, path))
            if action.add_to_report:
                refs.append((action.add_to_report.reference, path))
                refs.append((action.add_to_report.answer, path))
    return refs


# -- the checker --------------------------------------------------------------------------------


class _Checker:
    """Collects problems from every file; one instance per check."""

    def __init__(self, layout: Layout, locales_dir: Path) -> None:
        self.layout = layout
        self.flows_dir = layout.flows_dir
        self.locales_dir = locales_dir
        self.problems: list[Problem] = []
        self.catalog = Catalog({}, {})
        self.settings: Settings | None = None
        self.enabled: list[str] = []
        self.default_language: str | None = None
        self.emergency: dict[str, str] = {}
        self.flows: dict[str, tuple[Flow, _Source]] = {}
        self.survey_flows = survey_flows(self.flows_dir)
        self.audio = True

    def add(
        self, level: Level, file: str, line: int | None, node: str | None, message: str
    ) -> None:
        self.problems.append(Problem(level, file, line, node, message))

    def run(self) -> tuple[list[Problem], Bundle | None]:
        self._load_catalog()
        self._load_settings()
        self._load_flows()
        self._check_triggers()
        self._check_locales()
        self._check_sms()
        if self.audio:
            self._check_audio()
        self.problems.sort(key=lambda p: (p.file, p.line or 0, p.level, p.message))
        bundle = None
        if self.settings is not None:
            flows = {flow.id: flow for flow, _src in self.flows.values()}
            warnings = [p for p in self.problems if p.level == "warning"]
            bundle = Bundle(flows, self.settings, self.catalog, warnings, self.survey_flows)
        return self.problems, bundle

    def _read(self, path: Path, file: str) -> _Source | None:
        try:
            return _Source(file, read_yaml(path))
        except YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            self.add("error", file, yaml_error_line(exc), None, f"bad YAML: {problem}")
        except OSError as exc:
            self.add("error", file, None, None, f"cannot read: {exc.strerror}")
        return None

    # -- locales and settings ------------------------------------------------------------------

    def _load_catalog(self) -> None:
        if not self.locales_dir.is_dir():
            self.add("error", self.locales_dir.name, None, None, "locales directory not found")
            return
        self.catalog = Catalog.load(self.locales_dir, strict=False)
        for issue in self.catalog.issues:
            self.add(issue.level, issue.file, issue.line, None, issue.message)

    def _load_settings(self) -> None:
        found = self.layout.config_file(SETTINGS_FILE)
        file, path = found.file, found.path
        self.problems.extend(found.problems)
        self.enabled = list(self.catalog.languages)
        self.default_language = self.enabled[0] if self.enabled else None
        if not path.is_file():
            self.add("error", file, None, None, f"{SETTINGS_FILE} not found")
            return
        source = self._read(path, file)
        if source is None:
            return
        try:
            self.settings = Settings.model_validate(plain(source.tree))
        except ValidationError as exc:
            self.problems.extend(_pydantic_problems(exc, source))
            return
        settings = self.settings
        self.enabled = list(dict.fromkeys(settings.languages.enabled))
        self.default_language = settings.languages.default
        self.emergency = dict(settings.emergency_numbers)
        for i, lang in enumerate(settings.languages.enabled):
            if not (self.locales_dir / f"{lang}.yaml").is_file():
                line = source.line("languages", "enabled", i)
                self.add(
                    "error",
                    file,
                    line,
                    None,
                    f"language '{lang}' is enabled but "
                    f"{self.locales_dir.name}/{lang}.yaml does not exist",
                )
        if settings.languages.default not in settings.languages.enabled:
            self.add(
                "error",
                file,
                source.line("languages", "default"),
                None,
                f"default language '{settings.languages.default}' is not enabled",
            )
        for name in settings.emergency_numbers:
            if not name.isidentifier():
                self.add(
                    "error",
                    file,
                    source.line("emergency_numbers", name),
                    None,
                    f"emergency number name '{name}' cannot be a placeholder "
                    "(letters, digits and _ only)",
                )
        self._check_keywords(source)
        self._check_voice_fallback(source)

    def _check_voice_fallback(self, source: _Source) -> None:
        """``voice_fallback: {bm: fr}``: both enabled, different, and the fallback can be
        spoken (text-to-speech), so a prompt missing in both still reaches the caller."""
        assert self.settings is not None
        for lang, fallback in self.settings.voice_fallback.items():
            line = source.line("voice_fallback", lang)
            where = f"voice_fallback: {lang} -> {fallback}"
            if lang not in self.enabled:
                self.add("error", source.file, line, None, f"{where}: '{lang}' is not enabled")
            elif fallback not in self.enabled:
                self.add("error", source.file, line, None, f"{where}: '{fallback}' is not enabled")
            elif fallback == lang:
                self.add(
                    "error",
                    source.file,
                    line,
                    None,
                    f"{where}: a language cannot fall back to itself",
                )
            elif fallback in self.catalog.languages and not self.catalog.meta(fallback).tts:
                self.add(
                    "error",
                    source.file,
                    line,
                    None,
                    f"{where}: '{fallback}' has no text-to-speech (meta.tts), so a prompt "
                    "recorded in neither language would be silent",
                )

    def _check_keywords(self, source: _Source) -> None:
        assert self.settings is not None
        seen: dict[str, str] = {}
        for name in KEYWORD_NAMES:
            for i, word in enumerate(self.settings.keywords.get(name, [])):
                line = source.line("keywords", name, i)
                folded = textnorm.normalise(word)
                if not folded:
                    self.add("error", source.file, line, None, f"keywords.{name}: empty keyword")
                elif folded in seen and seen[folded] != name:
                    self.add(
                        "error",
                        source.file,
                        line,
                        None,
                        f"keyword '{word}' is in both keywords.{seen[folded]} and keywords.{name}",
                    )
                else:
                    seen.setdefault(folded, name)

    # -- flows --------------------------------------------------------------------------------

    def _load_flows(self) -> None:
        if not self.flows_dir.is_dir():
            self.add("error", self.flows_dir.name, None, None, "flows directory not found")
            return
        for path in sorted(self.flows_dir.glob("*.yaml")):
            if path.name in LEGACY_NAMES:
                continue  # configuration in the layout before (engine/layout.py)
            file = f"{self.flows_dir.name}/{path.name}"
            source = self._read(path, file)
            if source is None:
                continue
            if not isinstance(source.tree, Mapping):
                self.add("error", file, None, None, "a flow file must be a mapping")
                continue
            flow_id = source.tree.get("id")
            if flow_id is not None and flow_id != path.stem:
                self.add(
                    "error",
                    file,
                    source.line("id"),
                    None,
                    f"flow id '{flow_id}' differs from the file name '{path.stem}'",
                )
            try:
                flow = Flow.model_validate(plain(source.tree))
            except ValidationError as exc:
                self.problems.extend(_pydantic_problems(exc, source))
                continue
            _FlowChecker(self, flow, source).run()
            if flow.id == path.stem:
                self.flows[flow.id] = (flow, source)

    def _check_triggers(self) -> None:
        owners: dict[str, str] = {}
        globals_ = {textnorm.normalise(w): n for n, ws in self._keyword_map().items() for w in ws}
        for flow, source in self.flows.values():
            for i, trigger in enumerate(flow.triggers):
                line = source.line("triggers", i)
                kind = trigger.kind
                if kind != "keyword":
                    if not getattr(trigger, kind):
                        continue
                    if kind in owners:
                        self.add(
                            "error",
                            source.file,
                            line,
                            None,
                            f"trigger '{kind}' is "
                            f"already used by flow '{owners[kind]}' (one flow at most)",
                        )
                    owners.setdefault(kind, flow.id)
                    continue
                for word in trigger.keyword or []:
                    folded = textnorm.normalise(word)
                    if folded in globals_:
                        self.add(
                            "error",
                            source.file,
                            line,
                            None,
                            f"trigger keyword '{word}' "
                            f"is also the global keyword '{globals_[folded]}'",
                        )
                    elif f"kw:{folded}" in owners and owners[f"kw:{folded}"] != flow.id:
                        self.add(
                            "error",
                            source.file,
                            line,
                            None,
                            f"trigger keyword '{word}' "
                            f"already starts flow '{owners[f'kw:{folded}']}'",
                        )
                    owners.setdefault(f"kw:{folded}", flow.id)

    def _keyword_map(self) -> dict[str, tuple[str, ...]]:
        return self.settings.keyword_map() if self.settings else {}

    # -- locales --------------------------------------------------------------------------------

    def _languages(self) -> list[str]:
        """Enabled languages that have a usable locale file."""
        return [lang for lang in self.enabled if lang in self.catalog.languages]

    def _check_locales(self) -> None:
        langs = self._languages()
        cat = self.catalog
        union: dict[str, None] = {}
        for lang in langs:
            union.update(dict.fromkeys(cat.keys(lang)))
        for lang in langs:
            file = cat.file(lang)
            for key, allowed in SYSTEM_KEYS.items():
                if not cat.has(key, lang):
                    keyword = KEYWORD_SYSTEM_KEYS.get(key)
                    if keyword is not None and not (
                        self.settings is not None and self.settings.keywords.get(keyword)  # type: ignore[call-overload]
                    ):
                        continue
                    self.add("error", file, None, None, f"system text '{key}' is missing")
                    continue
                extra = cat.placeholders(key, lang) - allowed - set(self.emergency)
                if extra:
                    self.add(
                        "warning",
                        file,
                        cat.line(key, lang),
                        None,
                        f"text '{key}' uses {_braces(extra)}, which the engine does not provide",
                    )
            for key in union:
                if key in SYSTEM_KEYS:
                    continue
                if not cat.has(key, lang):
                    present = [x for x in langs if cat.has(key, x)]
                    self.add(
                        "error",
                        file,
                        None,
                        None,
                        f"text '{key}' is missing (present in {', '.join(present)})",
                    )
        for key in union:
            self._check_placeholders(key, langs)

    def _check_placeholders(self, key: str, langs: list[str]) -> None:
        cat = self.catalog
        having = [lang for lang in langs if cat.has(key, lang)]
        if self.default_language in having:
            having.remove(self.default_language)
            having.insert(0, self.default_language)
        if len(having) < 2:
            return
        ref = having[0]
        expected = cat.placeholders(key, ref)
        for lang in having[1:]:
            found = cat.placeholders(key, lang)
            if found != expected:
                self.add(
                    "error",
                    cat.file(lang),
                    cat.line(key, lang),
                    None,
                    f"text '{key}': placeholders {_braces(found)} differ from "
                    f"{_braces(expected)} in {ref}",
                )

    # -- warnings -------------------------------------------------------------------------------

    def _params(self, **extra: Any) -> dict[str, Any]:
        return {
            **self.emergency,
            "reference": SAMPLE_REFERENCE,
            "report_status": "en cours de traitement",
            "addition_outcome": "votre information est ajoutée. Merci, l'équipe la verra.",
            "staff_message": "",
            "n": "9",
            "min": "100",
            "max": "999",
            **extra,
        }

    def _sms_level(self, lang: str) -> tuple[int, Level]:
        """The most segments one prompt may cost in ``lang``, and how an overrun is reported."""
        if self.settings is None:
            return MAX_SMS_SEGMENTS, "warning"
        budget, level = sms_budget.budget_for(self.settings, lang)
        return budget.prompt, level

    def _sms_warning(self, text: str, lang: str, what: str) -> str | None:
        count = sms.segments(text)
        limit, _level = self._sms_level(lang)
        if count <= limit:
            return None
        return (
            f"SMS in '{lang}' costs {count} segments ({sms.encoding(text)}, "
            f"{sms.length(text)} units) for {what}; keep it to {limit}"
        )

    def _check_sms(self) -> None:
        cat = self.catalog
        clean = not any(p.level == "error" for p in self.problems)
        for lang in self._languages():
            level = self._sms_level(lang)[1]
            for key in SYSTEM_KEYS:
                if key in _NOT_SMS or not cat.has(key, lang):
                    continue
                msg = self._sms_warning(
                    cat.render(key, lang, self._params(), "sms"), lang, f"'{key}'"
                )
                if msg:
                    self.add(level, cat.file(lang), cat.line(key, lang), None, msg)
            menu = self._language_menu(lang)
            if menu is not None:
                msg = self._sms_warning(menu, lang, "the language menu")
                if msg:
                    self.add(
                        level,
                        cat.file(lang),
                        cat.line("system.language_prompt", lang),
                        None,
                        msg,
                    )
        for flow, source in self.flows.values():
            for name, node in flow.nodes.items():
                for lang in self._languages():
                    text = self._node_sms(node, lang)
                    msg = text and self._sms_warning(text, lang, f"'{getattr(node, 'text', '')}'")
                    if msg:
                        level = self._sms_level(lang)[1]
                        self.add(level, source.file, source.line("nodes", name), name, msg)
        if clean:
            self._check_first_exchange()

    def _check_first_exchange(self) -> None:
        """The welcome and first question of flows new contacts start (docs/translations.md,
        "SMS budget"); run only on flows and texts without errors, which it would trip on."""
        if self.settings is None:
            return
        cat = self.catalog
        for flow, _source in self.flows.values():
            if not sms_budget.greets_new_contacts(flow):
                continue
            for lang in self._languages():
                for overrun in sms_budget.check_first_exchange(
                    flow, self.settings, cat, lang, self._params()
                ):
                    line = cat.line(overrun.key, lang) if overrun.key else None
                    self.add(overrun.level, cat.file(lang), line, None, overrun.message)

    def _language_menu(self, lang: str) -> str | None:
        """The language menu's SMS: its lines carry their own number ({n}), so no "n. " prefix."""
        cat = self.catalog
        langs = self._languages()
        if not cat.has("system.language_prompt", lang):
            return None
        if not all(cat.has("system.language_option", x) for x in langs):
            return None
        labels = [
            cat.render("system.language_option", x, self._params(n=i), "sms")
            for i, x in enumerate(langs, start=1)
        ]
        header = cat.render("system.language_prompt", lang, self._params(), "sms")
        return "\n".join([header, *labels])

    def _node_sms(self, node: BaseModel, lang: str) -> str | None:
        """The SMS a node sends in ``lang``, as the SMS channel renders it."""
        cat = self.catalog
        key = getattr(node, "text", None)
        if not key or not cat.has(key, lang):
            return None
        extra = {"min": node.min, "max": node.max} if isinstance(node, NumberNode) else {}
        header = cat.render(key, lang, self._params(**extra), "sms")
        if not isinstance(node, ChoiceNode):
            return header
        if not all(cat.has(o.text, lang) for o in node.options):
            return None
        return sms.render_menu(
            header, [cat.render(o.text, lang, self._params(), "sms") for o in node.options]
        )

    def _check_audio(self) -> None:
        cat = self.catalog
        keys = voice_keys(
            {flow.id: flow for flow, _source in self.flows.values()}, self.survey_flows
        )
        for lang in self._languages():
            if cat.meta(lang).tts:
                continue
            folder = f"{self.locales_dir.name}/{lang}/audio"
            for key in keys:
                if cat.has(key, lang) and cat.audio_path(key, lang) is None:
                    self.add(
                        "warning",
                        cat.file(lang),
                        cat.line(key, lang),
                        None,
                        f"no recorded audio for '{key}' ({folder}/{key}.wav or .mp3) and "
                        f"'{lang}' has no text-to-speech",
                    )


def _braces(names: set[str]) -> str:
    return ", ".join(f"{{{n}}}" for n in sorted(names)) if names else "none"


class _FlowChecker:
    """Checks of one parsed flow: graph, options, texts and answer names."""

    def __init__(self, parent: _Checker, flow: Flow, source: _Source) -> None:
        self.parent = parent
        self.flow = flow
        self.source = source

    def error(self, node: str | None, path: tuple[Any, ...], message: str) -> None:
        self.parent.add("error", self.source.file, self.source.line(*path), node, message)

    def warn(self, node: str | None, path: tuple[Any, ...], message: str) -> None:
        self.parent.add("warning", self.source.file, self.source.line(*path), node, message)

    def run(self) -> None:
        flow = self.flow
        if flow.start not in flow.nodes:
            self.error(None, ("start",), f"start node '{flow.start}' does not exist")
        for name, node in flow.nodes.items():
            for target, path in _targets(name, node):
                if target not in flow.nodes:
                    self.error(name, path, f"'{path[-1]}' names unknown node '{target}'")
            if isinstance(node, ChoiceNode):
                self._check_choice(name, node)
        self._check_reachable()
        self._check_cycles()
        self._check_texts()
        self._check_answers()

    def _check_choice(self, name: str, node: ChoiceNode) -> None:
        seen: set[str] = set()
        for i, opt in enumerate(node.options):
            if opt.key in seen:
                self.error(
                    name, ("nodes", name, "options", i, "key"), f"option key '{opt.key}' used twice"
                )
            seen.add(opt.key)
            if not opt.next and not node.next:
                self.error(
                    name,
                    ("nodes", name, "options", i),
                    f"option '{opt.key}' has no 'next' and neither has the node",
                )
        if len(node.options) > MAX_OPTIONS:
            self.error(
                name,
                ("nodes", name, "options"),
                f"{len(node.options)} options: at most "
                f"{MAX_OPTIONS} (voice menus have the digits 1-9)",
            )

    def _edges(self, name: str) -> list[str]:
        return [t for t, _p in _targets(name, self.flow.nodes[name]) if t in self.flow.nodes]

    def _check_reachable(self) -> None:
        flow = self.flow
        if flow.start not in flow.nodes:
            return
        seen = {flow.start}
        todo = [flow.start]
        while todo:
            for target in self._edges(todo.pop()):
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        for name in flow.nodes:
            if name not in seen:
                self.error(name, ("nodes", name), f"unreachable from start '{flow.start}'")

    def _check_cycles(self) -> None:
        """A loop of nodes that never wait would spin forever without the citizen."""
        flow = self.flow
        quick = [n for n, node in flow.nodes.items() if not waits(node)]
        quick_set = set(quick)
        reach: dict[str, set[str]] = {}
        for start in quick:
            seen: set[str] = set()
            todo = [t for t in self._edges(start) if t in quick_set]
            while todo:
                cur = todo.pop()
                if cur not in seen:
                    seen.add(cur)
                    todo.extend(t for t in self._edges(cur) if t in quick_set)
            reach[start] = seen
        reported: set[str] = set()
        for name in quick:
            if name in reported or name not in reach[name]:
                continue
            cycle = [n for n in quick if n in reach[name] and name in reach[n]]
            reported.update(cycle)
            self.error(
                name,
                ("nodes", name),
                "cycle through nodes that never wait for input: " + " -> ".join([*cycle, cycle[0]]),
            )

    def _requests_callback(self) -> bool:
        return requests_callback(self.flow)

    def _check_texts(self) -> None:
        parent = self.parent
        langs = parent._languages()
        allowed = (
            set(parent.emergency) | {"reference", "report_status"} | self._saved() | self._given()
        )
        if self._requests_callback():
            for key in CALLBACK_KEYS:  # rendered by the service: a missing one would fail there
                if langs and not all(parent.catalog.has(key, lang) for lang in langs):
                    files = ", ".join(
                        parent.catalog.file(lang)
                        for lang in langs
                        if not parent.catalog.has(key, lang)
                    )
                    self.error(
                        None,
                        ("nodes",),
                        f"the flow asks for call-backs (request_callback): add text '{key}' to "
                        f"{files}",
                    )
        for name, node in self.flow.nodes.items():
            for key, path in _texts(name, node):
                having = [lang for lang in langs if parent.catalog.has(key, lang)]
                if not having and langs:
                    files = ", ".join(parent.catalog.file(lang) for lang in langs)
                    self.error(name, path, f"unknown text key '{key}': add it to {files}")
                    continue
                if not having or parent.settings is None:
                    continue
                extra = parent.catalog.placeholders(key, having[0]) - allowed
                if extra:
                    self.warn(
                        name,
                        path,
                        f"text '{key}' uses {_braces(extra)}, which is not an "
                        "emergency number, {reference}, {report_status}, a value of this flow's "
                        "actions or an answer saved by this flow",
                    )

    def _given(self) -> set[str]:
        """Values this flow's actions give its texts (EFFECT_PARAMS)."""
        return {
            param
            for node in self.flow.nodes.values()
            if isinstance(node, ActionNode)
            for action in node.do
            for param in EFFECT_PARAMS.get(action.kind, ())
        }

    def _saved(self) -> set[str]:
        saved = {getattr(n, "save", None) for n in self.flow.nodes.values()} - {None}
        for trigger in self.flow.triggers:  # answers the flow is started with
            if trigger.kind != "keyword" and getattr(trigger, trigger.kind):
                saved.update(TRIGGER_ANSWERS.get(trigger.kind, ()))
        if any(isinstance(n, LanguageNode) for n in self.flow.nodes.values()):
            saved.add("language")
        return {s for s in saved if s}

    def _check_answers(self) -> None:
        saved = self._saved()
        langs = set(self.parent.enabled)
        for name, node in self.flow.nodes.items():
            for answer, path in _answer_refs(name, node):
                if answer not in saved:
                    self.warn(name, path, f"answer '{answer}' is never saved by this flow")
            if isinstance(node, BranchNode):
                for i, branch in enumerate(node.branches):
                    for cond in _conditions(branch.if_):
                        code = getattr(cond, "language", None)
                        if isinstance(code, str) and langs and code not in langs:
                            self.warn(
                                name,
                                ("nodes", name, "branches", i, "if"),
                                f"language '{code}' is not enabled",
                            )
            if isinstance(node, TextNode) and node.max_length > 10000:
                self.warn(name, ("nodes", name, "max_length"), "max_length above 10000")
