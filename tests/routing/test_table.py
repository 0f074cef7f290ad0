"""The routing table, resolved without a database: inheritance, specificity, fallback, escalation.

The first part uses a small hand-made area tree and configuration, so each case states exactly
which rule must win; the second part checks the shipped configuration on the shipped areas.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from citoyen.routing import (
    AreaInfo,
    AreaTree,
    RoutingConfig,
    load_routing,
    nearest,
    next_escalation,
    resolve,
)
from citoyen.services.areas.trees import shipped_area_tree
from tests.routing.support import FLOWS, LOCALES, flows_dir

TREE = AreaTree(
    {
        a.code: a
        for a in [
            AreaInfo("ML-4", "Ségou", "region", None),
            AreaInfo("ML-4.segou", "Ségou", "cercle", "ML-4"),
            AreaInfo("ML-4.segou.segou", "Ségou", "commune", "ML-4.segou"),
            AreaInfo("ML-4.segou.segou.q1", "Quartier 1", "quartier", "ML-4.segou.segou"),
            AreaInfo("ML-4.segou.markala", "Markala", "commune", "ML-4.segou"),
            AreaInfo("ML-4.san", "San", "cercle", "ML-4"),
            AreaInfo("ML-4.san.san", "San", "commune", "ML-4.san"),
            AreaInfo("ML-BKO", "Bamako", "district", None),
            AreaInfo("ML-BKO.commune-i", "Commune I", "commune", "ML-BKO"),
            AreaInfo("ML-BKO.commune-ii", "Commune II", "commune", "ML-BKO"),
            AreaInfo("ML-1", "Kayes", "region", None),
            AreaInfo("ML-1.kita", "Kita", "cercle", "ML-1"),
            AreaInfo("ML-1.kita.kita", "Kita", "commune", "ML-1.kita"),
        ]
    }
)

STAKEHOLDERS = """
stakeholders:
  - {code: moderation, name: Moderation, kind: moderation}
  - {code: gn, name: Gendarmerie nationale, kind: gendarmerie}
  - {code: g-legion, name: Legion Segou, kind: gendarmerie, area: ML-4}
  - {code: g-segou, name: Brigade Segou, kind: gendarmerie, area: ML-4.segou}
  - {code: p-segou, name: Police Segou, kind: police, area: ML-4.segou.segou}
  - {code: ccs-segou, name: CCS Segou, kind: mayor_ccs, area: ML-4.segou.segou}
  - {code: ccs-markala, name: CCS Markala, kind: mayor_ccs, area: ML-4.segou.markala}
  - {code: prefet-segou, name: Prefet Segou, kind: prefet, area: ML-4.segou}
  - {code: gov-segou, name: Gouverneur Segou, kind: prefet, area: ML-4}
  - {code: pc-4, name: Protection civile Segou, kind: protection_civile, area: ML-4}
  - {code: vbg, name: Service VBG, kind: civil_society, area: ML-4}
  - {code: police-bko, name: Police Bamako, kind: police, area: ML-BKO}
  - {code: police-c1, name: Police Commune I, kind: police, area: ML-BKO.commune-i}
  - {code: chef-1, name: Chef Markala 1, kind: village_chief, area: ML-4.segou.markala}
  - {code: chef-2, name: Chef Markala 2, kind: village_chief, area: ML-4.segou.markala}
"""

ROUTING = """
fallback: moderation
escalation:
  gendarmerie: [{nearest: gendarmerie}, {nearest: prefet}, moderation]
rules:
  - to: [moderation]                                                  # 1
  - {area: ML-4, category: [armed_attack, theft],
     to: [{nearest: gendarmerie}, {nearest: mayor_ccs}]}              # 2
  - {area: ML-4.segou, category: theft, to: [g-segou, prefet-segou]}  # 3
  - {area: ML-4.segou.segou, category: theft, to: [{nearest: police}]}  # 4
  - {area: ML-4, category: violence, to: [{nearest: gendarmerie}, vbg]}  # 5
  - {area: ML-4, category: violence, urgency: emergency,
     to: [g-legion, {nearest: gendarmerie}, vbg, gov-segou]}          # 6
  - {area: ML-4, category: conflict,
     to: [{nearest: village_chief}, {nearest: prefet}]}               # 7
  - {area: ML-4.san, to: [gov-segou]}                                 # 8
  - {area: ML-BKO, category: armed_attack, to: [{nearest: police}]}   # 9
  - {area: ML-1, category: theft, to: [{nearest: mayor_ccs}]}         # 10
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> RoutingConfig:
    folder = flows_dir(
        tmp_path_factory.mktemp("table"),
        **{"stakeholders.yaml": STAKEHOLDERS, "routing.yaml": ROUTING},
    )
    return load_routing(folder, LOCALES, areas=TREE)


def route(config: RoutingConfig, category: str | None, area: str | None, urgency: str = "normal"):
    return resolve(config, TREE, category=category, area=area, urgency=urgency)


@pytest.mark.parametrize(
    ("area", "rule", "codes"),
    [
        # The commune's own rule wins over the cercle's and the region's...
        ("ML-4.segou.segou", 4, ("p-segou",)),
        # ...and is inherited by what lies below the commune.
        ("ML-4.segou.segou.q1", 4, ("p-segou",)),
        # A commune without its own rule inherits the cercle's...
        ("ML-4.segou.markala", 3, ("g-segou", "prefet-segou")),
        # ...a report placed only at cercle level takes the cercle's...
        ("ML-4.segou", 3, ("g-segou", "prefet-segou")),
        # ...and one placed only at region level, the region's.
        ("ML-4", 2, ("g-legion",)),
        # A deeper area wins even over a rule that names the category (rule 8 names none).
        ("ML-4.san.san", 8, ("gov-segou",)),
    ],
)
def test_area_rules_inherit_down_and_the_most_specific_wins(
    config: RoutingConfig, area: str, rule: int, codes: tuple[str, ...]
) -> None:
    resolution = route(config, "theft", area)
    assert resolution.rule is not None and resolution.rule.index + 1 == rule
    assert resolution.codes == codes
    assert not resolution.fallback


def test_a_rule_sends_a_report_to_several_stakeholders(config: RoutingConfig) -> None:
    # Rule 2 applies (rules 3 and 4 are for theft): the gendarmerie nearest to the commune of
    # Ségou is the cercle's brigade; the nearest mayor/CCS is the commune's own.
    resolution = route(config, "armed_attack", "ML-4.segou.segou")
    assert resolution.rule is not None and resolution.rule.index + 1 == 2
    assert resolution.codes == ("g-segou", "ccs-segou")


def test_nearest_finds_every_stakeholder_of_the_closest_level(config: RoutingConfig) -> None:
    resolution = route(config, "conflict", "ML-4.segou.markala")
    assert resolution.codes == ("chef-1", "chef-2", "prefet-segou")


def test_urgency_specific_rules_apply_to_their_urgency_only(config: RoutingConfig) -> None:
    normal = route(config, "violence", "ML-4.segou.markala", "normal")
    emergency = route(config, "violence", "ML-4.segou.markala", "emergency")
    assert normal.rule is not None and normal.rule.index + 1 == 5
    assert normal.codes == ("g-segou", "vbg")
    assert emergency.rule is not None and emergency.rule.index + 1 == 6
    # In the rule's order, without repeating the brigade named twice.
    assert emergency.codes == ("g-legion", "g-segou", "vbg", "gov-segou")


@pytest.mark.parametrize(
    ("category", "area"),
    [
        ("theft", "ML-1.kita.kita"),  # rule 10 applies but finds no mayor/CCS in Kayes
        ("other", "ML-BKO.commune-i"),  # only the national rule
        (None, "ML-4.segou.segou"),  # an unfinished call: no category
        ("armed_attack", None),  # no place given
        ("armed_attack", "ML-9.unknown"),  # an area the tree does not know
    ],
)
def test_what_no_specific_rule_takes_goes_to_moderation(
    config: RoutingConfig, category: str | None, area: str | None
) -> None:
    assert route(config, category, area).codes == ("moderation",)


def test_a_report_no_rule_matches_falls_back_to_moderation(tmp_path: Path) -> None:
    # Without the national rule, a theft in Bamako matches nothing at all.
    without_national = ROUTING.replace("  - to: [moderation]", "")
    folder = flows_dir(
        tmp_path, **{"stakeholders.yaml": STAKEHOLDERS, "routing.yaml": without_national}
    )
    config = load_routing(folder, LOCALES, areas=TREE)
    resolution = route(config, "theft", "ML-BKO.commune-ii")
    assert resolution.rule is None
    assert resolution.codes == ("moderation",) and resolution.fallback
    # A rule that finds nobody falls back too, and says which rule it was.
    kayes = route(config, "theft", "ML-1.kita.kita")
    assert kayes.fallback and kayes.codes == ("moderation",)
    assert kayes.rule is not None and kayes.rule.index + 1 == 9


def test_nearest_skips_excluded_stakeholders_to_find_the_next_one_up(
    config: RoutingConfig,
) -> None:
    area = "ML-4.segou.markala"
    assert nearest(config, TREE, "gendarmerie", area) == ("g-segou",)
    assert nearest(config, TREE, "gendarmerie", area, exclude={"g-segou"}) == ("g-legion",)
    assert nearest(config, TREE, "gendarmerie", area, exclude={"g-segou", "g-legion"}) == ("gn",)
    assert nearest(config, TREE, "gendarmerie", area, exclude={"g-segou", "g-legion", "gn"}) == ()
    # Rerouting excludes stakeholders that declined: the rule's next candidates take over.
    rerouted = resolve(
        config, TREE, category="theft", area="ML-4.san.san", urgency="normal", exclude={"gov-segou"}
    )
    assert rerouted.codes == ("moderation",) and rerouted.fallback


def escalate(config: RoutingConfig, late: str, level: int, area: str, exclude=()):
    """The next step for an entry of ``late`` at ``level``, as (level, stakeholders)."""
    spec = config.stakeholders[late]
    step = next_escalation(
        config,
        TREE,
        chain=config.chain_name(spec.kind) if level == 0 else "gendarmerie",
        level=level,
        area=area,
        late_kind=spec.kind,
        late_area=spec.area,
        exclude={late, *exclude},
    )
    return (step.level, step.stakeholders) if step else None


def test_escalation_goes_up_the_chain(config: RoutingConfig) -> None:
    area = "ML-4.segou.markala"
    assert config.chain_name("gendarmerie") == "gendarmerie"
    # A brigade escalates to the gendarmerie above its own area, not to a neighbour...
    assert escalate(config, "g-segou", 0, area) == (1, ("g-legion",))
    # ...the legion to the national level when it was the one routed to...
    assert escalate(config, "g-legion", 0, area) == (1, ("gn",))
    # ...and, once escalated, along the chain: the préfet nearest to the report's place.
    assert escalate(config, "g-legion", 1, area) == (2, ("prefet-segou",))
    assert escalate(config, "prefet-segou", 2, area) == (3, ("moderation",))
    assert escalate(config, "moderation", 3, area) is None


def test_escalation_never_goes_down_and_skips_excluded_stakeholders(
    config: RoutingConfig,
) -> None:
    area = "ML-4.segou.markala"
    # Nothing is above the national gendarmerie: the next step of the chain is used.
    assert escalate(config, "gn", 0, area) == (2, ("prefet-segou",))
    # A préfet that declined the report is skipped: the nearest one up is the governor.
    assert escalate(config, "g-legion", 1, area, {"prefet-segou"}) == (2, ("gov-segou",))
    assert escalate(config, "g-legion", 1, area, {"prefet-segou", "gov-segou"}) == (
        3,
        ("moderation",),
    )


def test_chains_by_kind_default_and_moderation(config: RoutingConfig) -> None:
    # No `default` chain configured: kinds without a chain go to the fallback queue.
    assert config.chain_name("civil_society") == "default"
    step = next_escalation(
        config,
        TREE,
        chain="default",
        level=0,
        area="ML-4",
        late_kind="civil_society",
        late_area="ML-4",
        exclude={"vbg"},
    )
    assert step is not None and step.stakeholders == ("moderation",)
    # The moderation queue ends every chain.
    assert config.chain_name("moderation") == "none"
    assert next_escalation(config, TREE, chain="none", level=0, area="ML-4", exclude=()) is None


def test_sla_defaults_and_overrides(config: RoutingConfig, tmp_path: Path) -> None:
    assert config.sla_seconds("emergency") == 15 * 60
    assert config.sla_seconds("high") == 2 * 3600
    assert config.sla_seconds("normal") == 48 * 3600
    assert config.sla_seconds("unknown") == 48 * 3600
    folder = flows_dir(
        tmp_path,
        **{
            "stakeholders.yaml": STAKEHOLDERS,
            "routing.yaml": ROUTING.replace(
                "fallback: moderation", "fallback: moderation\nsla:\n  emergency: 5m\n  normal: 1d"
            ),
        },
    )
    changed = load_routing(folder, LOCALES, areas=TREE)
    assert changed.sla_seconds("emergency") == 300
    assert changed.sla_seconds("high") == 7200
    assert changed.sla_seconds("normal") == 86400


# --- the shipped configuration -------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> RoutingConfig:
    return load_routing(FLOWS, LOCALES, areas=shipped_area_tree())


@pytest.mark.parametrize(
    ("category", "area", "urgency", "codes"),
    [
        # Bamako: the commune's police and CCS; GBV also to the civil-society service.
        ("violence", "ML-BKO.commune-v", "normal", ("bko-police-c5", "bko-ccs-c5", "bko-vbg")),
        ("armed_attack", "ML-BKO.commune-iv", "normal", ("bko-police-c4", "bko-ccs-c4")),
        (
            "armed_attack",
            "ML-BKO.commune-iv",
            "emergency",
            ("bko-police-c4", "bko-police-drp", "bko-ccs-c4"),
        ),
        ("theft", "ML-BKO.commune-i.banconi", "normal", ("bko-police-c1",)),  # a quartier
        ("conflict", "ML-BKO.commune-ii", "normal", ("bko-ccs-c2", "bko-chefs-quartier")),
        ("disaster", "ML-BKO.commune-vi", "normal", ("bko-protection-civile", "bko-ccs-c6")),
        ("other", "ML-BKO.commune-iii", "normal", ("moderation",)),
        # Ségou: the cercle's gendarmerie brigade, the town of Ségou's police.
        ("theft", "ML-4.san.fion", "normal", ("seg-gendarmerie-san",)),
        ("armed_attack", "ML-4.segou.segou", "normal", ("seg-police-segou", "seg-ccs-segou")),
        (
            "violence",
            "ML-4.niono.niono",
            "normal",
            ("seg-gendarmerie-niono", "seg-ccs-niono", "seg-vbg"),
        ),
        # Land conflict in a commune without CCS: village chiefs and the préfet.
        ("conflict", "ML-4.niono.sokolo", "normal", ("seg-chefs-niono", "seg-prefet-niono")),
        (
            "conflict",
            "ML-4.macina.macina",
            "emergency",
            (
                "seg-gendarmerie-macina",
                "seg-ccs-macina",
                "seg-prefet-macina",
                "seg-leaders-religieux",
            ),
        ),
        ("disaster", "ML-4.bla.fani", "normal", ("seg-protection-civile", "seg-prefet-bla")),
        # Elsewhere: the national services, else moderation.
        ("disaster", "ML-1.kita.kita", "emergency", ("ml-dgpc",)),
        ("armed_attack", "ML-5.mopti.mopti", "normal", ("ml-gendarmerie-cos", "moderation")),
        ("theft", "ML-1.kita.kita", "normal", ("moderation",)),
        (None, "ML-BKO.commune-iv", "emergency", ("moderation",)),
    ],
)
def test_shipped_rules(
    shipped: RoutingConfig,
    category: str | None,
    area: str,
    urgency: str,
    codes: tuple[str, ...],
) -> None:
    tree = shipped_area_tree()
    assert area in tree
    assert resolve(shipped, tree, category=category, area=area, urgency=urgency).codes == codes


def test_shipped_escalation_chains(shipped: RoutingConfig) -> None:
    tree = shipped_area_tree()

    def chain(first: str, area: str) -> list[tuple[str, ...]]:
        """Who the entry of ``first`` escalates to, step after step, when nobody acts."""
        found: list[tuple[str, ...]] = []
        spec, level, lineage = shipped.stakeholders[first], 0, {first}
        name = shipped.chain_name(spec.kind)
        while (
            step := next_escalation(
                shipped,
                tree,
                chain=name,
                level=level,
                area=area,
                late_kind=spec.kind,
                late_area=spec.area,
                exclude=lineage,
            )
        ) is not None:
            found.append(step.stakeholders)
            lineage.update(step.stakeholders)
            spec, level = shipped.stakeholders[step.stakeholders[0]], step.level
        return found

    # A commissariat: the district police, the governor, national moderation.
    assert chain("bko-police-c4", "ML-BKO.commune-iv") == [
        ("bko-police-drp",),
        ("bko-gouvernorat",),
        ("moderation",),
    ]
    # A rural brigade: the regional legion, the préfet of the cercle, national moderation.
    assert chain("seg-gendarmerie-san", "ML-4.san.fion") == [
        ("seg-gendarmerie-legion",),
        ("seg-prefet-san",),
        ("moderation",),
    ]
    # A communal council: the préfet, then moderation; moderation itself does not escalate.
    assert chain("seg-ccs-niono", "ML-4.niono.niono") == [("seg-prefet-niono",), ("moderation",)]
    assert chain("moderation", "ML-4.niono.niono") == []
