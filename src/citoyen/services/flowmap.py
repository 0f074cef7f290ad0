"""A flow as programme staff read it: boxes, arrows and plain words, with every text it shows.

The admin's "Parcours" page and ``citoyen flows diagram`` draw the same :class:`FlowMap`: one
box per node (its kind, what it asks, its options, its actions in plain words), one arrow per
way out (an option, a branch condition, "otherwise"), and beside each node the texts it shows in
every language with their SMS cost, measured as the SMS channel sends them. Staff can then check a
flow and its translations without reading YAML.

Words here are English and pass through the ``_`` given by the caller (the admin passes
Flask-Babel's ``gettext``; ``babel.cfg`` extracts them), so this module stays free of any face.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from citoyen.engine import sms
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
    NotCondition,
    NumberNode,
    PhoneNode,
    PlaceNode,
    TextNode,
)
from citoyen.i18n import Catalog

Translate = Callable[..., str]
# Values the texts' placeholders take when a cost is measured (as `citoyen flows check` does).
SAMPLE_PARAMS: dict[str, str] = {
    "reference": "482-1937",
    "report_status": "en cours de traitement",
    "addition_outcome": "votre information est ajoutée. Merci, l'équipe la verra.",
    "staff_message": "",
    "min": "1",
    "max": "99",
}


def untranslated(text: str, **params: Any) -> str:
    return text % params if params else text


@dataclass(frozen=True)
class Cost:
    """What one text costs by SMS in one language (with its menu lines for a choice)."""

    text: str
    segments: int
    encoding: str
    units: int


@dataclass(frozen=True)
class TextRow:
    """One text key a node shows, in every enabled language (None: missing there)."""

    key: str
    role: str  # "question", the option key, or a phone node's "button" and "invalid"
    texts: dict[str, str | None]


@dataclass
class MapNode:
    """One box of the diagram."""

    name: str
    kind: str
    lines: list[str]  # what the box says, after the name
    texts: list[TextRow] = field(default_factory=list)
    costs: dict[str, Cost] = field(default_factory=dict)  # per language, the node's SMS
    is_start: bool = False


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str = ""


@dataclass
class FlowMap:
    flow_id: str
    start: str
    nodes: list[MapNode]
    edges: list[Edge]
    languages: list[str]

    def node(self, name: str) -> MapNode:
        return next(n for n in self.nodes if n.name == name)


def condition_words(cond: Any, _: Translate = untranslated) -> str:
    """A branch condition in plain words ("danger is yes", "channel is voice")."""
    if isinstance(cond, AnswerCondition):
        if cond.eq is not None:
            return _("%(answer)s is %(value)s", answer=cond.answer, value=cond.eq)
        if cond.in_ is not None:
            values = ", ".join(str(v) for v in cond.in_)
            return _("%(answer)s is one of %(values)s", answer=cond.answer, values=values)
        if cond.set_:
            return _("%(answer)s was answered", answer=cond.answer)
        return _("%(answer)s was not answered", answer=cond.answer)
    if isinstance(cond, LanguageCondition):
        return _("language is %(code)s", code=cond.language)
    if isinstance(cond, ChannelCondition):
        return _("channel is %(channel)s", channel=cond.channel)
    if isinstance(cond, AllCondition):
        return " + ".join(condition_words(c, _) for c in cond.all_)
    if isinstance(cond, AnyCondition):
        return _(" or ").join(condition_words(c, _) for c in cond.any_)
    if isinstance(cond, NotCondition):
        return _("not (%(condition)s)", condition=condition_words(cond.not_, _))
    return str(cond)


def action_words(action: Any, _: Translate = untranslated) -> str:
    """An action in plain words ("create the report (urgent when danger is yes)")."""
    kind = action.kind
    if kind == "create_report":
        args = action.create_report
        words = _("create the report")
        if args.urgency_from:
            words += " " + _("(urgent when %(answer)s is yes)", answer=args.urgency_from)
        return words
    if kind == "save_answers":
        which = action.save_answers
        if which == "all":
            return _("save every answer of the survey")
        return _("save the answers %(names)s", names=", ".join(which))
    if kind == "set_consent":
        args = action.set_consent
        if args.answer:
            return _("record survey consent from %(answer)s", answer=args.answer)
        return _("record survey consent: %(value)s", value=_("yes") if args.value else _("no"))
    if kind == "set_language":
        return _("set the language from %(answer)s", answer=action.set_language.answer)
    if kind == "opt_out":
        return _("stop all messages to the citizen")
    if kind == "opt_in":
        return _("resume messages to the citizen")
    if kind == "lookup_report":
        return _("look up the report %(answer)s", answer=action.lookup_report.answer)
    if kind == "add_to_report":
        args = action.add_to_report
        return _(
            "add %(answer)s to the report %(reference)s",
            answer=args.answer,
            reference=args.reference,
        )
    if kind == "request_callback":
        phone = action.request_callback.phone if action.request_callback else None
        if phone:
            return _("ask for a call back on the number %(answer)s", answer=phone)
        return _("ask for a call back")
    return kind


def _node_lines(node: Any, _: Translate) -> list[str]:
    """What a box says under the node's name."""
    lines: list[str] = []
    save = getattr(node, "save", None)
    if isinstance(node, ChoiceNode):
        lines.extend(f"{n}. {o.key}" for n, o in enumerate(node.options, start=1))
    elif isinstance(node, PlaceNode):
        lines.append(_("area down to the %(level)s", level=node.levels))
    elif isinstance(node, NumberNode):
        lines.append(_("a number from %(min)s to %(max)s", min=node.min, max=node.max))
    elif isinstance(node, TextNode):
        lines.append(_("free text, a recording on a call"))
    elif isinstance(node, ActionNode):
        lines.extend(action_words(a, _) for a in node.do)
    elif node.type == "language":
        lines.append(_("language menu (skipped when known)") if node.skip_if_known else "")
    elif node.type == "reference":
        lines.append(_("a report reference"))
    elif isinstance(node, PhoneNode):
        lines.append(_("the citizen's own phone number, shared by a button (Telegram)"))
    if save:
        lines.append(_("saved as %(name)s", name=save))
    return [line for line in lines if line]


def _edges(name: str, node: Any, _: Translate) -> list[Edge]:
    """The ways out of a node, options sharing a target drawn as one arrow."""
    if isinstance(node, ChoiceNode):
        by_target: dict[str, list[str]] = {}
        for opt in node.options:
            by_target.setdefault(opt.next or node.next or "", []).append(opt.key)
        edges = []
        for target, keys in by_target.items():
            if not target:
                continue
            label = "" if len(keys) == len(node.options) else ", ".join(keys)
            edges.append(Edge(name, target, label))
        return edges
    if isinstance(node, BranchNode):
        edges = [Edge(name, b.next, condition_words(b.if_, _)) for b in node.branches]
        return [*edges, Edge(name, node.default, _("otherwise"))]
    target = getattr(node, "next", None)
    return [Edge(name, target)] if target else []


def _text_rows(node: Any, catalog: Catalog, languages: list[str]) -> list[TextRow]:
    keys: list[tuple[str, str]] = []
    if getattr(node, "text", None):
        keys.append((node.text, "question"))
    if isinstance(node, ChoiceNode):
        keys.extend((o.text, o.key) for o in node.options)
    if isinstance(node, PhoneNode):
        keys.extend([(node.button, "button"), (node.invalid, "invalid")])
    return [
        TextRow(
            key,
            role,
            {
                lang: catalog.text(key, lang) if catalog.has(key, lang) else None
                for lang in languages
            },
        )
        for key, role in keys
    ]


def sms_text(node: Any, catalog: Catalog, lang: str, params: dict[str, Any]) -> str | None:
    """The SMS a node sends in ``lang`` (a choice with its ``n. label`` lines), or None."""
    key = getattr(node, "text", None)
    if not key or not catalog.has(key, lang):
        return None
    extra = {"min": node.min, "max": node.max} if isinstance(node, NumberNode) else {}
    header = catalog.render(key, lang, {**params, **extra})
    if not isinstance(node, ChoiceNode):
        return header
    if not all(catalog.has(o.text, lang) for o in node.options):
        return None
    labels = [catalog.render(o.text, lang, params) for o in node.options]
    return sms.render_menu(header, labels)


def cost_of(text: str) -> Cost:
    return Cost(text, sms.segments(text), sms.encoding(text), sms.length(text))


def build(
    flow: Flow,
    catalog: Catalog,
    languages: Iterable[str],
    emergency_numbers: dict[str, str] | None = None,
    _: Translate = untranslated,
) -> FlowMap:
    """The map of ``flow``: nodes in file order, edges, texts and SMS costs per language."""
    langs = list(languages)
    params = {**(emergency_numbers or {}), **SAMPLE_PARAMS}
    nodes: list[MapNode] = []
    edges: list[Edge] = []
    for name, node in flow.nodes.items():
        box = MapNode(name, node.type, _node_lines(node, _), is_start=name == flow.start)
        box.texts = _text_rows(node, catalog, langs)
        for lang in langs:
            text = sms_text(node, catalog, lang, params)
            if text is not None:
                box.costs[lang] = cost_of(text)
        if isinstance(node, EndNode) and not node.text:
            box.lines.append(_("ends without a word"))
        nodes.append(box)
        edges.extend(e for e in _edges(name, node, _) if e.target in flow.nodes)
    return FlowMap(flow.id, flow.start, nodes, edges, langs)


def headline(node: MapNode, catalog: Catalog, lang: str) -> str | None:
    """The node's question in ``lang`` (the diagram shows the default language's)."""
    question = next((t for t in node.texts if t.role == "question"), None)
    if question is None or not catalog.has(question.key, lang):
        return None
    return catalog.text(question.key, lang)


def flow_map(bundle: Any, flow_id: str, _: Translate = untranslated) -> FlowMap:
    """The map of one loaded flow in every enabled language."""
    settings = bundle.settings
    return build(
        bundle.flows[flow_id],
        bundle.catalog,
        settings.languages.enabled,
        dict(settings.emergency_numbers),
        _,
    )
