"""The `phone` node: the citizen's own number, shared by the channel (Telegram's "call me"
button), for `request_callback: {phone: ...}`; a typed number or someone else's is refused."""

from __future__ import annotations

from citoyen.engine import start, step
from citoyen.engine.schema import Flow
from citoyen.engine.types import Context, Effect, Input

FLOW = Flow.model_validate(
    {
        "id": "callme",
        "start": "ask",
        "nodes": {
            "ask": {"type": "phone", "save": "phone", "next": "call"},
            "call": {
                "type": "action",
                "do": [{"request_callback": {"phone": "phone"}}],
                "next": "told",
            },
            "told": {"type": "end", "text": "callme.told"},
        },
    }
)
CTX = Context(
    languages=("fr",), default_language="fr", keywords={"help": ("AIDE",)}, channel="telegram"
)
TOKEN = "gAAAAA-the-number-encrypted-by-the-channel"


def test_texts_follow_from_the_flow_and_node() -> None:
    ask = FLOW.nodes["ask"]
    assert (ask.text, ask.button, ask.invalid) == (
        "callme.ask",
        "callme.ask.button",
        "callme.ask.invalid",
    )


def test_the_question_carries_its_button() -> None:
    result = start(FLOW, CTX)
    assert result.waiting
    [prompt] = result.prompts
    assert (prompt.kind, prompt.text, prompt.expects) == (
        "phone",
        "callme.ask",
        {"button": "callme.ask.button"},
    )


def test_the_shared_number_goes_to_the_request() -> None:
    result = step(FLOW, start(FLOW, CTX).state, Input("contact", TOKEN), CTX)
    assert result.state.status == "completed"
    assert result.state.answers["phone"] == TOKEN
    assert result.effects == [Effect("request_callback", {"phone": TOKEN})]
    assert [p.text for p in result.prompts] == ["callme.told"]


def test_a_typed_number_or_someone_elses_is_refused_and_asked_again() -> None:
    state = start(FLOW, CTX).state
    for inp in (Input("text", "76 00 00 01"), Input("contact")):
        result = step(FLOW, state, inp, CTX)
        assert result.waiting, inp
        assert [(p.kind, p.text) for p in result.prompts] == [
            ("message", "callme.ask.invalid"),
            ("phone", "callme.ask"),
        ]
        assert result.effects == []
        state = result.state
    assert state.retries == 2  # wrong answers count: the third ends the conversation
    assert step(FLOW, state, Input("location", "R1"), CTX).state.status == "interrupted"


def test_keywords_still_work_at_the_question() -> None:
    result = step(FLOW, start(FLOW, CTX).state, Input("text", "aide"), CTX)
    assert [p.text for p in result.prompts] == ["system.help", "callme.ask"]
    assert result.state.retries == 0


def test_a_number_nobody_asked_for_is_not_kept() -> None:
    flow = Flow.model_validate(
        {
            "id": "demo",
            "start": "q",
            "nodes": {
                "q": {"type": "text", "save": "what", "next": "end"},
                "end": {"type": "end"},
            },
        }
    )
    result = step(flow, start(flow, CTX).state, Input("contact", TOKEN), CTX)
    assert result.waiting and result.state.retries == 0
    assert [p.text for p in result.prompts] == ["system.help", "demo.q"]
    assert TOKEN not in str(result.state.to_dict())


def test_without_a_phone_answer_the_request_is_the_senders() -> None:
    flow = Flow.model_validate(
        {
            "id": "callme",
            "start": "call",
            "nodes": {
                "call": {"type": "action", "do": [{"request_callback": None}], "next": "told"},
                "told": {"type": "end", "text": "callme.told"},
            },
        }
    )
    assert start(flow, CTX).effects == [Effect("request_callback", {})]
