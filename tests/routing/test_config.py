"""Validation of config/stakeholders.yaml and config/routing.yaml (`citoyen flows check`).

Each case in fixtures/broken/ is the valid configuration of fixtures/base/ with one file broken
in one way; the check must name the file, the line and the problem, and find nothing else.
Cases in fixtures/warnings/ are valid but probably not what their author meant.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from citoyen.cli import main
from citoyen.config import Settings
from citoyen.engine import Problem
from citoyen.routing import RoutingError, check, load_routing
from citoyen.services.areas.trees import shipped_area_tree
from tests.routing.support import CONFIG, FIXTURES, FLOWS, LOCALES, flows_dir, line_of

BASE = FIXTURES / "base"

# case: (file, text on the line the problem is at (, which occurrence), message)
ERRORS = {
    "unknown_stakeholder": (
        "routing.yaml",
        ("to: [pcc]",),
        "rule 2: unknown stakeholder 'pcc' (did you mean 'pc'?)",
    ),
    "unknown_escalation_target": (
        "routing.yaml",
        ("moderatoin",),
        "escalation 'police': unknown stakeholder 'moderatoin' (did you mean 'moderation'?)",
    ),
    "unknown_fallback": (
        "routing.yaml",
        ("fallback: moderators",),
        "the fallback queue 'moderators' is not a stakeholder of stakeholders.yaml",
    ),
    "unknown_area": (
        "routing.yaml",
        ("area: ML-BKO.commune-vii",),
        "rule 3: unknown area 'ML-BKO.commune-vii' (did you mean 'ML-BKO.commune-vi'?)",
    ),
    "stakeholder_unknown_area": (
        "stakeholders.yaml",
        ("area: ML-BKO.commune-ix",),
        "stakeholder 'ccs-c1': unknown area 'ML-BKO.commune-ix' (did you mean 'ML-BKO.commune-i'?)",
    ),
    "unknown_category": (
        "routing.yaml",
        ("category: [armed_attack, fire]",),
        "rule 3: unknown category 'fire' (the report flow's categories: armed_attack, theft, "
        "violence, conflict, suspicious, banditry, disaster, other)",
    ),
    "unknown_urgency": (
        "routing.yaml",
        ("urgency: urgent",),
        "rule 2: unknown urgency 'urgent' (one of: emergency, high, normal)",
    ),
    "bad_sla": (
        "routing.yaml",
        ("normal: 2 days",),
        "sla.normal: '2 days' is not a duration (a number then s, m, h or d: 15m, 2h, 2d)",
    ),
    "unknown_sla_urgency": (
        "routing.yaml",
        ("urgent: 2h",),
        "sla: unknown urgency 'urgent' (one of: emergency, high, normal)",
    ),
    "unknown_field": ("routing.yaml", ("categories: disaster",), "unknown field 'categories'"),
    "unknown_kind": ("stakeholders.yaml", ("kind: pompiers",), "kind: Input should be 'police'"),
    "duplicate_code": (
        "stakeholders.yaml",
        ("code: police-c1", 2),
        "stakeholder 'police-c1' is defined twice (first at line 12)",
    ),
    "bad_on_call": (
        "stakeholders.yaml",
        ('"+22320200002"',),
        "stakeholder 'police-c1': on-call address '+22320200002': must start with tel: "
        "(a phone number) or telegram: (a chat id)",
    ),
    # Possible (eight digits) but no such number in Mali's plan: a typo, alerts would go nowhere.
    "invalid_on_call": (
        "stakeholders.yaml",
        ('"tel:+22344000002"',),
        "stakeholder 'police-c1': on-call address 'tel:+22344000002': not a valid phone number",
    ),
    "language_not_enabled": (
        "stakeholders.yaml",
        ("language: wo",),
        "stakeholder 'pc': language 'wo' is not enabled (fr, bm, en)",
    ),
    "bad_yaml": ("stakeholders.yaml", ("   language: fr",), "bad YAML: "),
}


def problems_of(tmp_path: Path, case: str | None) -> tuple[Path, list[Problem]]:
    overlays = [BASE] + ([FIXTURES / case] if case else [])
    folder = flows_dir(tmp_path, *overlays)
    return folder, check(folder, LOCALES, areas=shipped_area_tree())


def test_shipped_configuration_has_no_problem() -> None:
    assert check(FLOWS, LOCALES, areas=shipped_area_tree()) == []


def test_base_fixture_has_no_problem(tmp_path: Path) -> None:
    assert problems_of(tmp_path, None)[1] == []


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_each_error_names_file_line_and_problem(tmp_path: Path, case: str) -> None:
    name, where, message = ERRORS[case]
    fixture = FIXTURES / "broken" / case / name
    assert fixture.is_file(), "one broken file per case"
    folder, problems = problems_of(tmp_path, f"broken/{case}")
    errors = [p for p in problems if p.level == "error"]
    assert len(errors) == 1, "\n".join(map(str, problems))
    [error] = errors
    assert error.file == f"config/{name}"
    assert error.line == line_of(fixture, *where)
    assert error.message.startswith(message), error.message
    assert str(error).startswith(f"config/{name}:{error.line}: ")
    with pytest.raises(RoutingError) as raised:
        load_routing(folder, LOCALES, areas=shipped_area_tree())
    assert raised.value.errors == [error]


def _warnings(tmp_path: Path, case: str) -> list[Problem]:
    _folder, problems = problems_of(tmp_path, f"warnings/{case}")
    assert [p for p in problems if p.level == "error"] == []
    return [p for p in problems if p.level == "warning"]


def test_shadowed_rule(tmp_path: Path) -> None:
    fixture = FIXTURES / "warnings" / "shadowed" / "routing.yaml"
    [warning] = _warnings(tmp_path, "shadowed")
    assert (warning.file, warning.line) == (
        "config/routing.yaml",
        line_of(fixture, "- area: ML-BKO", 2),
    )
    first = line_of(fixture, "- area: ML-BKO")
    assert warning.message == (
        f"rule 4 never applies: every report it matches goes by the rule at line {first} "
        "(the most specific rule wins, then the first one)"
    )


def test_rule_shadowed_by_several_rules_together(tmp_path: Path) -> None:
    extra = (
        "  - {area: ML-4, category: theft, to: [pc]}\n"
        "  - {area: ML-4, category: violence, urgency: [emergency, high, normal], to: [pc]}\n"
        "  - {area: ML-4, category: [theft, violence], to: [moderation]}\n"
    )
    routing = (BASE / "routing.yaml").read_text() + extra
    folder = flows_dir(tmp_path, BASE, **{"routing.yaml": routing})
    [warning] = [
        p for p in check(folder, LOCALES, areas=shipped_area_tree()) if p.level == "warning"
    ]
    theft = line_of(folder.parent / "config" / "routing.yaml", "category: theft")
    violence = line_of(folder.parent / "config" / "routing.yaml", "category: violence")
    assert warning.line == line_of(
        folder.parent / "config" / "routing.yaml", "category: [theft, violence]"
    )
    assert warning.message.startswith(
        f"rule 6 never applies: every report it matches goes by the rule at line {theft}, "
        f"the rule at line {violence} "
    )


def test_a_rule_for_any_category_is_never_shadowed_by_rules_naming_categories(
    tmp_path: Path,
) -> None:
    """Reports without a category (an unfinished call) still reach it."""
    categories = "armed_attack, theft, violence, conflict, suspicious, banditry, disaster, other"
    routing = (BASE / "routing.yaml").read_text() + (
        f"  - {{area: ML-4, category: [{categories}], to: [pc]}}\n"
        "  - {area: ML-4, to: [moderation]}\n"
    )
    folder = flows_dir(tmp_path, BASE, **{"routing.yaml": routing})
    assert check(folder, LOCALES, areas=shipped_area_tree()) == []


def test_categories_no_rule_reaches(tmp_path: Path) -> None:
    fixture = FIXTURES / "warnings" / "unreached_categories" / "routing.yaml"
    warnings = _warnings(tmp_path, "unreached_categories")
    unreached = {re.search(r"category '(\w+)'", w.message).group(1) for w in warnings}
    assert unreached == {"theft", "conflict", "suspicious", "banditry", "other"}
    assert all(w.line == line_of(fixture, "rules:") for w in warnings)
    assert "all its reports go to the 'moderation' queue" in warnings[0].message


def test_areas_no_rule_reaches(tmp_path: Path) -> None:
    warnings = _warnings(tmp_path, "unreached_areas")
    areas = {re.search(r"area '([^']+)'", w.message).group(1) for w in warnings}
    # The whole regions without rules, and Ségou's cercles other than the one with a rule;
    # never the areas a rule covers, nor the parents of covered areas.
    assert {"ML-1", "ML-2", "ML-3", "ML-5", "ML-10", "ML-4.san", "ML-4.niono"} <= areas
    assert not areas & {"ML-BKO", "ML-4", "ML-4.segou", "ML-BKO.commune-i"}
    assert not any(a.startswith(("ML-4.segou", "ML-1.", "ML-BKO")) for a in areas)
    kayes = next(w for w in warnings if "'ML-1'" in w.message)
    assert kayes.message == (
        "area 'ML-1' (Kayes) is reached by no rule: all its reports go to the 'moderation' queue"
    )


def test_rule_whose_stakeholders_cover_no_part_of_its_area(tmp_path: Path) -> None:
    fixture = FIXTURES / "warnings" / "coverage" / "routing.yaml"
    [warning] = _warnings(tmp_path, "coverage")
    assert warning.line == line_of(fixture, "- area: ML-4")
    assert re.match(
        r"rule 4 finds no stakeholder for \d+ commune\(s\), whose reports go to the "
        r"'moderation' queue: ML-4\.baroueli\.baroueli, ",
        warning.message,
    )
    assert "ML-4.segou." not in warning.message  # the brigade of Ségou covers its cercle


def test_nearest_kind_nobody_has(tmp_path: Path) -> None:
    fixture = FIXTURES / "warnings" / "nearest_kind_missing" / "routing.yaml"
    [warning] = _warnings(tmp_path, "nearest_kind_missing")
    assert warning.line == line_of(fixture, "garde_nationale")
    assert warning.message == (
        "rule 2: no stakeholder has kind 'garde_nationale', so {nearest: garde_nationale} "
        "never finds anyone"
    )


def test_stakeholder_never_routed_to(tmp_path: Path) -> None:
    fixture = FIXTURES / "warnings" / "unused_stakeholder" / "stakeholders.yaml"
    [warning] = _warnings(tmp_path, "unused_stakeholder")
    assert (warning.file, warning.line) == (
        "config/stakeholders.yaml",
        line_of(fixture, "- code: jeunes-c1"),
    )
    assert "'jeunes-c1' is never routed to" in warning.message


def test_fallback_that_is_not_a_moderation_queue(tmp_path: Path) -> None:
    [warning] = _warnings(tmp_path, "fallback_not_moderation")
    assert warning.line == 1
    assert (
        warning.message == "the fallback queue 'pc' has kind 'protection_civile', not 'moderation'"
    )


def test_missing_files(tmp_path: Path) -> None:
    neither = flows_dir(tmp_path / "a")
    [warning] = check(neither, LOCALES, areas=shipped_area_tree())
    assert (warning.level, warning.file) == ("warning", "config/routing.yaml")
    assert "every report goes to the 'moderation' queue" in warning.message
    assert load_routing(neither, LOCALES).fallback == "moderation"

    only_routing = flows_dir(
        tmp_path / "b", **{"routing.yaml": (BASE / "routing.yaml").read_text()}
    )
    [error] = [
        p for p in check(only_routing, LOCALES, areas=shipped_area_tree()) if p.level == "error"
    ]
    assert (error.file, error.message) == (
        "config/stakeholders.yaml",
        "not found, but routing.yaml needs it",
    )


def _locales(tmp_path: Path, edit: dict[str, tuple[str, str]]) -> Path:
    """A copy of the shipped locales with ``old`` replaced by ``new`` in each named file."""
    folder = tmp_path / "locales"
    shutil.copytree(LOCALES, folder)
    for name, (old, new) in edit.items():
        path = folder / name
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new), encoding="utf-8")
    return folder


def test_texts_notifications_need(tmp_path: Path) -> None:
    removed = {
        f"{lang}.yaml": (line, "")
        for lang, line in (
            (
                "fr",
                '  notify.closed: "Votre signalement {reference} est clos. Merci de votre confiance."\n',
            ),
            (
                "en",
                '  notify.closed: "Your report {reference} has been closed. Thank you for your trust."\n',
            ),
            (
                "bm",
                '  notify.closed:\n    text: "Aw ka kuma {reference} datugura. Aw ni ce!"\n    review: needs-review\n',
            ),
        )
    }
    locales = _locales(tmp_path, removed)
    [error] = [p for p in check(FLOWS, locales, areas=shipped_area_tree()) if p.level == "error"]
    assert error.file == "config/routing.yaml"
    assert error.line == line_of(CONFIG / "routing.yaml", "notify: [")
    assert error.message.startswith("text 'notify.closed' is missing in every language")


def test_notification_texts_with_unused_keys_placeholders_or_too_long(tmp_path: Path) -> None:
    old = '  notify.in_progress: "Votre signalement {reference} est en cours de traitement."\n'
    new = (
        '  notify.in_progress: "Votre signalement {reference} est en cours a {place}."\n'
        '  notify.resolved.theftt: "Votre signalement {reference} est résolu."\n'
        f'  notify.closed.spam: "{"Votre signalement {reference} est clos. " * 9}"\n'
    )
    locales = _locales(tmp_path, {"fr.yaml": (old, new)})
    warnings = {
        p.message.split(":")[0]: p
        for p in check(FLOWS, locales, areas=shipped_area_tree())
        if p.file == "locales/fr.yaml"
    }
    unknown = next(p for p in warnings.values() if "theftt" in p.message)
    assert unknown.message == (
        "text 'notify.resolved.theftt' is never used: 'theftt' is neither a category nor a closing "
        "reason (did you mean 'theft'?)"
    )
    placeholder = next(p for p in warnings.values() if "{place}" in p.message)
    assert placeholder.message.startswith(
        "text 'notify.in_progress' uses {place}, which is never given"
    )
    long = next(p for p in warnings.values() if "segments" in p.message)
    assert "for 'notify.closed.spam'" in long.message
    assert long.line == line_of(locales / "fr.yaml", "notify.closed.spam")


# --- the command ---------------------------------------------------------------------------------


def _settings(tmp_path: Path, flows: Path) -> Settings:
    return Settings(
        instance_dir=tmp_path / "instance",
        database_url=f"sqlite:///{tmp_path / 'check.db'}",
        flows_dir=flows,
        locales_dir=LOCALES,
        data_key="q3zkx8cQoB9o6c1ZCqbsb9Uu3mC1uHnP0E0y0F4l1yM=",
        secret_key="test",
    )


def test_flows_check_prints_routing_problems_and_fails(tmp_path: Path) -> None:
    folder = flows_dir(tmp_path, BASE, FIXTURES / "broken" / "unknown_stakeholder")
    result = CliRunner().invoke(
        main, ["flows", "check"], obj={"settings": _settings(tmp_path, folder)}
    )
    assert result.exit_code == 1
    line = line_of(folder.parent / "config" / "routing.yaml", "to: [pcc]")
    output = " ".join(result.output.split())  # rich wraps long lines at the terminal's width
    assert (
        f"error: config/routing.yaml:{line}: rule 2: unknown stakeholder 'pcc' (did you mean 'pc'?)"
        in output
    )
    assert re.search(r"^1 error\(s\), \d+ warning\(s\)$", result.output, re.M)


def test_flows_check_can_use_the_database_areas(tmp_path: Path) -> None:
    from citoyen.runtime import Runtime
    from citoyen.services.setup import ensure_ready

    folder = flows_dir(tmp_path, BASE, FIXTURES / "warnings" / "unreached_areas")
    settings = _settings(tmp_path, folder)
    ensure_ready(Runtime(settings))
    shipped = CliRunner().invoke(main, ["flows", "check"], obj={"settings": settings})
    from_db = CliRunner().invoke(
        main, ["flows", "check", "--areas-from-db"], obj={"settings": settings}
    )
    assert shipped.exit_code == from_db.exit_code == 0
    assert "area 'ML-1' (Kayes) is reached by no rule" in from_db.output
    assert shipped.output == from_db.output  # the database holds exactly the shipped areas
