"""The pure flow engine: (flow, state, input, context) -> (state, prompts, effects).

It knows no channel, database, clock or randomness, so any web worker can resume a conversation
from its JSON state, and property tests can throw any input sequence at it. Texts are locale keys:
the caller renders them in ``state.language or ctx.default_language`` (see :func:`language_of`).

Input matching is on option keys and numbers only, because the engine has no catalogue. A caller
that wants citizens to type an option's label ("Vol", "Kati") translates it to
``Input("choice", key)`` before calling :func:`step`; place menus also match area names, which
the context carries.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from citoyen.engine import textnorm
from citoyen.engine.places import LEVEL_RANK, PlaceLevel, PlaceMenus, place_menus, rank_of
from citoyen.engine.refcodes import parse_reference
from citoyen.engine.schema import (
    ActionNode,
    AllCondition,
    AnswerCondition,
    AnyCondition,
    BranchNode,
    ChannelCondition,
    ChoiceNode,
    EndNode,
    Flow,
    LanguageCondition,
    LanguageNode,
    MessageNode,
    NotCondition,
    NumberNode,
    PhoneNode,
    PlaceNode,
    ReferenceNode,
    TextNode,
)
from citoyen.engine.types import (
    Context,
    Effect,
    Input,
    Option,
    Prompt,
    State,
    StepResult,
    deep_copy,
)

FINISHED = ("completed", "interrupted", "expired")
HEADER_BY_RANK = {1: "system.place_region", 2: "system.place_cercle", 3: "system.place_commune"}
MIN_MENU = 3  # one entry + "more" + "unknown"
_INT = re.compile(r"\s*(-?\d{1,12})\s*")
_POSITION = re.compile(r"\s*(\d{1,3})\s*[.)]?\s*")


def language_of(state: State, ctx: Context) -> str:
    """The language to render a conversation's prompts in."""
    return state.language or ctx.default_language


def start(
    flow: Flow,
    ctx: Context,
    *,
    language: str | None = None,
    given: dict[str, Any] | None = None,
) -> StepResult:
    """Begin a conversation: run from ``flow.start`` to the first question or the end.

    ``language`` (or ``ctx.contact_language``) counts as known when it is enabled, so a
    ``language`` node with ``skip_if_known`` does not ask again. ``given`` answers are known
    before the first node (what the trigger brought: the reference after "SUIVI", the message
    that answers a staff question); a ``reference`` node whose answer is given is not asked.
    """
    known = _enabled(language, ctx) or _enabled(ctx.contact_language, ctx)
    state = State(flow.id, flow.version, flow.start, language=known, answers=dict(given or {}))
    run = _Run(flow, ctx, state)
    run.enter(flow.start)
    return run.result()


def step(flow: Flow, state: State, inp: Input, ctx: Context) -> StepResult:
    """Apply one input to a waiting conversation. The given state is never mutated.

    A finished state comes back unchanged with nothing to say: the caller starts a new
    conversation. A state pinned to another flow version, or to a node the flow lacks, ends
    with ``system.expired``.
    """
    if state.status in FINISHED:
        return StepResult(state, [], [])
    run = _Run(flow, ctx, _working_copy(state))
    if (
        state.flow_id != flow.id
        or state.flow_version != flow.version
        or state.node not in flow.nodes
    ):
        run.interrupt("system.expired")
    else:
        run.handle(inp)
    return run.result()


def _working_copy(state: State) -> State:
    """A copy of ``state`` that the run may change without touching ``state``.

    Shallow on purpose (a deep copy would cost more than the step): the run only ever replaces the
    top-level entries of ``answers`` and ``scratch``, never changes a value nested in them (place
    paths are rebuilt, a saved scratch is copied when restored), so the nested values may be
    shared with ``state``.
    """
    return State(
        flow_id=state.flow_id,
        flow_version=state.flow_version,
        node=state.node,
        status=state.status,
        language=state.language,
        answers=dict(state.answers),
        retries=state.retries,
        scratch=dict(state.scratch),
    )


@lru_cache(maxsize=64)
def _language_options(languages: tuple[str, ...]) -> tuple[Option, ...]:
    """The language menu (each language announced in itself); few distinct ones per process."""
    return tuple(Option(key=lang, text="system.language_option", lang=lang) for lang in languages)


def _enabled(language: str | None, ctx: Context) -> str | None:
    return language if language and language in ctx.languages else None


def _position(value: str | None, count: int) -> int | None:
    """Index of the n-th shown option when ``value`` is a number n in 1..count."""
    match = _POSITION.fullmatch(value or "")
    if match:
        n = int(match.group(1))
        if 1 <= n <= count:
            return n - 1
    return None


def match_option(keys: Sequence[str], inp: Input) -> int | None:
    """Which shown option an input selects: its key, or its number in the menu (1-based)."""
    if inp.kind not in ("choice", "digits", "text") or not inp.value:
        return None
    if inp.kind == "choice" and inp.value in keys:
        return keys.index(inp.value)
    if inp.kind != "choice":
        index = _position(inp.value, len(keys))
        if index is not None:
            return index
    wanted = textnorm.normalise(inp.value)
    for index, key in enumerate(keys):
        if wanted and textnorm.normalise(key) == wanted:
            return index
    return None


def _yes_no(value: Any) -> bool | None:
    if value is True or value == "yes":
        return True
    if value is False or value == "no":
        return False
    return None


class _Run:
    """One call of :func:`start` or :func:`step`: the state being changed and what to emit."""

    def __init__(self, flow: Flow, ctx: Context, state: State) -> None:
        self.flow = flow
        self.ctx = ctx
        self.state = state
        self.menus: PlaceMenus = place_menus(ctx.areas)
        self.prompts: list[Prompt] = []
        self.effects: list[Effect] = []

    def result(self) -> StepResult:
        return StepResult(self.state, self.prompts, self.effects)

    def say(self, kind: Any, text: str | None, **extra: Any) -> None:
        self.prompts.append(Prompt(kind, text, self.state.node, **extra))

    def interrupt(self, key: str = "system.goodbye") -> None:
        self.say("end", key)
        self.state.status = "interrupted"

    # -- moving through the flow -------------------------------------------------------------

    def enter(self, name: str) -> None:
        """Run nodes from ``name`` until one waits for input or the flow ends."""
        state = self.state
        for _ in range(len(self.flow.nodes) + 2):
            state.node, state.retries, state.scratch = name, 0, {}
            node = self.flow.nodes[name]
            following = self._pass_through(name, node)
            if following is None:
                return
            name = following
        # Only a flow the validator rejected can loop without waiting; end it politely.
        self.interrupt()

    def _pass_through(self, name: str, node: Any) -> str | None:
        """Run a node that does not wait; return the next node, or None when we stop here."""
        state = self.state
        if isinstance(node, MessageNode):
            self.say("message", node.text)
            return node.next
        if isinstance(node, BranchNode):
            for branch in node.branches:
                if self._holds(branch.if_):
                    return branch.next
            return node.default
        if isinstance(node, ActionNode):
            for action in node.do:
                self._act(action)
            return node.next
        if isinstance(node, EndNode):
            if node.text:
                self.say("end", node.text)
            state.status = "completed"
            return None
        if isinstance(node, LanguageNode):
            known = _enabled(state.language, self.ctx) or _enabled(
                self.ctx.contact_language, self.ctx
            )
            if (node.skip_if_known and known) or not self.ctx.languages:
                if known:
                    state.language = known
                    state.answers["language"] = known
                return node.next
        if isinstance(node, PlaceNode) and not self._roots().codes:
            return node.next  # no area data: nothing to ask
        if isinstance(node, ReferenceNode) and _given_reference(node, state):
            return node.next  # given with the keyword ("SUIVI 161-6414"): not asked again
        state.status = "waiting"
        self.ask(intro=True)
        return None

    def goto(self, name: str | None) -> None:
        if name is None:  # the validator makes sure every option has a next
            self.interrupt()
            return
        self.enter(name)

    def restart(self) -> None:
        """Start the flow again from ``start`` (keywords menu and start); language is kept."""
        self.state.answers = {}
        self.state.status = "active"
        self.enter(self.flow.start)

    # -- asking ------------------------------------------------------------------------------

    def ask(self, *, intro: bool = False) -> None:
        """Emit the current question (``intro`` adds a place node's own text first)."""
        node = self.flow.nodes[self.state.node]
        if self.state.scratch.get("mode") == "language" or isinstance(node, LanguageNode):
            options = _language_options(tuple(self.ctx.languages))
            self.say("language", "system.language_prompt", options=options)
        elif isinstance(node, ChoiceNode):
            self.say("choice", node.text, options=node.prompt_options)
        elif isinstance(node, NumberNode):
            limits = {"min": node.min, "max": node.max}
            self.say("number", node.text, params=dict(limits), expects=limits)
        elif isinstance(node, TextNode):
            expects = {"max_length": node.max_length, "max_seconds": node.max_seconds}
            self.say("text", node.text, expects=expects)
        elif isinstance(node, ReferenceNode):
            self.say("reference", node.text, expects={"digits": 7})
        elif isinstance(node, PhoneNode):
            self.say("phone", node.text, expects={"button": node.button})
        elif isinstance(node, PlaceNode):
            if intro:
                self.say("message", node.text)
            self._place_menu(node)

    def invalid(
        self, key: str = "system.invalid_choice", params: dict[str, Any] | None = None
    ) -> None:
        """Count an invalid answer; re-ask, or end politely after ``max_retries``."""
        self.state.retries += 1
        if self.state.retries >= self.flow.max_retries:
            self.interrupt()
            return
        self.say("message", key, params=params or {})
        self.ask()

    # -- answering ---------------------------------------------------------------------------

    def handle(self, inp: Input) -> None:
        state = self.state
        node = self.flow.nodes[state.node]
        if not isinstance(
            node,
            ChoiceNode
            | LanguageNode
            | PlaceNode
            | NumberNode
            | TextNode
            | ReferenceNode
            | PhoneNode,
        ):
            self.enter(state.node)  # a state saved before its node ran: just run it
            return
        if inp.kind == "timeout":
            timeouts = int(state.scratch.get("timeouts", 0)) + 1
            if timeouts >= 2:
                self.interrupt()
                return
            state.scratch["timeouts"] = timeouts
            self.say("message", "system.no_answer")
            self.ask()
            return
        state.scratch.pop("timeouts", None)
        if inp.kind == "start":
            self.ask()
            return
        if inp.kind == "photo" and not (isinstance(node, TextNode) and node.photo):
            # A photo alone is kept by the channel; the question is asked again (with the help
            # text), no wrong answer counted: "describe what happened" still wants words.
            self.say("message", "system.help")
            self.ask()
            return
        if inp.kind == "contact" and not isinstance(node, PhoneNode):
            # A phone number nobody asked for: kept nowhere; the question is asked again (with
            # the help text), no wrong answer counted.
            self.say("message", "system.help")
            self.ask()
            return
        if inp.kind == "text" and inp.value and self.ctx.keywords:
            keyword = textnorm.find_keyword(inp.value, self.ctx.keywords)
            if keyword is not None and self._keyword(keyword):
                return
        if state.scratch.get("mode") == "language" or isinstance(node, LanguageNode):
            self._answer_language(inp, node)
        elif isinstance(node, ChoiceNode):
            self._answer_choice(node, inp)
        elif isinstance(node, PlaceNode):
            self._answer_place(node, inp)
        elif isinstance(node, NumberNode):
            self._answer_number(node, inp)
        elif isinstance(node, ReferenceNode):
            self._answer_reference(node, inp)
        elif isinstance(node, PhoneNode):
            self._answer_phone(node, inp)
        else:
            self._answer_text(node, inp)

    def _keyword(self, keyword: str) -> bool:
        """Act on a global keyword; False when the name is not one the engine knows."""
        state = self.state
        if keyword == "stop":
            self.effects.append(Effect("opt_out", {}))
            self.say("end", "system.stopped")
            state.status = "completed"
        elif keyword == "start":
            self.effects.append(Effect("opt_in", {}))
            self.say("message", "system.started")
            self.restart()
        elif keyword == "help":
            self.say("message", "system.help")
            self.ask()
        elif keyword in ("discreet", "normal"):
            # Discreet mode: later messages (status notices, staff replies) use neutral words a
            # shared phone can show (docs/security.md). The conversation goes on where it was.
            on = keyword == "discreet"
            self.effects.append(Effect("set_discreet", {"discreet": on}))
            self.say("message", "system.discreet_on" if on else "system.discreet_off")
            self.ask()
        elif keyword == "menu":
            self.restart()
        elif keyword == "language":
            if not isinstance(self.flow.nodes[state.node], LanguageNode):
                # Keep the question's progress (a place menu's chosen areas and page) to
                # come back to it exactly where the citizen was.
                if state.scratch.get("mode") != "language":
                    saved = state.scratch
                    state.scratch = {"mode": "language", "return": state.node, "saved": saved}
                state.retries = 0
            self.ask()
        else:
            return False
        return True

    def _answer_language(self, inp: Input, node: Any) -> None:
        state = self.state
        index = match_option(self.ctx.languages, inp)
        if index is None:
            self.invalid()
            return
        lang = self.ctx.languages[index]
        state.language = lang
        state.answers["language"] = lang
        self.effects.append(Effect("set_language", {"language": lang}))
        if state.scratch.get("mode") == "language":
            back = state.scratch.get("return")
            saved = state.scratch.get("saved")
            if isinstance(back, str) and back in self.flow.nodes:
                # The same question, in the new language, where the citizen left it.
                state.node, state.retries = back, 0
                # A copy: ``saved`` may be shared with the caller's state (see _working_copy).
                state.scratch = dict(saved) if isinstance(saved, dict) else {}
                self.ask()
            else:
                self.enter(state.node)
        else:
            self.goto(node.next)

    def _answer_choice(self, node: ChoiceNode, inp: Input) -> None:
        index = match_option(node.option_keys, inp)
        if index is None:
            self.invalid()
            return
        option = node.options[index]
        if node.save:
            self.state.answers[node.save] = option.key
        self.goto(option.next or node.next)

    def _answer_number(self, node: NumberNode, inp: Input) -> None:
        match = _INT.fullmatch(inp.value or "") if inp.kind in ("digits", "text") else None
        value = int(match.group(1)) if match else None
        if value is None or not node.min <= value <= node.max:
            self.invalid("system.invalid_number", {"min": node.min, "max": node.max})
            return
        if node.save:
            self.state.answers[node.save] = value
        self.goto(node.next)

    def _answer_reference(self, node: ReferenceNode, inp: Input) -> None:
        reference = parse_reference(inp.value) if inp.kind in ("digits", "text") else None
        if reference is None:
            self.invalid("system.invalid_reference")
            return
        if node.save:
            self.state.answers[node.save] = reference
        self.goto(node.next)

    def _answer_phone(self, node: PhoneNode, inp: Input) -> None:
        """Only the citizen's own number, shared by the channel, answers: a typed number could
        be anyone's."""
        if inp.kind != "contact" or not inp.value:
            self.invalid(node.invalid)
            return
        if node.save:
            self.state.answers[node.save] = inp.value
        self.goto(node.next)

    def _answer_text(self, node: TextNode, inp: Input) -> None:
        value = (inp.value or "").strip()
        if inp.kind in ("recording", "photo") and value:
            answer: Any = {inp.kind: value}
        elif inp.kind in ("text", "digits") and value:
            answer = value[: node.max_length]
            if len(value) > node.max_length:
                self.say("message", "system.text_too_long", params={"max_length": node.max_length})
        else:
            self.invalid()
            return
        if node.save:
            self.state.answers[node.save] = answer
        self.goto(node.next)

    # -- places ------------------------------------------------------------------------------

    def _target(self, node: PlaceNode) -> int:
        return LEVEL_RANK[node.levels]

    def _roots(self) -> PlaceLevel:
        return self.menus.roots(tuple(self.ctx.area_roots))

    def _level(self, node: PlaceNode) -> PlaceLevel:
        """The menu being asked: children of the last chosen area, or the roots."""
        areas = self.ctx.areas
        path = [c for c in self.state.scratch.get("path", []) if c in areas]
        return self.menus.children(path[-1], self._target(node)) if path else self._roots()

    def _page(self, level: PlaceLevel, below_top: bool) -> list[Option]:
        """The options shown now: a page of areas, then "more" and "unknown" when they apply."""
        size = max(self.ctx.menu_size, MIN_MENU)
        fixed = [Option(key="unknown", text="system.place_unknown")] if below_top else []
        count = len(level.codes)
        if count + len(fixed) <= size:
            return [*level.options, *fixed]
        per_page = size - 1 - len(fixed)
        pages = -(-count // per_page)
        page = int(self.state.scratch.get("page", 0)) % pages
        shown = level.options[page * per_page : (page + 1) * per_page]
        return [*shown, Option(key="more", text="system.more"), *fixed]

    def _place_menu(self, node: PlaceNode) -> None:
        level = self._level(node)
        options = self._page(level, bool(self.state.scratch.get("path")))
        header = HEADER_BY_RANK.get(level.rank, "system.place_commune")
        kind = {1: "region", 2: "cercle"}.get(level.rank, "commune")
        self.say("place", header, options=tuple(options), expects={"level": kind})

    def _answer_place(self, node: PlaceNode, inp: Input) -> None:
        scratch = self.state.scratch
        if inp.kind == "location":
            if inp.value and inp.value in self.ctx.areas:
                self._save_place(node, inp.value)
            else:
                self.invalid()
            return
        level = self._level(node)
        options = self._page(level, bool(scratch.get("path")))
        index = match_option([o.key for o in options], inp)
        key = options[index].key if index is not None else self._area_by_name(level, inp)
        if key is None:
            self.invalid()
        elif key == "more":
            scratch["page"] = int(scratch.get("page", 0)) + 1
            self.ask()
        elif key == "unknown":
            self._save_place(node, scratch["path"][-1])
        else:
            scratch["path"] = [*scratch.get("path", []), key]
            scratch["page"] = 0
            target = self._target(node)
            if self.menus.children(key, target).codes and (rank_of(self.ctx.areas[key]) < target):
                self.ask()
            else:
                self._save_place(node, key)

    def _area_by_name(self, level: PlaceLevel, inp: Input) -> str | None:
        """An area of the current level typed by name or code (any page)."""
        if inp.kind not in ("text", "choice") or not inp.value:
            return None
        return level.by_name.get(textnorm.normalise(inp.value))

    def _save_place(self, node: PlaceNode, code: str) -> None:
        if node.save:
            self.state.answers[node.save] = code
        self.goto(node.next)

    # -- branches and actions ----------------------------------------------------------------

    def _holds(self, cond: Any) -> bool:
        if isinstance(cond, AnswerCondition):
            return self._answer_holds(cond)
        if isinstance(cond, LanguageCondition):
            return self.state.language == cond.language
        if isinstance(cond, ChannelCondition):
            return self.ctx.channel == cond.channel
        if isinstance(cond, AllCondition):
            return all(self._holds(c) for c in cond.all_)
        if isinstance(cond, AnyCondition):
            return any(self._holds(c) for c in cond.any_)
        if isinstance(cond, NotCondition):
            return not self._holds(cond.not_)
        return False

    def _answer_holds(self, cond: AnswerCondition) -> bool:
        value = self.state.answers.get(cond.answer)
        if "set_" in cond.model_fields_set:
            return (value is not None) == bool(cond.set_)
        if "eq" in cond.model_fields_set:
            return _same_value(value, cond.eq)
        return any(_same_value(value, v) for v in cond.in_ or [])

    def _act(self, action: Any) -> None:
        answers = self.state.answers
        kind = action.kind
        if kind == "create_report":
            args = action.create_report

            def get(name: str | None) -> Any:
                return answers.get(name) if name else None

            urgent = get(args.urgency_from) == "yes"
            data = {
                "category": get(args.category),
                "place": get(args.place),
                "description": get(args.description),
                "urgency": "emergency" if urgent else "normal",
                "anonymous": get(args.anonymous),
                "callback": get(args.callback),
                "answers": deep_copy(answers),
            }
            self.effects.append(Effect("create_report", data))
        elif kind == "save_answers":
            names = list(answers) if action.save_answers == "all" else action.save_answers
            saved = {name: deep_copy(answers.get(name)) for name in names}
            data = {"flow_id": self.flow.id, "flow_version": self.flow.version, "answers": saved}
            self.effects.append(Effect("save_answers", data))
        elif kind == "set_consent":
            args = action.set_consent
            consent = args.value if args.answer is None else _yes_no(answers.get(args.answer))
            if consent is not None:
                self.effects.append(Effect("set_consent", {"consent": consent}))
        elif kind == "set_language":
            lang = answers.get(action.set_language.answer)
            if isinstance(lang, str) and lang in self.ctx.languages:
                self.state.language = lang
                self.effects.append(Effect("set_language", {"language": lang}))
        elif kind in ("opt_out", "opt_in"):
            self.effects.append(Effect(kind, {}))
        elif kind == "request_callback":
            args = action.request_callback
            phone = answers.get(args.phone) if args is not None and args.phone else None
            self.effects.append(Effect(kind, {"phone": phone} if phone else {}))
        elif kind == "lookup_report":
            reference = answers.get(action.lookup_report.answer)
            self.effects.append(Effect("lookup_report", {"reference": reference}))
        elif kind == "add_to_report":
            args = action.add_to_report
            data = {
                "reference": answers.get(args.reference),
                "content": deep_copy(answers.get(args.answer)),
            }
            self.effects.append(Effect("add_to_report", data))


def _given_reference(node: ReferenceNode, state: State) -> bool:
    """Whether the reference this node asks for is already known (a valid code)."""
    value = state.answers.get(node.save) if node.save else None
    return isinstance(value, str) and parse_reference(value) is not None


def _same_value(value: Any, expected: Any) -> bool:
    """Equality that forgives YAML typing: ``eq: 18`` matches the answer ``"18"`` and back."""
    if value is None:
        return False
    if isinstance(value, bool) or isinstance(expected, bool):
        return value is expected or _yes_no(value) == expected
    return value == expected or str(value) == str(expected)
