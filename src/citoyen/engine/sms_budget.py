"""The SMS budget of a deployment: what the first exchange of a conversation costs per language.

Every segment is billed to the service, and a new reporter's first SMS exchange (the welcome and
the first question, sent together) is the one every citizen pays for. ``sms_budget`` in
config/settings.yaml sets, per language, the most segments that exchange, the help at the first
question and any one prompt may cost; ``citoyen flows check`` reports a reply above it as an
error (exit 1) for languages listed there, and as a warning against the default budget for
others. The cost is counted on the replies the engine really produces for a contact whose
language is known, rendered as the SMS channel renders them (menus as ``n. label`` lines, texts
of one reply joined into one message when that costs no more: :func:`sms.join_messages`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from citoyen.engine import engine, sms
from citoyen.engine.schema import Flow, Settings, SmsBudget
from citoyen.engine.types import Context, Prompt

MAX_MESSAGE_SEGMENTS = 3  # one <Message> is cut beyond this (citoyen.channels.sms.split_sms)


@dataclass(frozen=True)
class Overrun:
    """A reply that costs more than its budget."""

    level: Literal["error", "warning"]
    lang: str
    key: str | None  # the locale key to shorten first (the first prompt's text)
    message: str


def budget_for(settings: Settings, lang: str) -> tuple[SmsBudget, Literal["error", "warning"]]:
    """The language's budget and how an overrun is reported (error when the budget is set)."""
    if lang in settings.sms_budget:
        return settings.sms_budget[lang], "error"
    return SmsBudget(), "warning"


def prompt_text(catalog: Any, prompt: Prompt, lang: str, params: Mapping[str, Any]) -> str:
    """One prompt as the SMS channel writes it (citoyen.messages.render.render_sms_parts)."""
    values = {**params, **prompt.params}
    header = catalog.render(prompt.text, lang, values, "sms") if prompt.text else None
    labels = [
        option.label
        if option.label is not None
        else catalog.render(option.text, option.lang or lang, values, "sms")
        if option.text
        else option.key
        for option in prompt.options
    ]
    return sms.render_menu(header, labels)


def first_prompts(flow: Flow, settings: Settings, lang: str) -> list[Prompt]:
    """The first reply of ``flow`` over SMS to a contact whose language is ``lang``."""
    ctx = Context(
        languages=tuple(settings.languages.enabled),
        default_language=settings.languages.default,
        keywords=settings.keyword_map(),
        contact_language=lang,
        channel="sms",
    )
    return list(engine.start(flow, ctx, language=lang).prompts)


def _describe(texts: list[str], what: str, lang: str, limit: int) -> str:
    messages = sms.join_messages(texts, MAX_MESSAGE_SEGMENTS)
    count = sum(sms.segments(m) for m in messages)
    detail = " + ".join(
        f"{sms.segments(m)} ({sms.encoding(m)}, {sms.length(m)} units)" for m in messages
    )
    return (
        f"SMS in '{lang}': {what} costs {count} segments ({detail}); "
        f"the budget is {limit} (sms_budget in config/settings.yaml)"
    )


def check_first_exchange(
    flow: Flow, settings: Settings, catalog: Any, lang: str, params: Mapping[str, Any]
) -> list[Overrun]:
    """The first exchange of a flow that greets new contacts, and the help at its question."""
    budget, level = budget_for(settings, lang)
    prompts = first_prompts(flow, settings, lang)
    if not prompts or any(p.kind == "language" for p in prompts):
        return []
    texts = [prompt_text(catalog, p, lang, params) for p in prompts]
    key = prompts[0].text
    found: list[Overrun] = []
    if sms.cost(texts, MAX_MESSAGE_SEGMENTS) > budget.first_exchange:
        what = f"the first exchange of flow '{flow.id}' (welcome and first question)"
        found.append(Overrun(level, lang, key, _describe(texts, what, lang, budget.first_exchange)))
    question = prompts[-1]
    if question.options and catalog.has("system.help", lang):
        helped = [catalog.render("system.help", lang, params, "sms"), texts[-1]]
        if sms.cost(helped, MAX_MESSAGE_SEGMENTS) > budget.help:
            what = f"the help at the first question of flow '{flow.id}'"
            found.append(
                Overrun(level, lang, "system.help", _describe(helped, what, lang, budget.help))
            )
    return found


def greets_new_contacts(flow: Flow) -> bool:
    """A flow a new contact's first SMS starts (``first_contact`` or ``default`` trigger)."""
    return any(t.first_contact or t.default for t in flow.triggers)
