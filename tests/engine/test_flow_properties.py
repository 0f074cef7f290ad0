"""Property tests: no input sequence can break a conversation, in any flow that ships.

Runs on the fixture flows and on every flow of the repository's ``flows/`` directory. If that
directory exists but does not load, the test fails rather than skipping: a broken flow must never
reach a citizen.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citoyen.engine import Bundle, Context, Flow, Input, State, StepResult, load_bundle, start, step
from citoyen.engine.engine import language_of
from citoyen.engine.refcodes import damm_digit
from tests.engine.support import AREAS, REPO, ROOTS, VALID

QUESTION_KINDS = {"choice", "language", "place", "number", "text", "reference", "phone"}
OTHER_SCRIPTS = ["ߒߞߏ", "مرحبا", "中文", "👍🏾", "🙂🙂", "\u0000", " \n\t ", "Ɛ", "ŋɲɔ", "١٢", "½"]


def _cases() -> list[tuple[str, str]]:
    """(deployment, flow id) for the fixture and for the repository's flows, when present."""
    cases = [("fixture", "demo"), ("fixture", "survey")]
    repo_flows = REPO / "flows"
    if repo_flows.is_dir():
        stems = sorted(p.stem for p in repo_flows.glob("*.yaml"))
        cases += [("repository", stem) for stem in stems]
    return cases


@cache
def _bundle(deployment: str) -> Bundle:
    root = VALID if deployment == "fixture" else REPO
    return load_bundle(root / "flows", root / "locales")


def test_repository_flows_load_when_present() -> None:
    """The shipped flows/ and locales/ must load (the property test covers them next)."""
    if not (REPO / "flows").is_dir():
        assert _cases()[-1][0] == "fixture"
        return
    bundle = _bundle("repository")  # raises FlowError with every problem if broken
    assert sorted(bundle.flows) == sorted(stem for dep, stem in _cases() if dep == "repository")


def _vocabulary(bundle: Bundle) -> dict[str, list[str]]:
    keywords = [w for words in bundle.settings.keyword_map().values() for w in words]
    option_keys = ["more", "unknown", *bundle.settings.languages.enabled]
    for flow in bundle.flows.values():
        for node in flow.nodes.values():
            option_keys += [o.key for o in getattr(node, "options", [])]
            for trigger in flow.triggers:
                keywords += trigger.keyword or []
    return {"keywords": keywords, "keys": option_keys}


def _inputs(bundle: Bundle) -> st.SearchStrategy[Input]:
    vocab = _vocabulary(bundle)
    codes = sorted(AREAS)
    text = st.one_of(
        st.text(max_size=30),
        st.sampled_from(["", " ", *OTHER_SCRIPTS]),
        st.sampled_from(["a", "é", "ɛ", "9", "🙂", "ߒ"]).map(lambda c: c * 2000),
        st.sampled_from(vocab["keywords"]).map(lambda w: st_case(w)),
        st.sampled_from(vocab["keys"]),
        st.integers(-5, 130).map(str),
        st.sampled_from([c for c in codes]),
    )
    return st.one_of(
        st.builds(Input, st.just("text"), text),
        st.builds(Input, st.just("digits"), st.from_regex(r"[0-9*#]{0,4}", fullmatch=True)),
        st.builds(Input, st.just("digits"), st.integers(0, 12).map(str)),
        # Well-formed reference codes (check digit right) and near misses.
        st.builds(
            Input,
            st.just("digits"),
            st.from_regex(r"[0-9]{6}", fullmatch=True).map(
                lambda body: body + str(damm_digit(body))
            ),
        ),
        st.builds(Input, st.just("digits"), st.from_regex(r"[0-9]{7}", fullmatch=True)),
        st.builds(Input, st.just("choice"), st.one_of(st.sampled_from(vocab["keys"]), text)),
        st.builds(Input, st.just("location"), st.sampled_from([*codes, "ZZ9", "", " R1"])),
        st.builds(Input, st.just("recording"), st.one_of(st.just(""), st.text(max_size=40))),
        # A shared contact: the number encrypted (any text here), or someone else's (None).
        st.builds(Input, st.just("contact"), st.one_of(st.none(), st.text(max_size=40))),
        st.just(Input("timeout")),
        st.just(Input("start")),
        st.builds(
            Input,
            st.sampled_from(["text", "digits", "choice", "location", "recording"]),
            st.none(),
        ),
    )


def st_case(word: str) -> str:
    """Keywords as people type them: lower case with spaces around."""
    return f"  {word.lower()} "


def _contexts(bundle: Bundle) -> st.SearchStrategy[Context]:
    langs = tuple(bundle.settings.languages.enabled)
    base = Context(
        languages=langs,
        default_language=bundle.settings.languages.default,
        keywords=bundle.settings.keyword_map(),
        areas=AREAS,
        area_roots=ROOTS,
    )
    return st.builds(
        lambda size, lang, channel, areas: replace(
            base,
            menu_size=size,
            contact_language=lang,
            channel=channel,
            **({} if areas else {"areas": {}, "area_roots": ()}),
        ),
        st.sampled_from([1, 3, 4, 9]),
        st.sampled_from([None, *langs, "wo"]),
        st.sampled_from(["sms", "voice", "telegram"]),
        st.booleans(),
    )


def _check(bundle: Bundle, flow: Flow, ctx: Context, result: StepResult) -> None:
    state = result.state
    assert state.status in ("waiting", "completed", "interrupted")
    assert state.node in flow.nodes
    assert State.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    lang = language_of(state, ctx)
    for prompt in result.prompts:
        params = {**bundle.settings.emergency_numbers, "reference": "X", **prompt.params}
        if prompt.text is not None:
            assert isinstance(bundle.catalog.render(prompt.text, lang, params), str)
        if prompt.kind == "phone":
            assert isinstance(bundle.catalog.render(prompt.expects["button"], lang, params), str)
        for option in prompt.options:
            assert (option.text is None) != (option.label is None)
            if option.text is not None:
                bundle.catalog.render(option.text, option.lang or lang, {"n": 1})
        assert len(prompt.options) <= max(9, ctx.menu_size)
        assert len({o.key for o in prompt.options}) == len(prompt.options)
    if state.status == "waiting":
        assert result.prompts, "a waiting conversation must have asked something"
        assert result.prompts[-1].kind in QUESTION_KINDS
    if state.status == "interrupted":
        assert result.prompts[-1].kind == "end"


@pytest.mark.parametrize(("deployment", "flow_id"), _cases())
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_no_input_sequence_breaks_a_conversation(
    deployment: str, flow_id: str, data: st.DataObject
) -> None:
    bundle = _bundle(deployment)
    flow = bundle.flows[flow_id]
    ctx = data.draw(_contexts(bundle), label="context")
    language = data.draw(st.sampled_from([None, *ctx.languages]), label="language")
    result = start(flow, ctx, language=language)
    _check(bundle, flow, ctx, result)
    for inp in data.draw(st.lists(_inputs(bundle), max_size=50), label="inputs"):
        before = result.state
        result = step(flow, before, inp, ctx)
        if before.status != "waiting":
            assert result.state == before
            assert (result.prompts, result.effects) == ([], [])
            result = start(flow, ctx)  # the caller starts a new conversation
        _check(bundle, flow, ctx, result)
