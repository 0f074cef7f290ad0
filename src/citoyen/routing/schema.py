"""The shape of ``config/stakeholders.yaml`` and ``config/routing.yaml`` (docs/routing.md).

Pydantic checks the structure (types, unknown fields, the list of kinds); what needs the rest of
the deployment (do the areas, categories and stakeholders named exist?) is checked by
:mod:`citoyen.routing.checker`, which knows the lines to point at.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

# Who acts on reports (DESIGN.md section 4). ``moderation`` is the national queue every report
# that no rule reaches falls back to.
Kind = Literal[
    "police",
    "gendarmerie",
    "garde_nationale",
    "protection_civile",
    "mayor_ccs",
    "prefet",
    "village_chief",
    "religious_leader",
    "womens_association",
    "youth_association",
    "civil_society",
    "moderation",
]
KINDS: tuple[str, ...] = get_args(Kind)

# Report urgencies, most urgent first. The report flow gives ``emergency`` (someone in danger)
# or ``normal``; moderators may raise a report to ``high``.
URGENCIES: tuple[str, ...] = ("emergency", "high", "normal")
DEFAULT_SLA: dict[str, str] = {"emergency": "15m", "high": "2h", "normal": "48h"}

# Report life (DESIGN.md section 4) and the statuses a citizen may be told of.
STATUSES: tuple[str, ...] = ("new", "acknowledged", "in_progress", "resolved", "closed")
NOTIFIABLE: tuple[str, ...] = ("acknowledged", "in_progress", "resolved", "closed")
CLOSE_REASONS: tuple[str, ...] = ("no_further_action", "not_responsible", "duplicate", "spam")

CODE_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
DEFAULT_FALLBACK = "moderation"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Nearest(_Model):
    """``{nearest: KIND}``: the stakeholder(s) of that kind whose area is the closest one
    containing the report's place (the commune's, else the cercle's, the region's, national)."""

    nearest: Kind


def _target(value: Any) -> Any:
    """A rule target: a stakeholder code, or ``{nearest: KIND}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"nearest"}:
        kind = value["nearest"]
        if kind not in KINDS:
            raise ValueError(
                f"unknown kind '{kind}' in {{nearest: ...}} (one of: {', '.join(KINDS)})"
            )
        return Nearest(nearest=kind)
    raise ValueError(f"a target is a stakeholder code or {{nearest: KIND}}, not {value!r}")


def _one_or_many(value: Any) -> Any:
    """``x`` and ``[x, y]`` both allowed; ``None`` (or the field left out) means any."""
    if value is None or isinstance(value, list | tuple):
        return value
    return [value]


Target = Annotated[str | Nearest, BeforeValidator(_target)]
Names = Annotated[tuple[str, ...] | None, BeforeValidator(_one_or_many)]


class StakeholderSpec(_Model):
    """One stakeholder (a queue) in ``config/stakeholders.yaml``."""

    code: str = Field(pattern=CODE_PATTERN, max_length=80)
    name: str = Field(min_length=1, max_length=200)
    kind: Kind
    area: str | None = None  # an area code; left out: national
    language: str | None = None  # language of its alerts; left out: the default language
    on_call: list[str] = Field(default_factory=list)  # tel:+223... or telegram:ID


class StakeholdersFile(_Model):
    stakeholders: list[StakeholderSpec] = Field(default_factory=list)


class RuleSpec(_Model):
    """Category x area x urgency -> stakeholders. A field left out matches anything."""

    category: Names = None
    area: str | None = None
    urgency: Names = None
    to: list[Target] = Field(min_length=1)


class DuplicatesSpec(_Model):
    window: str = "48h"  # reports of one category and commune this close in time are suggested


class RoutingFile(_Model):
    fallback: str = DEFAULT_FALLBACK
    sla: dict[str, str] = Field(default_factory=dict)
    notify: list[str] = Field(default_factory=lambda: list(NOTIFIABLE))
    duplicates: DuplicatesSpec = Field(default_factory=DuplicatesSpec)
    escalation: dict[str, list[Target]] = Field(default_factory=dict)
    rules: list[RuleSpec] = Field(default_factory=list)
