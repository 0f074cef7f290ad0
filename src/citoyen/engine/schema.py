"""Pydantic models of the flow YAML (docs/flows.md): flows, nodes, conditions, actions, settings.

Unknown fields are errors (``extra="forbid"``) because a misspelt field in a hand-written YAML
file would otherwise be ignored silently, and a citizen would meet the consequence. A flow's
``version`` hashes its canonical content so that a conversation can be pinned to the definition it
started with, stored as JSON and reloaded with :meth:`Flow.from_definition`.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    model_validator,
)

from citoyen.engine.types import Option

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
Scalar = StrictBool | StrictInt | StrictFloat | StrictStr
LEVELS: tuple[str, ...] = ("region", "cercle", "commune")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _exactly_one(model: BaseModel, names: tuple[str, ...], what: str) -> str:
    """The single one of ``names`` that was given, else a validation error naming them."""
    given = [n for n in names if n in model.model_fields_set]
    aliases = [getattr(type(model).model_fields[n], "alias", None) or n for n in names]
    if len(given) != 1:
        raise ValueError(f"{what} needs exactly one of: {', '.join(aliases)}")
    return given[0]


# -- conditions -----------------------------------------------------------------------------------


class AnswerCondition(_Model):
    """``{answer: NAME, eq: V}``, ``{answer: NAME, in: [...]}`` or ``{answer: NAME, set: bool}``."""

    answer: str
    eq: Scalar | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in")
    set_: bool | None = Field(default=None, alias="set")

    @model_validator(mode="after")
    def _one_test(self) -> AnswerCondition:
        _exactly_one(self, ("eq", "in_", "set_"), "an answer condition")
        return self


class LanguageCondition(_Model):
    """``{language: CODE}``: the conversation's language."""

    language: str


class ChannelCondition(_Model):
    """``{channel: voice}``: the channel of the conversation (keypad menus differ from text)."""

    channel: Literal["sms", "voice", "telegram"]


class AllCondition(_Model):
    all_: list[Condition] = Field(alias="all", min_length=1)


class AnyCondition(_Model):
    any_: list[Condition] = Field(alias="any", min_length=1)


class NotCondition(_Model):
    not_: Condition = Field(alias="not")


_CONDITION_TAGS = (
    ("answer", "answer-condition", AnswerCondition),
    ("language", "language-condition", LanguageCondition),
    ("channel", "channel-condition", ChannelCondition),
    ("all", "all-condition", AllCondition),
    ("any", "any-condition", AnyCondition),
    ("not", "not-condition", NotCondition),
)


def _condition_tag(value: Any) -> str | None:
    """Conditions are told apart by their leading key, not by a ``type`` field."""
    if isinstance(value, dict):
        for key, tag, _model in _CONDITION_TAGS:
            if key in value:
                return tag
        return None
    for _key, tag, model in _CONDITION_TAGS:
        if isinstance(value, model):
            return tag
    return None


Condition = Annotated[
    Annotated[AnswerCondition, Tag("answer-condition")]
    | Annotated[LanguageCondition, Tag("language-condition")]
    | Annotated[ChannelCondition, Tag("channel-condition")]
    | Annotated[AllCondition, Tag("all-condition")]
    | Annotated[AnyCondition, Tag("any-condition")]
    | Annotated[NotCondition, Tag("not-condition")],
    Discriminator(
        _condition_tag,
        custom_error_type="unknown_condition",
        custom_error_message="a condition starts with one of: answer, language, channel, all, any, not",
    ),
]

for _model in (AllCondition, AnyCondition, NotCondition):
    _model.model_rebuild()


# -- actions --------------------------------------------------------------------------------------


class CreateReport(_Model):
    """Report field -> answer name; ``urgency_from`` names a yes/no answer (yes = emergency)."""

    category: str | None = None
    place: str | None = None
    description: str | None = None
    anonymous: str | None = None
    callback: str | None = None
    urgency_from: str | None = None


class ConsentArgs(_Model):
    answer: str | None = None
    value: bool | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ConsentArgs:
        _exactly_one(self, ("answer", "value"), "set_consent")
        return self


class LanguageArgs(_Model):
    answer: str


class NoArgs(_Model):
    pass


class LookupArgs(_Model):
    answer: str


class CallbackArgs(_Model):
    """``phone``: the answer a ``phone`` node saved (the number shared on Telegram); without it
    the citizen is called on the number they write from."""

    phone: str | None = None


class AddToReportArgs(_Model):
    """``reference``: the answer holding the report's reference; ``answer``: the answer holding
    what the citizen adds (text or recording). The service keeps it as the answer to the last
    staff message when one awaits an answer, else as information added."""

    reference: str
    answer: str


# The values an action gives the texts after it (the service computes them when it applies the
# action's effect): a report's reference, its status as words, the team's last message to the
# reporter, what became of an addition, what becomes of a call-back request.
EFFECT_PARAMS: dict[str, tuple[str, ...]] = {
    "create_report": ("reference",),
    "lookup_report": ("reference", "report_status", "staff_message"),
    "add_to_report": ("reference", "addition_outcome"),
    "request_callback": ("callback_answer",),
}

ACTION_KINDS: tuple[str, ...] = (
    "create_report",
    "save_answers",
    "set_consent",
    "set_language",
    "opt_out",
    "opt_in",
    "lookup_report",
    "add_to_report",
    "request_callback",
)
# Actions written without an argument (``- opt_out:``, ``- request_callback:``).
BARE_ACTIONS = ("opt_out", "opt_in", "request_callback")


class Action(_Model):
    """One entry of an action node's ``do`` list: a mapping with exactly one action name."""

    create_report: CreateReport | None = None
    save_answers: list[str] | Literal["all"] | None = None
    set_consent: ConsentArgs | None = None
    set_language: LanguageArgs | None = None
    opt_out: NoArgs | None = None
    opt_in: NoArgs | None = None
    lookup_report: LookupArgs | None = None
    add_to_report: AddToReportArgs | None = None
    # The citizen asks to be called (docs/voice.md): bare, or {phone: ANSWER}.
    request_callback: CallbackArgs | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Action:
        kind = _exactly_one(self, ACTION_KINDS, "an action")
        if getattr(self, kind) is None and kind not in BARE_ACTIONS:
            raise ValueError(f"action '{kind}' needs an argument")
        return self

    @property
    def kind(self) -> str:
        return next(n for n in ACTION_KINDS if n in self.model_fields_set)


# -- nodes ----------------------------------------------------------------------------------------


class MessageNode(_Model):
    type: Literal["message"]
    text: str
    next: str


class ChoiceOption(_Model):
    key: str = Field(min_length=1)
    text: str
    next: str | None = None


class ChoiceNode(_Model):
    type: Literal["choice"]
    text: str
    save: str | None = None
    options: list[ChoiceOption] = Field(min_length=1)
    next: str | None = None

    # Computed once per loaded flow (the model is frozen) rather than on every step.
    @cached_property
    def option_keys(self) -> tuple[str, ...]:
        """The options' keys, in menu order (what an answer is matched against)."""
        return tuple(o.key for o in self.options)

    @cached_property
    def prompt_options(self) -> tuple[Option, ...]:
        """The options as the engine shows them."""
        return tuple(Option(key=o.key, text=o.text) for o in self.options)


class LanguageNode(_Model):
    type: Literal["language"]
    skip_if_known: bool = True
    next: str


class PlaceNode(_Model):
    type: Literal["place"]
    text: str
    save: str | None = None
    levels: Literal["region", "cercle", "commune"] = "commune"
    next: str


class NumberNode(_Model):
    type: Literal["number"]
    text: str
    save: str | None = None
    min: int
    max: int
    next: str

    @model_validator(mode="after")
    def _ordered(self) -> NumberNode:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class TextNode(_Model):
    """Free text (a recording on a call, or a voice note, answers it too)."""

    type: Literal["text"]
    text: str
    save: str | None = None
    max_length: int = Field(default=1000, ge=1)
    max_seconds: int = Field(default=120, ge=1)
    # A photo sent alone answers the question (``{photo: file id}``); otherwise it is kept and
    # the question asked again, as a description still wants words.
    photo: bool = False
    next: str


class ReferenceNode(_Model):
    """Asks for a report reference code (digits, ``#``-terminated on a call)."""

    type: Literal["reference"]
    text: str
    save: str | None = None
    next: str


class PhoneNode(_Model):
    """Asks for the citizen's own phone number, where the channel does not give it (Telegram):
    a button shares it (``button``, a text key). A typed number, or someone else's, is not
    taken (nobody can make us call a number that is not theirs): ``invalid`` is said and the
    question asked again. The number is saved encrypted, never in clear, for
    ``request_callback: {phone: ...}``."""

    type: Literal["phone"]
    text: str
    button: str
    invalid: str
    save: str | None = None
    next: str


class Branch(_Model):
    if_: Condition = Field(alias="if")
    next: str


class BranchNode(_Model):
    type: Literal["branch"]
    branches: list[Branch] = Field(min_length=1)
    default: str


class ActionNode(_Model):
    type: Literal["action"]
    do: list[Action] = Field(min_length=1)
    next: str


class EndNode(_Model):
    type: Literal["end"]
    text: str | None = None


Node = Annotated[
    MessageNode
    | ChoiceNode
    | LanguageNode
    | PlaceNode
    | NumberNode
    | TextNode
    | ReferenceNode
    | PhoneNode
    | BranchNode
    | ActionNode
    | EndNode,
    Field(discriminator="type"),
]
NODE_TYPES: tuple[str, ...] = (
    "message",
    "choice",
    "language",
    "place",
    "number",
    "text",
    "reference",
    "phone",
    "branch",
    "action",
    "end",
)
# Node types whose ``text`` may be left out: it is then ``<flow>.<node>`` (Flow below).
TEXT_KEY_TYPES = frozenset({"message", "choice", "place", "number", "text", "reference", "phone"})
WAITING_TYPES = frozenset({"choice", "language", "place", "number", "text", "reference", "phone"})
# A phone node's other texts, derived the same way: ``<flow>.<node>.button``, ``.invalid``.
PHONE_TEXTS = ("button", "invalid")


def waits(node: BaseModel) -> bool:
    """Whether a node always waits for the citizen (a language node may skip itself)."""
    if isinstance(node, LanguageNode):
        return not node.skip_if_known
    return getattr(node, "type", None) in WAITING_TYPES


# -- flow -----------------------------------------------------------------------------------------


TRIGGER_KINDS: tuple[str, ...] = (
    "keyword",
    "first_contact",
    "incoming_call",
    "after_report",
    "report_addition",
    "default",
)
# Answers a flow started by these triggers is given before its first node (docs/flows.md,
# "Triggers"): the reference of the report the message is about, and the message itself.
TRIGGER_ANSWERS: dict[str, tuple[str, ...]] = {
    "keyword": ("reference",),
    "after_report": ("reference",),
    "report_addition": ("reference", "message"),
}


class Trigger(_Model):
    """What starts a flow: a keyword, a first contact, an incoming call, a message about a
    recent report (``after_report``), an answer to a staff message (``report_addition``), or any
    message."""

    keyword: list[Annotated[str, Field(min_length=1)]] | None = Field(default=None, min_length=1)
    first_contact: bool | None = None
    incoming_call: bool | None = None
    after_report: bool | None = None
    report_addition: bool | None = None
    default: bool | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Trigger:
        _exactly_one(self, TRIGGER_KINDS, "a trigger")
        return self

    @property
    def kind(self) -> str:
        return next(iter(self.model_fields_set))


def duration_seconds(text: str) -> int:
    """``90s``, ``30m``, ``2h``, ``7d`` -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"bad duration {text!r} (use a number and s, m, h or d)")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class Flow(_Model):
    """One conversation flow (``flows/<id>.yaml``)."""

    id: str = Field(min_length=1)
    expiry: str = Field(default="2h", pattern=_DURATION.pattern)
    max_retries: int = Field(default=3, ge=1)
    triggers: list[Trigger] = Field(default_factory=list)
    start: str
    nodes: dict[str, Node] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _derive_text_keys(cls, data: Any) -> Any:
        """Text keys not written follow from the flow, node and option: node ``category`` of
        flow ``report`` says ``report.category``, its option ``theft`` ``report.category.theft``.

        Filled in before validation, so a derived key is part of the definition (and of the
        version hash) exactly as if it had been written. End nodes keep ``text`` optional: an
        end without one says nothing. A phone node's button and refusal are
        ``<flow>.<node>.button`` and ``<flow>.<node>.invalid``.
        """
        if not isinstance(data, dict) or not isinstance(data.get("nodes"), dict):
            return data
        flow_id = data.get("id")
        if not isinstance(flow_id, str) or not flow_id:
            return data
        nodes = {}
        for name, node in data["nodes"].items():
            if isinstance(node, dict) and node.get("type") in TEXT_KEY_TYPES:
                node = {"text": f"{flow_id}.{name}", **node}
                if node.get("type") == "phone":
                    node = {f: f"{flow_id}.{name}.{f}" for f in PHONE_TEXTS} | node
                if node.get("type") == "choice" and isinstance(node.get("options"), list):
                    node["options"] = [
                        {"text": f"{flow_id}.{name}.{opt['key']}", **opt}
                        if isinstance(opt, dict) and isinstance(opt.get("key"), str | int)
                        else opt
                        for opt in node["options"]
                    ]
            nodes[name] = node
        return {**data, "nodes": nodes}

    @property
    def expiry_seconds(self) -> int:
        return duration_seconds(self.expiry)

    def to_definition(self) -> dict[str, Any]:
        """The definition as plain JSON data (field aliases, only what the author wrote)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)

    @classmethod
    def from_definition(cls, data: dict[str, Any]) -> Flow:
        """Rebuild a pinned flow from :meth:`to_definition` output (same version)."""
        return cls.model_validate(data)

    @cached_property
    def version(self) -> str:
        """SHA-256 of the canonical JSON of the definition: formatting and comments don't count."""
        canonical = json.dumps(
            self.to_definition(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# -- settings -------------------------------------------------------------------------------------


class LanguageSettings(_Model):
    enabled: list[str] = Field(min_length=1)
    default: str
    # Languages the voice language menu offers even when callers cannot hear them yet (no
    # text-to-speech, prompts not all recorded): docs/voice.md, "Languages offered on calls".
    voice_forced: list[str] = Field(default_factory=list)


KEYWORD_NAMES: tuple[str, ...] = (
    "stop",
    "start",
    "help",
    "menu",
    "language",
    "discreet",
    "normal",
)
KeywordName = Literal["stop", "start", "help", "menu", "language", "discreet", "normal"]


class SmsBudget(_Model):
    """Most SMS segments one reply may cost in a language (``sms_budget`` in settings.yaml)."""

    first_exchange: int = Field(default=2, ge=1)  # the welcome and the first question
    help: int = Field(default=3, ge=1)  # the help text and the first question asked again
    prompt: int = Field(default=2, ge=1)  # any other prompt with its options


class AfterReport(_Model):
    """How long after a report a citizen's messages are read as being about it
    (``after_report`` in settings.yaml; docs/flows.md, "After a report")."""

    # A message (not a keyword) within this time of the contact's last report starts the flow
    # with the ``after_report`` trigger: a short acknowledgement, never a new report.
    acknowledge_for: str = Field(default="30d", pattern=_DURATION.pattern)
    # A message within this time of the last staff message to the contact is their answer to
    # it (the flow with the ``report_addition`` trigger).
    answer_window: str = Field(default="72h", pattern=_DURATION.pattern)

    @property
    def acknowledge_seconds(self) -> int:
        return duration_seconds(self.acknowledge_for)

    @property
    def answer_seconds(self) -> int:
        return duration_seconds(self.answer_window)


class Settings(_Model):
    """``config/settings.yaml``: languages, emergency numbers, global keywords."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    languages: LanguageSettings
    emergency_numbers: dict[str, str] = Field(default_factory=dict)
    # Global keyword lists by name (stop, start, help, menu, language); the engine tries them in
    # that order.
    keywords: dict[KeywordName, list[str]] = Field(default_factory=dict)
    # Per language without text-to-speech: the language a call falls back to for a prompt that
    # has no recording ({bm: fr}: French audio, else French text-to-speech). Unlisted languages
    # fall back to the default language (docs/voice-prompts.md).
    voice_fallback: dict[str, str] = Field(default_factory=dict)
    # Per language: the SMS budget `citoyen flows check` holds replies to (an error above it).
    # A language not listed is held to the default budget with warnings only.
    sms_budget: dict[str, SmsBudget] = Field(default_factory=dict)
    # Per language with text-to-speech: the Twilio voice its <Say> names (Polly.Lea,
    # Google.fr-FR-Standard-A...); others get the default voice of docs/voice.md.
    tts_voices: dict[str, str] = Field(default_factory=dict)
    after_report: AfterReport = Field(default_factory=AfterReport)

    def keyword_map(self) -> dict[str, tuple[str, ...]]:
        """``Context.keywords`` as the engine wants it, in the engine's order."""
        return {name: tuple(self.keywords[name]) for name in KEYWORD_NAMES if name in self.keywords}
