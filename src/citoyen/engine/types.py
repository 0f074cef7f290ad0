"""Plain data exchanged with the pure flow engine.

The engine takes a flow, a :class:`State`, an :class:`Input` and a :class:`Context`, and returns a
:class:`StepResult`. These types carry no behaviour and no references to channels, databases or
clocks, so that any web worker can rebuild a conversation from its JSON state and property tests
can drive the engine with arbitrary inputs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

InputKind = Literal[
    "start",  # a conversation begins (first message, incoming call, survey invitation)
    "text",  # free text typed by the citizen (SMS, Telegram)
    "digits",  # keypad digits (voice); also accepted from SMS when the text is all digits
    "choice",  # an option key chosen directly (Telegram inline button)
    "location",  # a place resolved by the channel (value = area code), e.g. Telegram location
    "recording",  # a voice recording or voice note (value = provider URL or stored file id)
    "photo",  # a photo sent without words (value = provider file id); kept as an attachment
    # The citizen's own phone number shared by the channel (a Telegram contact whose user is
    # the sender): value = the number encrypted by the service (never in clear); None: a
    # number that is not the sender's own.
    "contact",
    "timeout",  # the citizen did not answer (voice <Gather> timeout)
]

PromptKind = Literal[
    "message", "choice", "language", "place", "number", "text", "reference", "phone", "end"
]

StatusKind = Literal["active", "waiting", "completed", "expired", "interrupted"]


@dataclass(frozen=True)
class Input:
    """One thing a citizen did."""

    kind: InputKind
    value: str | None = None


@dataclass(frozen=True)
class Option:
    """One entry of a menu.

    ``text`` is a locale key; ``label`` a literal already in the right words (area names);
    ``lang`` asks the renderer to render ``text`` in that language instead of the conversation's
    (language menus announce each language in itself).
    """

    key: str
    text: str | None = None
    label: str | None = None
    lang: str | None = None


@dataclass(frozen=True)
class Prompt:
    """Something to show or say, in channel-neutral form.

    ``text`` is a locale key (or None for a prompt that is only a menu); ``params`` fill its
    placeholders (emergency numbers and answers are added by the renderer's caller).
    For waiting prompts, ``expects`` describes the input: for ``number`` the ``min``/``max``;
    for ``text`` the ``max_length`` and ``max_seconds`` (voice recording length); for ``phone``
    the ``button`` (the text key of the button that shares the number, on Telegram).
    """

    kind: PromptKind
    text: str | None
    node: str
    params: dict[str, Any] = field(default_factory=dict)
    options: tuple[Option, ...] = ()
    expects: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """What ``dataclasses.asdict`` gives (a reply's prompts are stored with every inbound
        message), written out: ``asdict`` recursed generically through every option."""
        return {
            "kind": self.kind,
            "text": self.text,
            "node": self.node,
            "params": deep_copy(self.params),
            "options": tuple(
                {"key": o.key, "text": o.text, "label": o.label, "lang": o.lang}
                for o in self.options
            ),
            "expects": deep_copy(self.expects),
        }


@dataclass(frozen=True)
class Effect:
    """Something the world must do: create a report, change consent, set language...

    Kinds: ``set_language`` {language}; ``create_report`` {category, place, description,
    urgency, anonymous, callback, answers}; ``save_answers`` {flow_id, flow_version, answers};
    ``set_consent`` {consent}; ``opt_out`` {}; ``opt_in`` {}; ``set_discreet`` {discreet};
    ``lookup_report`` {reference}
    (the caller adds ``report_status`` to the texts' values); ``request_callback`` {} or
    {phone} (the number a ``phone`` node saved, encrypted; the caller adds ``callback_answer``).
    """

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class State:
    """A conversation's whole memory; round-trips through JSON (``to_dict``/``from_dict``)."""

    flow_id: str
    flow_version: str
    node: str
    status: StatusKind = "active"
    language: str | None = None
    answers: dict[str, Any] = field(default_factory=dict)
    retries: int = 0
    # Per-node scratch space (place menus: path of chosen areas and menu page; language menu
    # return point...). Cleared when the conversation moves to another node.
    scratch: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A deep, JSON-ready copy (faster than ``dataclasses.asdict`` on every message)."""
        return {
            "flow_id": self.flow_id,
            "flow_version": self.flow_version,
            "node": self.node,
            "status": self.status,
            "language": self.language,
            "answers": _copy(self.answers),
            "retries": self.retries,
            "scratch": _copy(self.scratch),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        return cls(**data)


# Exact types that hold nothing to copy: most state values are these, and testing for them first
# skips a recursive call per value.
_LEAVES = frozenset({str, int, float, bool, type(None)})


def deep_copy(value: Any) -> Any:
    """:func:`copy.deepcopy` with a fast path for the dicts, lists and scalars answers are made of.

    Effects carry copies of the answers so that the caller may keep them; ``copy.deepcopy``'s
    generic machinery was a tenth of a conversation step. Types are kept as they are (unlike
    :meth:`State.to_dict`, which makes JSON data); anything else goes to ``copy.deepcopy``.
    """
    kind = type(value)
    if kind in _LEAVES:
        return value
    if kind is dict:
        return {k: deep_copy(v) for k, v in value.items()}
    if kind is list:
        return [deep_copy(v) for v in value]
    return copy.deepcopy(value)


def _copy(value: Any) -> Any:
    """Deep copy of JSON-shaped data (dicts -> dicts, lists and tuples -> lists, scalars as is)."""
    if isinstance(value, dict):
        return {k: v if type(v) in _LEAVES else _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [v if type(v) in _LEAVES else _copy(v) for v in value]
    return value


@dataclass(frozen=True)
class AreaNode:
    """One administrative area as the engine sees it (no database row)."""

    code: str
    name: str
    level: str  # region | district | cercle | commune | quartier
    parent: str | None
    children: tuple[str, ...] = ()


@dataclass(frozen=True)
class Context:
    """What the engine may know about the world, handed in by the caller.

    ``areas`` maps area code -> :class:`AreaNode` (``area_roots`` lists the top level in menu
    order). ``menu_size`` is the most options one menu may show before paging (voice keeps 9
    digits: 8 entries + "more"). ``contact_language`` is the remembered language, if any.
    """

    languages: tuple[str, ...]
    default_language: str
    keywords: dict[str, tuple[str, ...]] = field(default_factory=dict)
    areas: dict[str, AreaNode] = field(default_factory=dict)
    area_roots: tuple[str, ...] = ()
    menu_size: int = 9
    contact_language: str | None = None
    channel: str = "sms"


@dataclass
class StepResult:
    state: State
    prompts: list[Prompt]
    effects: list[Effect]

    @property
    def waiting(self) -> bool:
        return self.state.status == "waiting"

    @property
    def finished(self) -> bool:
        return self.state.status in ("completed", "interrupted", "expired")
