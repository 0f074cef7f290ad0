"""The pure engine, driven through the valid fixture flows like a citizen would.

Inputs are written as short strings: ``"3"`` is an SMS text, ``"#3"`` keypad digits,
``"=theft"`` a Telegram button (choice), ``"@K112"`` a location, ``"~url"`` a recording and
``"…"`` a timeout.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from citoyen.engine import Context, Flow, Input, State, StepResult, language_of, start, step
from citoyen.engine.engine import match_option


def inp(text: str) -> Input:
    kinds = {"#": "digits", "=": "choice", "@": "location", "~": "recording"}
    if text == "…":
        return Input("timeout")
    if text[:1] in kinds:
        return Input(kinds[text[0]], text[1:])  # type: ignore[arg-type]
    return Input("text", text)


def run(flow: Flow, ctx: Context, *inputs: str, language: str | None = None) -> StepResult:
    result = start(flow, ctx, language=language)
    for text in inputs:
        result = step(flow, result.state, inp(text), ctx)
    return result


def texts(result: StepResult) -> list[str | None]:
    return [p.text for p in result.prompts]


def keys(result: StepResult) -> list[str]:
    return [o.key for o in result.prompts[-1].options]


@pytest.fixture
def demo(bundle: Any) -> Flow:
    return bundle.flows["demo"]


@pytest.fixture
def survey(bundle: Any) -> Flow:
    return bundle.flows["survey"]


# -- language --------------------------------------------------------------------------------


def test_start_asks_language_when_unknown(demo: Flow, ctx: Context) -> None:
    result = start(demo, ctx)
    assert result.state.status == "waiting"
    assert result.state.node == "ask_language"
    assert result.state.language is None
    (prompt,) = result.prompts
    assert (prompt.kind, prompt.text) == ("language", "system.language_prompt")
    assert [(o.key, o.text, o.lang) for o in prompt.options] == [
        ("fr", "system.language_option", "fr"),
        ("bm", "system.language_option", "bm"),
    ]
    assert language_of(result.state, ctx) == "fr"


def test_language_answer_sets_language_and_continues(demo: Flow, ctx: Context) -> None:
    result = run(demo, ctx, "2")
    assert result.state.language == "bm"
    assert result.state.answers == {"language": "bm"}
    assert [(e.kind, e.data) for e in result.effects] == [("set_language", {"language": "bm"})]
    assert texts(result) == ["demo.welcome", "demo.category"]
    assert result.prompts[0].kind == "message"
    assert result.prompts[1].kind == "choice"
    assert run(demo, ctx, "=fr").state.language == "fr"
    assert run(demo, ctx, "BM").state.language == "bm"


def test_known_language_skips_the_menu(demo: Flow, known: Context) -> None:
    result = start(demo, known)
    assert result.state.language == "fr"
    assert result.state.answers == {"language": "fr"}
    assert result.effects == []
    assert texts(result) == ["demo.welcome", "demo.category"]


def test_explicit_language_counts_as_known_but_not_a_disabled_one(demo: Flow, ctx: Context) -> None:
    assert start(demo, ctx, language="bm").state.node == "category"
    assert start(demo, ctx, language="wo").state.node == "ask_language"
    assert start(demo, replace(ctx, contact_language="wo")).state.node == "ask_language"


def test_language_node_without_skip_always_asks(survey: Flow, known: Context) -> None:
    result = start(survey, known)
    assert result.state.node == "lang"
    assert result.prompts[0].kind == "language"


# -- choices -------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["1", "#1", " 1 ", "1.", "=theft", "theft", "THEFT", " Theft "])
def test_choice_by_number_or_key(demo: Flow, known: Context, answer: str) -> None:
    result = run(demo, known, answer)
    assert result.state.answers["category"] == "theft"
    assert result.state.node == "place"


def test_option_next_overrides_node_next(demo: Flow, known: Context) -> None:
    result = run(demo, known, "3")
    assert result.state.answers["category"] == "other"
    assert result.state.node == "age"


@pytest.mark.parametrize("answer", ["0", "4", "12", "vol", "", "=nope", "@R1", "~rec", "🙂"])
def test_invalid_choice_reasks(demo: Flow, known: Context, answer: str) -> None:
    result = run(demo, known, answer)
    assert result.state.node == "category"
    assert result.state.retries == 1
    assert texts(result) == ["system.invalid_choice", "demo.category"]
    assert result.state.status == "waiting"


def test_max_retries_ends_politely(demo: Flow, known: Context) -> None:
    result = run(demo, known, "x", "y")
    assert result.state.retries == 2
    result = step(demo, result.state, inp("z"), known)
    assert result.state.status == "interrupted"
    assert [(p.kind, p.text) for p in result.prompts] == [("end", "system.goodbye")]


def test_retries_reset_on_the_next_question(demo: Flow, known: Context) -> None:
    result = run(demo, known, "x", "x", "3")
    assert result.state.node == "age"
    assert result.state.retries == 0


def test_match_option_helper() -> None:
    assert match_option(["yes", "no"], Input("digits", "2")) == 1
    assert match_option(["yes", "no"], Input("text", "NO")) == 1
    assert match_option(["yes", "no"], Input("choice", "2")) is None
    assert match_option(["yes", "no"], Input("text", "9" * 2000)) is None
    assert match_option(["yes", "no"], Input("recording", "yes")) is None


# -- timeouts ------------------------------------------------------------------------------


def test_timeout_asks_again_once_then_ends(demo: Flow, known: Context) -> None:
    result = run(demo, known, "…")
    assert texts(result) == ["system.no_answer", "demo.category"]
    assert result.state.status == "waiting"
    assert result.state.retries == 0
    result = step(demo, result.state, inp("…"), known)
    assert result.state.status == "interrupted"
    assert texts(result) == ["system.goodbye"]


def test_timeouts_must_be_consecutive(demo: Flow, known: Context) -> None:
    result = run(demo, known, "…", "x", "…")
    assert result.state.status == "waiting"
    assert result.state.node == "category"


# -- places --------------------------------------------------------------------------------


def test_place_region_cercle_commune(demo: Flow, known: Context) -> None:
    result = run(demo, known, "1")
    assert texts(result) == ["demo.place", "system.place_region"]
    menu = result.prompts[-1]
    assert menu.kind == "place"
    assert [(o.key, o.label) for o in menu.options] == [
        ("R1", "Kayes"),
        ("BKO", "Bamako"),
        ("R2", "Mopti"),
        ("R3", "Taoudénit"),
    ]
    result = step(demo, result.state, inp("1"), known)
    assert texts(result) == ["system.place_cercle"]
    assert keys(result) == ["C11", "C12", "unknown"]
    assert result.prompts[-1].options[-1].text == "system.place_unknown"
    result = step(demo, result.state, inp("#2"), known)
    assert texts(result) == ["system.place_commune"]
    assert keys(result) == ["K121", "unknown"]
    assert result.state.scratch["path"] == ["R1", "C12"]
    result = step(demo, result.state, inp("1"), known)
    assert result.state.answers["place"] == "K121"
    assert result.state.node == "danger"
    assert result.state.scratch == {}


def test_bamako_goes_to_communes_and_never_to_quartiers(demo: Flow, known: Context) -> None:
    result = run(demo, known, "1", "2")
    assert texts(result) == ["system.place_commune"]
    assert keys(result) == ["B1", "B2", "B3", "B4", "B5", "B6", "unknown"]
    result = step(demo, result.state, inp("3"), known)
    assert result.state.answers["place"] == "B3"
    assert result.state.node == "danger"


def test_region_without_children_is_saved(demo: Flow, known: Context) -> None:
    result = run(demo, known, "1", "4")
    assert result.state.answers["place"] == "R3"


def test_unknown_saves_the_area_chosen_so_far(demo: Flow, known: Context) -> None:
    result = run(demo, known, "1", "1", "3")
    assert result.state.answers["place"] == "R1"
    result = run(demo, known, "1", "1", "=unknown")
    assert result.state.answers["place"] == "R1"


def test_paging_with_more(demo: Flow, known: Context) -> None:
    result = run(demo, known, "1", "3")  # Mopti: 11 cercles
    page1 = keys(result)
    assert len(page1) == 9
    assert page1 == [f"C2{i:02d}" for i in range(1, 8)] + ["more", "unknown"]
    assert result.prompts[-1].options[7].text == "system.more"
    result = step(demo, result.state, inp("8"), known)
    assert texts(result) == ["system.place_cercle"]
    assert keys(result) == [f"C2{i:02d}" for i in range(8, 12)] + ["more", "unknown"]
    assert result.state.retries == 0
    result = step(demo, result.state, inp("2"), known)  # Cercle 9
    assert result.state.scratch["path"] == ["R2", "C209"]
    assert keys(result) == ["K209", "unknown"]


def test_more_wraps_to_the_first_page(demo: Flow, known: Context) -> None:
    result = run(demo, known, "1", "3", "=more", "=more")
    assert keys(result)[0] == "C201"


def test_small_menus_page_the_top_level(demo: Flow, known: Context) -> None:
    small = replace(known, menu_size=3)
    result = run(demo, small, "1")
    assert keys(result) == ["R1", "BKO", "more"]
    result = step(demo, result.state, inp("3"), small)
    assert keys(result) == ["R2", "R3", "more"]
    result = step(demo, result.state, inp("1"), small)  # Mopti, below top: 1 entry per page
    assert keys(result) == ["C201", "more", "unknown"]


def test_place_by_name_or_location(demo: Flow, known: Context) -> None:
    assert run(demo, known, "1", "kayes", "nioro", "=K121").state.answers["place"] == "K121"
    assert run(demo, known, "1", "3", "cercle 10", "1").state.answers["place"] == "K210"
    assert run(demo, known, "1", "@K112").state.answers["place"] == "K112"
    result = run(demo, known, "1", "@ZZ9")
    assert texts(result) == ["system.invalid_choice", "system.place_region"]


def test_invalid_place_reasks_current_menu(demo: Flow, known: Context) -> None:
    result = run(demo, known, "1", "1", "7")
    assert texts(result) == ["system.invalid_choice", "system.place_cercle"]


def test_place_levels_cercle_stops_at_cercle_and_at_bamako(known: Context) -> None:
    flow = Flow.model_validate(
        {
            "id": "where",
            "start": "place",
            "nodes": {
                "place": {
                    "type": "place",
                    "text": "t",
                    "save": "p",
                    "levels": "cercle",
                    "next": "end",
                },
                "end": {"type": "end"},
            },
        }
    )
    assert run(flow, known, "1", "2").state.answers == {"p": "C12"}
    result = run(flow, known, "2")
    assert result.state.answers == {"p": "BKO"}
    assert result.state.status == "completed"


def test_place_without_area_data_is_skipped(demo: Flow, known: Context) -> None:
    empty = replace(known, areas={}, area_roots=())
    result = run(demo, empty, "1")
    assert result.state.node == "danger"
    assert "place" not in result.state.answers


# -- numbers, text, branches, actions, end ---------------------------------------------------


def test_number_question(demo: Flow, known: Context) -> None:
    result = run(demo, known, "3")
    prompt = result.prompts[-1]
    assert (prompt.kind, prompt.text, prompt.expects) == (
        "number",
        "demo.age",
        {"min": 15, "max": 120},
    )
    for bad in ("14", "121", "vingt", "-3", "9" * 2000):
        again = step(demo, result.state, inp(bad), known)
        assert texts(again) == ["system.invalid_number", "demo.age"]
        assert again.prompts[0].params == {"min": 15, "max": 120}
    assert step(demo, result.state, inp("#42"), known).state.answers["age"] == 42


def test_text_question_cuts_long_text(demo: Flow, known: Context) -> None:
    result = run(demo, known, "3", "30")
    prompt = result.prompts[-1]
    assert (prompt.kind, prompt.expects) == ("text", {"max_length": 20, "max_seconds": 60})
    long = step(demo, result.state, inp("  " + "a" * 30 + "  "), known)
    assert long.state.answers["description"] == "a" * 20
    assert long.prompts[0].text == "system.text_too_long"
    assert long.prompts[0].params == {"max_length": 20}
    short = step(demo, result.state, inp("#1234"), known)
    assert short.state.answers["description"] == "1234"
    assert texts(short) == ["demo.done"]
    rec = step(demo, result.state, inp("~https://api.twilio.com/rec/RE1"), known)
    assert rec.state.answers["description"] == {"recording": "https://api.twilio.com/rec/RE1"}
    for bad in ("", "   ", "=theft", "@R1"):
        again = step(demo, result.state, inp(bad), known)
        assert texts(again) == ["system.invalid_choice", "demo.describe"]


def test_full_report_emits_create_report(demo: Flow, known: Context) -> None:
    result = run(demo, known, "1", "1", "1", "1", "yes", "30", "Des voleurs")
    assert result.state.status == "completed"
    assert [(p.kind, p.text) for p in result.prompts] == [("end", "demo.done")]
    assert [e.kind for e in result.effects] == ["create_report", "save_answers", "set_consent"]
    report, saved, consent = result.effects
    assert report.data == {
        "category": "theft",
        "place": "K111",
        "description": "Des voleurs",
        "urgency": "emergency",
        "anonymous": None,
        "callback": None,
        "answers": {
            "language": "fr",
            "category": "theft",
            "place": "K111",
            "danger": "yes",
            "age": 30,
            "description": "Des voleurs",
        },
    }
    assert saved.data == {
        "flow_id": "demo",
        "flow_version": demo.version,
        "answers": {"age": 30, "category": "theft"},
    }
    assert consent.data == {"consent": True}


def test_branch_emergency_on_danger(demo: Flow, known: Context) -> None:
    result = run(demo, known, "1", "1", "1", "1", "1")
    assert texts(result) == ["demo.emergency", "demo.age"]
    result = run(demo, known, "1", "1", "1", "1", "2")
    assert texts(result) == ["demo.age"]


def test_branch_all_not_set(demo: Flow, known: Context) -> None:
    no_areas = replace(known, areas={}, area_roots=())
    result = run(demo, no_areas, "2", "no")  # fire, place skipped, not in danger
    assert texts(result) == ["demo.emergency", "demo.age"]
    result = run(demo, known, "2", "4", "no")  # fire with a place
    assert texts(result) == ["demo.age"]


def test_normal_urgency_when_not_in_danger(demo: Flow, known: Context) -> None:
    result = run(demo, known, "1", "4", "2", "30", "x")
    assert result.effects[0].data["urgency"] == "normal"


def test_survey_actions_and_language_branch(survey: Flow, ctx: Context) -> None:
    result = run(survey, ctx, "2", "1")
    assert result.state.status == "completed"
    assert result.prompts == []  # an end without text says nothing more
    assert [(e.kind, e.data) for e in result.effects] == [
        ("set_consent", {"consent": True}),
        ("set_language", {"language": "bm"}),
        (
            "save_answers",
            {
                "flow_id": "survey",
                "flow_version": survey.version,
                "answers": {"language": "bm", "consent": "yes"},
            },
        ),
        ("opt_in", {}),
        ("opt_out", {}),
    ]
    result = run(survey, ctx, "1", "no")
    assert ("set_consent", {"consent": False}) in [(e.kind, e.data) for e in result.effects]


# -- global keywords -----------------------------------------------------------------------


@pytest.mark.parametrize("word", ["STOP", "stop", " Stop ", "dabila", "A  DABILA"])
def test_stop_keyword(demo: Flow, known: Context, word: str) -> None:
    result = run(demo, known, "1", word)
    assert result.state.status == "completed"
    assert [(e.kind, e.data) for e in result.effects] == [("opt_out", {})]
    assert [(p.kind, p.text) for p in result.prompts] == [("end", "system.stopped")]


def test_start_keyword_opts_in_and_restarts(demo: Flow, known: Context) -> None:
    result = run(demo, known, "1", "Démarrer")
    assert [e.kind for e in result.effects] == ["opt_in"]
    assert texts(result) == ["system.started", "demo.welcome", "demo.category"]
    assert result.state.answers == {"language": "fr"}


@pytest.mark.parametrize("word", ["AIDE", "aide", "DƐMƐ", "DEME", "dèmè", "Dɛmɛ"])
def test_help_keyword_reasks_without_counting(demo: Flow, known: Context, word: str) -> None:
    result = run(demo, known, "x", word)
    assert texts(result) == ["system.help", "demo.category"]
    assert result.state.retries == 1


def test_help_in_a_place_menu_shows_the_current_menu(demo: Flow, known: Context) -> None:
    result = run(demo, known, "1", "1", "aide")
    assert texts(result) == ["system.help", "system.place_cercle"]
    assert result.state.scratch["path"] == ["R1"]


def test_menu_keyword_restarts_from_start(demo: Flow, known: Context) -> None:
    result = run(demo, known, "1", "1", "menu")
    assert result.state.node == "category"
    assert result.state.answers == {"language": "fr"}
    assert texts(result) == ["demo.welcome", "demo.category"]


def test_language_keyword_then_back_to_the_question(demo: Flow, known: Context) -> None:
    result = run(demo, known, "3", "langue")
    assert result.state.node == "age"
    assert result.prompts[-1].kind == "language"
    assert result.state.scratch["return"] == "age"
    result = step(demo, result.state, inp("2"), known)
    assert result.state.language == "bm"
    assert [(e.kind, e.data) for e in result.effects] == [("set_language", {"language": "bm"})]
    assert texts(result) == ["demo.age"]
    assert result.state.node == "age"
    assert result.state.scratch == {}
    assert step(demo, result.state, inp("40"), known).state.answers["age"] == 40


def test_language_keyword_menu_handles_invalid_and_timeout(demo: Flow, known: Context) -> None:
    result = run(demo, known, "1", "1", "kan", "7")
    assert texts(result) == ["system.invalid_choice", "system.language_prompt"]
    result = step(demo, result.state, inp("…"), known)
    assert texts(result) == ["system.no_answer", "system.language_prompt"]
    result = step(demo, result.state, inp("1"), known)
    # The place question again, where the citizen left it: the cercle menu of the chosen region.
    assert texts(result) == ["system.place_cercle"]


def test_keywords_only_on_text(demo: Flow, known: Context) -> None:
    result = run(demo, known, "=stop")
    assert result.state.status == "waiting"
    assert texts(result) == ["system.invalid_choice", "demo.category"]


def test_keyword_words_inside_a_message_are_not_keywords(demo: Flow, known: Context) -> None:
    result = run(demo, known, "3", "30", "stop the thieves")
    assert result.state.status == "completed"
    assert result.effects[0].kind == "create_report"


# -- finished and pinned states ------------------------------------------------------------


@pytest.mark.parametrize("status", ["completed", "interrupted", "expired"])
def test_finished_states_are_left_alone(demo: Flow, known: Context, status: str) -> None:
    state = State("demo", demo.version, "done", status=status)  # type: ignore[arg-type]
    for text in ("1", "STOP", "…", "menu"):
        result = step(demo, state, inp(text), known)
        assert result.state == state
        assert result.prompts == []
        assert result.effects == []


def test_other_version_or_node_expires(demo: Flow, known: Context) -> None:
    result = start(demo, known)
    for changed in (
        replace(result.state, flow_version="0" * 64),
        replace(result.state, node="gone"),
    ):
        after = step(demo, changed, inp("1"), known)
        assert after.state.status == "interrupted"
        assert texts(after) == ["system.expired"]


def test_step_never_mutates_the_given_state(demo: Flow, known: Context) -> None:
    result = run(demo, known, "1", "1")
    before = result.state.to_dict()
    step(demo, result.state, inp("2"), known)
    step(demo, result.state, inp("x"), known)
    assert result.state.to_dict() == before


def test_start_input_reasks(demo: Flow, known: Context) -> None:
    result = start(demo, known)
    again = step(demo, result.state, Input("start"), known)
    assert texts(again) == ["demo.category"]
    assert again.state == result.state
