"""The flow engine: flow schema, loader/validator and the pure conversation engine.

Services import from here; this package imports neither services nor models (layers point
inward), so it can be tested, and reasoned about, on its own.
"""

from citoyen.engine.engine import language_of, match_option, start, step
from citoyen.engine.loader import Bundle, FlowError, Problem, check, load_bundle
from citoyen.engine.schema import Flow, Settings
from citoyen.engine.types import (
    AreaNode,
    Context,
    Effect,
    Input,
    Option,
    Prompt,
    State,
    StepResult,
)

__all__ = [
    "AreaNode",
    "Bundle",
    "Context",
    "Effect",
    "Flow",
    "FlowError",
    "Input",
    "Option",
    "Problem",
    "Prompt",
    "Settings",
    "State",
    "StepResult",
    "check",
    "language_of",
    "load_bundle",
    "match_option",
    "start",
    "step",
]
