"""Which prompts a deployment needs: every text a call can play, per language, with its hash.

The list comes from the flows themselves (engine voice texts, then the questions and menu options
of each flow a call can run, in file order), so adding a question to a flow adds a prompt to
record without anyone maintaining a list. A flow only a typed message starts (a keyword such as
SUIVI or APPEL, a message after a report) is never heard on a call: its texts are not prompts
(:func:`citoyen.engine.loader.call_flows`). Menu lines are recorded in parts (docs/voice.md, "Recording files"): an
option's own text plus ``system.voice_option.<n>`` ("..., press n") for each position a menu
uses, and ``system.language_option.<n>`` for the position of the language in the language menu.

A prompt's *text* is what the recording must say: the template with the values known when it is
recorded filled in (emergency numbers, the digit of a numbered menu line). Its hash is kept with
the recording; when the text or an emergency number changes, the hash differs and the recording
is *stale*.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from citoyen.engine.loader import voice_keys
from citoyen.engine.schema import ChoiceNode
from citoyen.i18n import render_template

VOICE_OPTION = "system.voice_option"
LANGUAGE_OPTION = "system.language_option"


@dataclass(frozen=True)
class PromptSpec:
    """One prompt to record in one language."""

    number: int  # 1-based position in the language's list (keyed on the phone to pick it)
    key: str  # the recording's key (``system.voice_option.2`` for a numbered menu line)
    text_key: str  # the locale text it says
    text: str  # what the recording must say, in its language
    text_hash: str
    values: Mapping[str, Any] = field(default_factory=dict)  # filled in: numbers, menu digit


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _max_options(flows: Sequence[Any]) -> int:
    sizes = [
        len(node.options)
        for flow in flows
        for node in flow.nodes.values()
        if isinstance(node, ChoiceNode)
    ]
    return max(sizes, default=0)


def prompt_keys(bundle: Any, lang: str) -> list[tuple[str, str, dict[str, Any]]]:
    """``(recording key, text key, extra values)`` a call in ``lang`` can play, in order."""
    enabled = list(bundle.settings.languages.enabled)
    out: list[tuple[str, str, dict[str, Any]]] = []
    for key in voice_keys(bundle.flows, bundle.survey_flows):
        if key == VOICE_OPTION:
            for n in range(1, _max_options(bundle.call_flows()) + 1):
                out.append((f"{VOICE_OPTION}.{n}", VOICE_OPTION, {"n": n, "label": "…"}))
        elif key == LANGUAGE_OPTION:
            if lang in enabled:
                n = enabled.index(lang) + 1
                out.append((f"{LANGUAGE_OPTION}.{n}", LANGUAGE_OPTION, {"n": n}))
        else:
            out.append((key, key, {}))
    return out


def catalogue(bundle: Any, lang: str) -> list[PromptSpec]:
    """The prompts of one language, numbered, with the text each must say and its hash."""
    catalog = bundle.catalog
    fixed = dict(bundle.settings.emergency_numbers)
    specs: list[PromptSpec] = []
    for key, text_key, extra in prompt_keys(bundle, lang):
        if not catalog.has(text_key, lang):
            continue
        values = {**fixed, **extra}
        text = render_template(catalog.text(text_key, lang, "voice"), values)
        specs.append(PromptSpec(len(specs) + 1, key, text_key, text, text_hash(text), values))
    return specs
