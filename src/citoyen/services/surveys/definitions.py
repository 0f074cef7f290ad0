"""Survey definitions: ``flows/surveys/<id>.yaml``, validated like flows (file, line, problem).

A definition says which flow to run, when (cron in Africa/Bamako), for whom (consenting contacts,
filtered by area, language and channel, sampled), on which channels, within which quiet hours,
with which reminder, expiry and per-contact frequency cap, and how its indicator is computed.
The format is documented in docs/surveys.md. Problems are reported with the same
:class:`~citoyen.engine.loader.Problem` as flows, so ``citoyen flows check`` prints them alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from ruamel.yaml import YAMLError

from citoyen.engine.layout import SURVEYS_DIR
from citoyen.engine.loader import Problem, _pydantic_problems, _Source, plain
from citoyen.engine.schema import ChoiceNode, duration_seconds
from citoyen.i18n import read_yaml, yaml_error_line
from citoyen.services.quiet_hours import spec

TIMEZONE = "Africa/Bamako"
CHANNELS: tuple[str, ...] = ("sms", "telegram", "voice")


def _duration(value: str) -> str:
    duration_seconds(value)  # raises with a sentence naming the value
    return value


Duration = Annotated[str, AfterValidator(_duration)]
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Schedule(_Model):
    cron: str = Field(min_length=1)
    timezone: str = TIMEZONE

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}") from None
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone=TIMEZONE)
        except ValueError as exc:
            raise ValueError(f"bad cron expression {value!r}: {exc}") from None
        return value

    def trigger(self) -> Any:
        from apscheduler.triggers.cron import CronTrigger

        return CronTrigger.from_crontab(self.cron, timezone=self.timezone)


class Sample(_Model):
    """Draw ``size`` contacts, or ``share`` (0-1] of the eligible ones, at random."""

    size: int | None = Field(default=None, ge=1)
    share: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _one(self) -> Sample:
        if (self.size is None) == (self.share is None):
            raise ValueError("give exactly one of 'size' or 'share'")
        return self


class Audience(_Model):
    """Consenting contacts (always), narrowed by these filters; empty lists mean no filter."""

    areas: list[str] = Field(default_factory=list)  # area codes: the area and everything below
    languages: list[str] = Field(default_factory=list)
    sample: Sample | None = None  # None: everyone eligible
    skip_surveyed_within: Duration = "0d"


class QuietHours(_Model):
    """Messages and calls go out between ``start`` and ``end`` local time; outside, they wait."""

    start: str = "08:00"
    end: str = "20:00"

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError(f"bad time {value!r} (use HH:MM, 24-hour)")
        return value

    @model_validator(mode="after")
    def _order(self) -> QuietHours:
        if self.start >= self.end:
            raise ValueError("'start' must be before 'end' (the window cannot cross midnight)")
        return self

    def window(self) -> tuple[time, time]:
        return time.fromisoformat(self.start), time.fromisoformat(self.end)


class Reminder(_Model):
    after: Duration


class FrequencyCap(_Model):
    """At most ``max`` invitations per contact (over every survey) within ``per``."""

    max: int = Field(ge=1)
    per: Duration


class Voice(_Model):
    """Outbound survey calls: retries of busy/no-answer/failed calls and concurrency.

    ``machine_detection``: Twilio's answering machine detection, so a voicemail is hung up on
    and the contact called again instead of the survey talking to it (docs/surveys.md).
    """

    max_attempts: int = Field(default=3, ge=1, le=10)
    retry_delay: Duration = "2h"
    max_concurrent: int = Field(default=5, ge=1)
    machine_detection: bool = True


class Indicator(_Model):
    """The question the indicator reads, and which of its answers count as feeling safe.

    ``excluded`` answers (don't know) leave the denominator; every other answer stays in it, so
    "never walks alone after dark" counts as not feeling safe (docs/surveys.md says why).
    """

    question: str = "safe_after_dark"
    safe: list[str] = Field(default_factory=lambda: ["very_safe", "fairly_safe"], min_length=1)
    excluded: list[str] = Field(default_factory=lambda: ["dont_know"])
    min_n: int = Field(default=10, ge=1)


class SurveyDef(_Model):
    """One survey (``flows/surveys/<id>.yaml``)."""

    id: str = Field(pattern=r"^[a-z0-9_]{1,60}$")
    flow: str
    schedule: Schedule | None = None  # None: only `citoyen survey run`
    audience: Audience = Field(default_factory=Audience)
    channels: list[Literal["sms", "telegram", "voice"]] = Field(min_length=1)
    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    reminder: Reminder | None = None
    expiry: Duration = "3d"
    frequency_cap: FrequencyCap | None = None
    voice: Voice = Field(default_factory=Voice)
    indicator: Indicator = Field(default_factory=Indicator)

    @field_validator("channels")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a channel is listed twice")
        return value

    @property
    def expiry_delta(self) -> timedelta:
        return timedelta(seconds=duration_seconds(self.expiry))

    @property
    def skip_delta(self) -> timedelta:
        return timedelta(seconds=duration_seconds(self.audience.skip_surveyed_within))

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.schedule.timezone if self.schedule else TIMEZONE)

    @property
    def quiet_spec(self) -> str:
        """The quiet hours as this survey's outbox rows carry them (``outbox.quiet_hours``),
        so that the dispatcher holds them outside the window without reading this definition."""
        return spec(self.quiet_hours.window(), self.timezone)


@dataclass(frozen=True)
class Surveys:
    """The valid definitions by id, and every problem found (warnings included)."""

    surveys: dict[str, SurveyDef]
    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]


class SurveyConfigError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems if p.level == "error"))


def load_surveys(
    flows_dir: Path,
    bundle: Any | None = None,
    areas: Any | None = None,
) -> Surveys:
    """Read and check every ``flows/surveys/*.yaml``; never raises.

    With a ``bundle`` (validated flows and settings), the flow, its indicator question and answer
    keys, and the languages are checked against it; with ``areas`` (an AreaTree, or anything
    answering ``code in areas``), the audience's area codes too.
    """
    folder = Path(flows_dir) / SURVEYS_DIR
    surveys: dict[str, SurveyDef] = {}
    problems: list[Problem] = []
    if not folder.is_dir():
        return Surveys(surveys, problems)
    for path in sorted(folder.glob("*.yaml")):
        file = f"{Path(flows_dir).name}/{SURVEYS_DIR}/{path.name}"
        try:
            source = _Source(file, read_yaml(path))
        except YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            problems.append(
                Problem("error", file, yaml_error_line(exc), None, f"bad YAML: {problem}")
            )
            continue
        if not isinstance(source.tree, dict):
            problems.append(Problem("error", file, 1, None, "a survey file must be a mapping"))
            continue
        try:
            survey = SurveyDef.model_validate(plain(source.tree))
        except ValidationError as exc:
            problems += _pydantic_problems(exc, source)
            continue
        found = _check(survey, source, bundle, areas)
        problems += found
        if survey.id != path.stem:
            problems.append(
                Problem(
                    "error",
                    file,
                    source.line("id"),
                    None,
                    f"id '{survey.id}' must be the file name '{path.stem}'",
                )
            )
            continue
        if not any(p.level == "error" for p in found):
            surveys[survey.id] = survey
    problems.sort(key=lambda p: (p.file, p.line or 0, p.level, p.message))
    return Surveys(surveys, problems)


def _check(
    survey: SurveyDef, source: _Source, bundle: Any | None, areas: Any | None
) -> list[Problem]:
    problems: list[Problem] = []

    def err(message: str, *path: Any) -> None:
        problems.append(Problem("error", source.file, source.line(*path), None, message))

    if bundle is not None:
        flow = bundle.flows.get(survey.flow)
        if flow is None:
            err(f"unknown flow '{survey.flow}' (flows: {', '.join(sorted(bundle.flows))})", "flow")
        else:
            _check_indicator(survey, flow, err)
        enabled = list(bundle.settings.languages.enabled)
        for i, lang in enumerate(survey.audience.languages):
            if lang not in enabled:
                err(
                    f"unknown language '{lang}' (enabled: {', '.join(enabled)})",
                    "audience",
                    "languages",
                    i,
                )
    if areas is not None:
        for i, code in enumerate(survey.audience.areas):
            if code not in areas:
                err(f"unknown area code '{code}'", "audience", "areas", i)
    if (
        survey.reminder is not None
        and duration_seconds(survey.reminder.after) >= survey.expiry_delta.total_seconds()
    ):
        err("the reminder must come before the survey expires", "reminder", "after")
    return problems


def _check_indicator(survey: SurveyDef, flow: Any, err: Any) -> None:
    ind = survey.indicator
    nodes = [n for n in flow.nodes.values() if isinstance(n, ChoiceNode) and n.save == ind.question]
    if not nodes:
        err(f"flow '{flow.id}' saves no choice answer '{ind.question}'", "indicator", "question")
        return
    keys = {o.key for node in nodes for o in node.options}
    for field in ("safe", "excluded"):
        for i, key in enumerate(getattr(ind, field)):
            if key not in keys:
                err(
                    f"'{key}' is not an answer of '{ind.question}' (answers: {', '.join(sorted(keys))})",
                    "indicator",
                    field,
                    i,
                )


def load_or_raise(
    flows_dir: Path, bundle: Any | None = None, areas: Any | None = None
) -> dict[str, SurveyDef]:
    """The definitions, or :class:`SurveyConfigError` naming every error."""
    result = load_surveys(flows_dir, bundle, areas)
    if result.errors:
        raise SurveyConfigError(result.problems)
    return result.surveys
