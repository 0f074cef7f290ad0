"""The `reference` node and the `lookup_report` action (following a report by its code)."""

from __future__ import annotations

from citoyen.engine import start, step
from citoyen.engine.refcodes import damm_digit, parse_reference
from citoyen.engine.schema import Flow
from citoyen.engine.types import Context, Effect, Input

FLOW = Flow.model_validate(
    {
        "id": "follow",
        "start": "ask",
        "nodes": {
            "ask": {"type": "reference", "text": "t.ask", "save": "reference", "next": "look"},
            "look": {
                "type": "action",
                "do": [{"lookup_report": {"answer": "reference"}}],
                "next": "tell",
            },
            "tell": {"type": "end", "text": "t.status"},
        },
    }
)
CTX = Context(languages=("fr",), default_language="fr")


def _valid_code() -> str:
    body = "482193"
    return body + str(damm_digit(body))


def test_reference_prompt_expects_seven_digits() -> None:
    result = start(FLOW, CTX)
    assert result.waiting
    assert result.prompts[-1].kind == "reference"
    assert result.prompts[-1].expects == {"digits": 7}


def test_valid_code_is_saved_canonically_and_looked_up() -> None:
    code = _valid_code()
    state = start(FLOW, CTX).state
    result = step(FLOW, state, Input("digits", code), CTX)
    canonical = f"{code[:3]}-{code[3:]}"
    assert result.state.answers["reference"] == canonical
    assert result.effects == [Effect("lookup_report", {"reference": canonical})]
    assert result.state.status == "completed"
    assert result.prompts[-1].text == "t.status"


def test_typed_with_dash_or_spaces_is_accepted() -> None:
    code = _valid_code()
    state = start(FLOW, CTX).state
    result = step(FLOW, state, Input("text", f" {code[:3]} - {code[3:]} "), CTX)
    assert result.state.status == "completed"


def test_wrong_check_digit_is_refused_and_asked_again() -> None:
    code = _valid_code()
    wrong = code[:-1] + str((int(code[-1]) + 1) % 10)
    assert parse_reference(wrong) is None
    state = start(FLOW, CTX).state
    result = step(FLOW, state, Input("digits", wrong), CTX)
    assert result.waiting
    assert [p.text for p in result.prompts] == ["system.invalid_reference", "t.ask"]
    assert result.effects == []


def test_too_long_input_is_refused_without_error() -> None:
    state = start(FLOW, CTX).state
    result = step(FLOW, state, Input("text", "4" * 5000), CTX)
    assert result.waiting and result.state.retries == 1
