"""WhatsApp message templates: what may be sent outside the 24-hour customer-service window.

WhatsApp lets a business write free-form only within 24 hours of the citizen's last message.
Outside it, only templates approved by WhatsApp may be sent; with Twilio they are Content API
templates, sent as a ``ContentSid`` (``HX`` + 32 hex digits) and ``ContentVariables``. A
deployment creates and gets them approved in the Twilio console, then lists them per purpose and
language in ``config/whatsapp/templates.yaml``:

```yaml
templates:
  status:          # status notices of a report (acknowledged, resolved...)
    fr: {content_sid: HX0123..., variables: {"1": reference, "2": body}}
  staff_reply:     # a moderator's reply to the reporter
    fr: {content_sid: HX4567...}          # variables default to {"1": body}
  survey:          # survey invitations
    bm: {content_sid: HX89ab...}
```

A variable is filled with ``body`` (the message as it would have been sent free-form, in the
citizen's language) or ``reference`` (the report's reference). ``citoyen flows check`` reads the
file: a malformed one is an error; a purpose or enabled language without a template is a
warning, because such messages outside the window are held (channels/whatsapp.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAMLError

from citoyen.engine import Problem
from citoyen.engine.layout import WHATSAPP_TEMPLATES_FILE, Layout
from citoyen.i18n import read_yaml, yaml_error_line

PURPOSES = ("status", "staff_reply", "survey")


class Template(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content_sid: str = Field(pattern=r"^HX[0-9a-fA-F]{32}$")
    variables: dict[str, Literal["body", "reference"]] = Field(
        default_factory=lambda: {"1": "body"}
    )


class TemplateFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    templates: dict[Literal["status", "staff_reply", "survey"], dict[str, Template]] = Field(
        default_factory=dict
    )


@dataclass
class Templates:
    """The deployment's templates, by purpose then language; ``problems`` found reading them."""

    by_purpose: dict[str, dict[str, Template]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def get(self, purpose: str, language: str) -> Template | None:
        return self.by_purpose.get(purpose, {}).get(language)


def load_templates(
    flows_dir: Path,
    languages: tuple[str, ...] = (),
    *,
    whatsapp_on: bool = False,
    config_dir: Path | None = None,
) -> Templates:
    """Read ``config/whatsapp/templates.yaml`` (absent: no templates); never raises. Missing
    templates are warned about when WhatsApp is configured or the file exists. ``config_dir``:
    None is ``config/`` beside the flows folder (engine/layout.py)."""
    found = Layout.of(flows_dir, config_dir).config_file(WHATSAPP_TEMPLATES_FILE)
    path, name, layout = found.path, found.file, list(found.problems)
    if not path.is_file():
        return Templates(problems=_missing(name, {}, languages) if whatsapp_on else [])
    try:
        data = read_yaml(path) or {}
    except YAMLError as exc:
        line = yaml_error_line(exc)
        return Templates(problems=[*layout, Problem("error", name, line, None, "bad YAML")])
    try:
        parsed = TemplateFile.model_validate(data)
    except ValidationError as exc:
        return Templates(
            problems=layout
            + [
                Problem(
                    "error",
                    name,
                    None,
                    None,
                    f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}",
                )
                for err in exc.errors()
            ]
        )
    templates = {purpose: dict(by_lang) for purpose, by_lang in parsed.templates.items()}
    problems = [
        Problem("error", name, None, None, f"{purpose}: '{lang}' is not an enabled language")
        for purpose, by_lang in templates.items()
        for lang in by_lang
        if languages and lang not in languages
    ]
    return Templates(templates, layout + problems + _missing(name, templates, languages))


def _missing(
    name: str, templates: dict[str, dict[str, Template]], languages: tuple[str, ...]
) -> list[Problem]:
    return [
        Problem(
            "warning",
            name,
            None,
            None,
            f"no WhatsApp template for {purpose} in '{lang}': such messages to WhatsApp "
            "reporters outside the 24-hour window are held",
        )
        for purpose in PURPOSES
        for lang in languages
        if lang not in templates.get(purpose, {})
    ]
