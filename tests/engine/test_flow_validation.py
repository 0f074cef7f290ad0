"""The validator: every error kind of docs/flows.md, with file, line, node and a clear message.

Each broken fixture under ``fixtures/broken/<kind>/`` is the small valid set of
``fixtures/broken/*`` with one mistake, so a test failing here points at one rule.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from citoyen.engine import FlowError, Problem, check, load_bundle
from tests.engine.support import BROKEN, VALID

# kind -> (file, line, node, words the message contains)
EXPECTED: dict[str, tuple[str, int | None, str | None, str]] = {
    "bad_yaml": ("flows/demo.yaml", 11, None, "bad YAML"),
    "unknown_node": ("flows/demo.yaml", 17, "ask", "unknown node 'finish'"),
    "unknown_text_key": ("flows/demo.yaml", 20, "done", "unknown text key 'demo.finished'"),
    "unreachable_node": ("flows/demo.yaml", 21, "orphan", "unreachable"),
    "cycle": ("flows/demo.yaml", 4, "welcome", "cycle through nodes that never wait"),
    "duplicate_choice_key": ("flows/demo.yaml", 15, "ask", "option key 'yes' used twice"),
    "too_many_options": ("flows/demo.yaml", 12, "ask", "10 options: at most 9"),
    "text_missing_in_language": ("locales/en.yaml", None, None, "text 'demo.ask' is missing"),
    "placeholders_differ": ("locales/en.yaml", 24, None, "placeholders {polis} differ"),
    "unknown_action": ("flows/demo.yaml", 21, "act", "unknown action 'launch_rocket'"),
    "unknown_node_type": ("flows/demo.yaml", 4, "welcome", "unknown node type 'announcement'"),
    "unknown_field": ("flows/demo.yaml", 12, "ask", "unknown field 'prompt'"),
    "missing_start": ("flows/demo.yaml", None, None, "missing 'start'"),
    "id_mismatch": ("flows/demo.yaml", 1, None, "differs from the file name 'demo'"),
    "language_without_locale": ("config/settings.yaml", 2, None, "locales/wo.yaml does not exist"),
    "default_not_enabled": ("config/settings.yaml", 3, None, "default language 'bm' is not"),
    "keyword_twice": ("config/settings.yaml", 8, None, "'stop' is in both keywords.stop"),
    "missing_system_key": ("locales/fr.yaml", None, None, "system text 'system.more' is missing"),
    "missing_settings": ("config/settings.yaml", None, None, "settings.yaml not found"),
    "bad_locale": ("locales/fr.yaml", 2, None, "meta.language is 'en'"),
}


def _check(root: Path) -> list[Problem]:
    return check(root / "flows", root / "locales")


def test_every_broken_fixture_has_an_expectation() -> None:
    assert sorted(p.name for p in BROKEN.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_broken_fixture_reports_its_error(kind: str) -> None:
    file, line, node, words = EXPECTED[kind]
    problems = _check(BROKEN / kind)
    matching = [p for p in problems if p.level == "error" and words in p.message]
    assert matching, f"no error containing {words!r} in {[str(p) for p in problems]}"
    problem = matching[0]
    assert (problem.file, problem.line, problem.node) == (file, line, node)
    where = f"{file}:{line}" if line else file
    assert str(problem).startswith(where + ":")
    if node:
        assert f"node '{node}':" in str(problem)


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_load_bundle_refuses_broken_fixture(kind: str) -> None:
    with pytest.raises(FlowError) as info:
        load_bundle(BROKEN / kind / "flows", BROKEN / kind / "locales")
    assert info.value.errors
    assert all(p.level == "error" for p in info.value.errors)
    assert str(info.value.errors[0]) in str(info.value)


def test_problem_str_format() -> None:
    problem = Problem("error", "flows/report.yaml", 42, "category", "option key 'theft' used twice")
    assert str(problem) == "flows/report.yaml:42: node 'category': option key 'theft' used twice"
    assert str(Problem("error", "flows/x.yaml", None, None, "missing 'start'")) == (
        "flows/x.yaml: missing 'start'"
    )


def test_valid_fixture_has_no_errors() -> None:
    problems = _check(VALID)
    assert [p for p in problems if p.level == "error"] == []


def test_valid_fixture_loads(bundle) -> None:  # type: ignore[no-untyped-def]
    assert set(bundle.flows) == {"demo", "survey"}
    assert bundle.settings.languages.default == "fr"
    assert bundle.catalog.languages == ("bm", "fr")
    assert bundle.flow_for("default").id == "demo"
    assert bundle.flow_for("incoming_call").id == "demo"
    assert bundle.flow_for_keyword(" sondage ").id == "survey"
    assert bundle.flow_for_keyword("bonjour") is None


def test_missing_audio_warning_for_language_without_tts() -> None:
    warnings = [p for p in _check(VALID) if p.level == "warning"]
    audio = [p for p in warnings if "recorded audio" in p.message]
    # bm has no text-to-speech and every voice text has a recording except demo.age.
    assert [(p.file, p.line) for p in audio] == [("locales/bm.yaml", 34)]
    assert "'demo.age'" in audio[0].message
    assert "locales/bm/audio/demo.age.wav or .mp3" in audio[0].message
    # keyword replies are never played on a call: no recording needed
    assert not any("system.stopped" in p.message for p in audio)


def test_sms_segment_warning_counts_numbered_options(variant: Callable[..., Path]) -> None:
    fr = (VALID / "locales/fr.yaml").read_text(encoding="utf-8")
    # 3 options of 100 GSM-7 characters: each alone is fine, the menu is 3 segments.
    long = "x" * 100
    for key in ("theft", "fire", "other"):
        fr = fr.replace(f"  demo.category.{key}: ", f'  demo.category.{key}: "{long}" #')
    fr = fr.replace('    text: "Incendie"', f'    text: "{long}"')
    root = variant({"locales/fr.yaml": fr})
    problems = _check(root)
    warnings = [p for p in problems if p.level == "warning" and "segments" in p.message and p.node]
    assert len(warnings) == 1, [str(w) for w in warnings]
    assert warnings[0].node == "category"
    # The same menu makes the first exchange (welcome + first question) too long as well.
    [first] = [p for p in problems if "first exchange of flow 'demo'" in p.message]
    assert (first.level, first.file) == ("warning", "locales/fr.yaml")
    assert warnings[0].file == "flows/demo.yaml"
    assert "SMS in 'fr' costs 3 segments (GSM-7" in warnings[0].message


def test_sms_segment_warning_ucs2(variant: Callable[..., Path]) -> None:
    bm = (VALID / "locales/bm.yaml").read_text(encoding="utf-8")
    bm = bm.replace('demo.age: "Aw si ye san joli ye?"', 'demo.age: "' + "ɛ" * 140 + '"')
    root = variant({"locales/bm.yaml": bm})
    warnings = [p for p in _check(root) if p.level == "warning" and "segments" in p.message]
    assert [(w.node, w.line) for w in warnings] == [("age", 60)]
    assert "UCS-2" in warnings[0].message
    # 140 characters alone would be 2 segments; exactly 2 must not warn
    bm2 = bm.replace("ɛ" * 140, "ɛ" * 134)
    root2 = variant({"locales/bm.yaml": bm2})
    assert not [p for p in _check(root2) if "segments" in p.message]


def test_unsaved_answer_and_placeholder_warnings(variant: Callable[..., Path]) -> None:
    demo = (VALID / "flows/demo.yaml").read_text(encoding="utf-8")
    demo = demo.replace("urgency_from: danger}", "urgency_from: danger, anonymous: anon}")
    fr = (VALID / "locales/fr.yaml").read_text(encoding="utf-8")
    bm = (VALID / "locales/bm.yaml").read_text(encoding="utf-8")
    fr = fr.replace('"Quel âge avez-vous ?"', '"Quel âge, {nom} ?"')
    bm = bm.replace('"Aw si ye san joli ye?"', '"{nom} si?"')
    root = variant({"flows/demo.yaml": demo, "locales/fr.yaml": fr, "locales/bm.yaml": bm})
    problems = _check(root)
    assert not [p for p in problems if p.level == "error"]
    messages = [p.message for p in problems if p.level == "warning"]
    assert any("answer 'anon' is never saved" in m for m in messages)
    assert any("uses {nom}" in m for m in messages)


def test_choice_option_without_next(variant: Callable[..., Path]) -> None:
    survey = (VALID / "flows/survey.yaml").read_text(encoding="utf-8")
    survey = survey.replace("        text: demo.no\n    next: act\n", "        text: demo.no\n")
    survey = survey.replace(
        '      - key: "yes"\n        text: demo.yes\n',
        '      - key: "yes"\n        text: demo.yes\n        next: act\n',
    )
    problems = _check(variant({"flows/survey.yaml": survey}))
    errors = [p for p in problems if p.level == "error"]
    assert [(p.node, p.message) for p in errors] == [
        ("consent", "option 'no' has no 'next' and neither has the node")
    ]


def test_two_default_flows_and_shared_trigger_keyword(variant: Callable[..., Path]) -> None:
    survey = (VALID / "flows/survey.yaml").read_text(encoding="utf-8")
    survey = survey.replace(
        "  - keyword: [SONDAGE]", "  - keyword: [SONDAGE, signaler]\n  - default: true"
    )
    errors = [p for p in _check(variant({"flows/survey.yaml": survey})) if p.level == "error"]
    messages = sorted(p.message for p in errors)
    assert messages == [
        "trigger 'default' is already used by flow 'demo' (one flow at most)",
        "trigger keyword 'signaler' already starts flow 'demo'",
    ]


def test_trigger_keyword_equal_to_global_keyword(variant: Callable[..., Path]) -> None:
    survey = (VALID / "flows/survey.yaml").read_text(encoding="utf-8")
    survey = survey.replace("[SONDAGE]", "[SONDAGE, Aide]")
    errors = [p for p in _check(variant({"flows/survey.yaml": survey})) if p.level == "error"]
    assert [p.message for p in errors] == [
        "trigger keyword 'Aide' is also the global keyword 'help'"
    ]


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        (
            "    type: number\n    text: demo.age\n    save: age\n    min: 150\n",
            "min (150) is greater than max (120)",
        ),
        (
            "    type: number\n    text: demo.age\n    save: age\n    minimum: 15\n",
            "unknown field 'minimum'",
        ),
    ],
)
def test_field_errors_name_node(variant: Callable[..., Path], snippet: str, message: str) -> None:
    demo = (VALID / "flows/demo.yaml").read_text(encoding="utf-8")
    demo = demo.replace(
        "    type: number\n    text: demo.age\n    save: age\n    min: 15\n", snippet
    )
    errors = [p for p in _check(variant({"flows/demo.yaml": demo})) if p.level == "error"]
    assert any(p.node == "age" and message in p.message for p in errors), [str(p) for p in errors]


def test_bad_condition_and_action_arguments(variant: Callable[..., Path]) -> None:
    demo = (VALID / "flows/demo.yaml").read_text(encoding="utf-8")
    demo = demo.replace('{answer: danger, eq: "yes"}', "{answer: danger}")
    demo = demo.replace("- set_consent: {value: true}", "- set_consent: {answer: x, value: true}")
    errors = [p for p in _check(variant({"flows/demo.yaml": demo})) if p.level == "error"]
    messages = {(p.node, p.message) for p in errors}
    assert ("check", "an answer condition needs exactly one of: eq, in, set") in messages
    assert ("save_it", "set_consent needs exactly one of: answer, value") in messages


def test_missing_directories(tmp_path: Path) -> None:
    problems = check(tmp_path / "flows", tmp_path / "locales")
    assert {p.message for p in problems} >= {
        "flows directory not found",
        "locales directory not found",
    }


def test_sms_budget_in_settings_makes_an_overrun_an_error(variant: Callable[..., Path]) -> None:
    """With ``sms_budget`` set for a language, a reply above it fails the check (exit 1): the
    first exchange, the help at the first question, and any one prompt."""
    settings = (VALID / "config/settings.yaml").read_text(encoding="utf-8")
    within = settings + "sms_budget:\n  fr: {first_exchange: 3, help: 3, prompt: 2}\n"
    assert not [p for p in _check(variant({"config/settings.yaml": within})) if p.level == "error"]

    # A welcome of 120 characters: 1 segment alone, 2 with the category menu after it.
    fr = (VALID / "locales/fr.yaml").read_text(encoding="utf-8")
    fr = fr.replace(
        '"Bienvenue. Urgence : police {police}, pompiers {fire}."',
        '"' + "x" * 70 + " Urgence : police {police}, pompiers {fire} " + "y" * 20 + '"',
    )
    tight = settings + "sms_budget:\n  fr: {first_exchange: 1, help: 1, prompt: 1}\n"
    root = variant({"config/settings.yaml": tight, "locales/fr.yaml": fr})
    errors = [p for p in _check(root) if p.level == "error"]
    messages = [p.message for p in errors]
    assert any(
        "the first exchange of flow 'demo'" in m and "the budget is 1" in m for m in messages
    )
    prompt_budget = settings + "sms_budget:\n  fr: {first_exchange: 3, help: 1, prompt: 1}\n"
    fr_long_help = (
        (VALID / "locales/fr.yaml")
        .read_text(encoding="utf-8")
        .replace('"Répondez avec un numéro. MENU pour recommencer."', '"' + "z" * 170 + '"')
    )
    root = variant({"config/settings.yaml": prompt_budget, "locales/fr.yaml": fr_long_help})
    help_errors = sorted(p.message for p in _check(root) if p.level == "error")
    assert len(help_errors) == 2, help_errors
    assert "'system.help'; keep it to 1" in help_errors[0]
    assert "the help at the first question of flow 'demo'" in help_errors[1]
    # bm has no budget: its overruns stay warnings
    assert all("SMS in 'fr'" in m for m in messages if "segments" in m), messages


CALLBACK_FLOW = """\
id: callme
triggers:
  - keyword: [RAPPELEZ]
start: request
nodes:
  request:
    type: action
    do:
      - request_callback:
    next: told
  told:
    type: end
    text: callme.told
"""
CALLBACK_TEXTS = """\
  callme.told: "{callback_answer}"
  callback.requested: "Appel dans quelques minutes depuis le {callback_from}."
  callback.later: "Appel à {callback_time} depuis le {callback_from}."
  callback.pending: "Déjà demandé ({callback_from})."
  callback.limit: "Trop de demandes aujourd'hui."
  callback.no_phone: "Pas de numéro ici."
  callback.unavailable: "Pas possible."
  callback.call_intro: "Vous avez demandé à être rappelé."
"""


def test_a_flow_asking_for_call_backs_needs_every_outcome_text(
    variant: Callable[..., Path],
) -> None:
    fr = (VALID / "locales/fr.yaml").read_text(encoding="utf-8")
    bm = (VALID / "locales/bm.yaml").read_text(encoding="utf-8")
    complete = {
        "flows/callme.yaml": CALLBACK_FLOW,
        "locales/fr.yaml": fr + CALLBACK_TEXTS,
        "locales/bm.yaml": bm + CALLBACK_TEXTS,
    }
    problems = _check(variant(complete))
    assert not [p for p in problems if p.level == "error"]
    # {callback_answer} is what request_callback says: no warning about an unknown value.
    assert not [p for p in problems if "callback_answer" in p.message]
    # The intro of the answered call is a voice prompt: Bambara has no text-to-speech here.
    assert any("'callback.call_intro'" in p.message for p in problems if p.level == "warning")
    # A text the service renders but no node names: missing everywhere, only this rule sees it.
    texts = CALLBACK_TEXTS.replace('  callback.limit: "Trop de demandes aujourd\'hui."\n', "")
    problems = _check(
        variant({**complete, "locales/fr.yaml": fr + texts, "locales/bm.yaml": bm + texts})
    )
    errors = [(p.file, p.node, p.message) for p in problems if p.level == "error"]
    assert errors == [
        (
            "flows/callme.yaml",
            None,
            "the flow asks for call-backs (request_callback): add text 'callback.limit' to "
            "locales/fr.yaml, locales/bm.yaml",
        )
    ]
