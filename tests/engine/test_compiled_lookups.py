"""Lookups computed once (flow options, keyword index) and cheaper copies give the old results.

Each test states the former per-step computation next to the cached one, for the fixture flows
and the shipped ones, and for a changed input.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from citoyen.engine import Bundle, Context, Flow, Input, Option, State, load_bundle, step
from citoyen.engine.schema import ChoiceNode
from citoyen.engine.textnorm import find_keyword, normalise
from citoyen.engine.types import deep_copy
from tests.engine.support import REPO, VALID


@pytest.fixture(scope="module", params=["fixture", "repository"])
def any_bundle(request: pytest.FixtureRequest) -> Bundle:
    root = VALID if request.param == "fixture" else REPO
    return load_bundle(root / "flows", root / "locales")


def test_choice_options_are_computed_once_and_equal_the_old_ones(any_bundle: Bundle) -> None:
    choices = [
        node
        for flow in any_bundle.flows.values()
        for node in flow.nodes.values()
        if isinstance(node, ChoiceNode)
    ]
    assert choices
    for node in choices:
        assert list(node.option_keys) == [o.key for o in node.options]
        assert node.prompt_options == tuple(Option(key=o.key, text=o.text) for o in node.options)
        assert node.option_keys is node.option_keys
        assert node.prompt_options is node.prompt_options


def test_cached_lookups_leave_a_flow_equal_and_its_version(any_bundle: Bundle) -> None:
    for flow in any_bundle.flows.values():
        for node in flow.nodes.values():
            if isinstance(node, ChoiceNode):
                assert node.option_keys and node.prompt_options
        again = Flow.from_definition(flow.to_definition())
        assert again == flow
        assert again.version == flow.version


def _old_find_keyword(text: str, keywords: dict[str, tuple[str, ...]]) -> str | None:
    folded = normalise(text)
    if not folded:
        return None
    for name, words in keywords.items():
        if any(normalise(word) == folded for word in words):
            return name
    return None


def _texts(keywords: dict[str, tuple[str, ...]]) -> list[str]:
    words = [w for ws in keywords.values() for w in ws]
    variants = [v for w in words for v in (w, w.lower(), w.upper(), f"  {w} ", w + "x")]
    return [*variants, "", "   ", "bonjour", "1", "ɛ", "STOP STOP"]


def test_keyword_index_equals_the_linear_scan(any_bundle: Bundle) -> None:
    keywords = any_bundle.settings.keyword_map()
    assert keywords
    for text in _texts(keywords):
        assert find_keyword(text, keywords) == _old_find_keyword(text, keywords), text


def test_keyword_index_follows_changed_lists() -> None:
    first = {"stop": ("STOP", "ARRÊT"), "help": ("AIDE",)}
    changed = {"help": ("AIDE", "arret"), "stop": ("STOP",)}  # a word moves, order changes
    both = {"help": ("STOP",), "stop": ("STOP",)}  # a word in two lists: the first list wins
    for keywords in (first, changed, both, {}):
        for text in [*_texts(keywords), "arret", "Arrêt"]:
            assert find_keyword(text, keywords) == _old_find_keyword(text, keywords), text
    assert find_keyword("arret", first) == "stop"
    assert find_keyword("arret", changed) == "help"
    assert find_keyword("stop", both) == "help"
    assert find_keyword("ARRET", {"stop": ["ARRÊT"]}) == "stop"  # lists, not only tuples


def test_deep_copy_equals_copy_deepcopy_and_shares_nothing() -> None:
    value = {
        "a": 1,
        "b": [1, {"c": "d"}, [2.5, None, True]],
        "recording": {"recording": "https://example.org/r.wav"},
        "pair": (1, [2]),
        "set": {1, 2},
    }
    copied = deep_copy(value)
    assert copied == copy.deepcopy(value)
    assert type(copied["pair"]) is tuple  # types are kept, unlike State.to_dict
    copied["b"][1]["c"] = "changed"
    copied["b"][2].append(0)
    copied["pair"][1].append(3)
    copied["set"].add(3)
    assert value["b"] == [1, {"c": "d"}, [2.5, None, True]]
    assert value["pair"] == (1, [2]) and value["set"] == {1, 2}


def test_to_dict_is_still_a_deep_json_copy() -> None:
    state = State(
        "f", "v", "n", answers={"r": {"recording": "u"}, "t": (1, 2)}, scratch={"path": ["A"]}
    )
    data = state.to_dict()
    assert data["answers"] == {"r": {"recording": "u"}, "t": [1, 2]}
    data["answers"]["r"]["recording"] = "x"
    data["scratch"]["path"].append("B")
    assert state.answers["r"] == {"recording": "u"} and state.scratch["path"] == ["A"]


def test_steps_never_mutate_a_state_through_shared_values(bundle: Bundle, known: Context) -> None:
    """``step`` copies a state shallowly: nested values it shares must never change.

    The riskiest path: the language keyword inside a place menu saves the menu's scratch and puts
    it back after the language answer, then the menu goes on from there.
    """
    demo = bundle.flows["demo"]
    states = []
    result = step(
        demo, State(demo.id, demo.version, "category", "waiting"), Input("text", "1"), known
    )
    for text in ["1", "langue", "1", "1", "x", "kan", "2", "1", "1", "1", "2"]:
        states.append((result.state, copy.deepcopy(result.state.to_dict())))
        result = step(demo, result.state, Input("text", text), known)
        for earlier, snapshot in states:
            assert earlier.to_dict() == snapshot
    assert result.state.answers["place"] == "K111"
    # Stepping an old state again gives the same result as the first time.
    old, _ = states[3]
    assert step(demo, old, Input("text", "1"), known) == step(
        demo, replace(old, scratch=copy.deepcopy(old.scratch)), Input("text", "1"), known
    )
