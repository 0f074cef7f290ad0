"""Place menus memoised per area map give what the per-step computation gave.

The reference (the engine's former per-step code) is in tests/engine/support.py, shared with the
test of the shipped map in tests/services/test_areas.py.
"""

from __future__ import annotations

import copy
import pickle
from dataclasses import replace

import pytest

from citoyen.engine import Bundle, Flow, StepResult, start, step
from citoyen.engine.places import AreaMap, PlaceMenus, place_menus
from citoyen.engine.types import AreaNode, Context, Input, Option
from tests.engine.support import AREAS, ROOTS, assert_menus_match


def changed_map() -> dict[str, AreaNode]:
    """The test map with a cercle gone, a commune renamed and a child promoted in level."""
    areas = dict(AREAS)
    del areas["C12"]  # still listed among R1's children: must be left out
    areas["K111"] = replace(areas["K111"], name="Kita Centre")
    areas["Q1"] = replace(areas["Q1"], level="commune")  # now asked under Commune I
    return areas


@pytest.mark.parametrize("make", [dict, AreaMap], ids=["dict", "AreaMap"])
def test_menus_equal_the_per_step_computation(make: type) -> None:
    assert_menus_match(make(AREAS), ROOTS)


@pytest.mark.parametrize("make", [dict, AreaMap], ids=["dict", "AreaMap"])
def test_menus_of_a_changed_map_follow_the_change(make: type) -> None:
    before = AreaMap(AREAS)
    assert before.menus.children("R1", 2).codes == ("C11", "C12")
    changed = make(changed_map())
    assert_menus_match(changed, ROOTS)
    menus = place_menus(changed)
    assert menus.children("R1", 2).codes == ("C11",)
    assert menus.children("B1", 3).codes == ("Q1",)
    assert menus.children("C11", 3).options[0] == Option(key="K111", label="Kita Centre")
    assert before.menus.children("R1", 2).codes == ("C11", "C12")  # the old map is untouched


def test_roots_missing_from_the_map_are_left_out() -> None:
    menus = PlaceMenus(AREAS)
    level = menus.roots(("R1", "GONE", "BKO"))
    assert level.codes == ("R1", "BKO")
    assert menus.roots(()).codes == () and menus.roots(()).rank == 1


def test_an_area_map_keeps_its_menus_and_cannot_change() -> None:
    area_map = AreaMap(AREAS)
    assert area_map == AREAS and isinstance(area_map, dict)
    assert place_menus(area_map) is area_map.menus is area_map.menus
    assert place_menus(AREAS) is not place_menus(AREAS)  # a plain dict may change: no memo
    node = AREAS["R1"]
    for change in (
        lambda m: m.__setitem__("X", node),
        lambda m: m.__delitem__("R1"),
        lambda m: m.update({"X": node}),
        lambda m: m.setdefault("X", node),
        lambda m: m.pop("R1"),
        lambda m: m.popitem(),
        lambda m: m.clear(),
    ):
        with pytest.raises(TypeError):
            change(area_map)
    with pytest.raises(TypeError):
        area_map |= {"X": node}
    assert area_map == AREAS
    mutable = dict(area_map)
    mutable["X"] = node
    assert "X" not in area_map


def test_an_area_map_pickles_and_copies() -> None:
    area_map = AreaMap(AREAS)
    area_map.menus.children("R1", 3)
    for again in (pickle.loads(pickle.dumps(area_map)), copy.copy(area_map)):
        assert type(again) is AreaMap and again == area_map
        assert again.menus.children("R1", 3) == area_map.menus.children("R1", 3)
    assert copy.deepcopy(area_map) == area_map


def _walk(flow: Flow, ctx: Context, texts: list[str]) -> list[StepResult]:
    result = start(flow, ctx)
    results = [result]
    for text in texts:
        result = step(flow, result.state, Input("text", text), ctx)
        results.append(result)
    return results


def test_the_engine_answers_the_same_with_an_area_map(bundle: Bundle, known: Context) -> None:
    """Place answers give the same prompts, states and effects with either kind of map."""
    demo = bundle.flows["demo"]
    scripts = [  # "1" (theft) leads to the place question
        ["1", "1", "1", "1"],
        ["1", "2", "3"],
        ["1", "3", "9", "9", "1", "1"],
        ["1", "Kayes", "kita", "SEFETO"],
        ["1", "bamako", "commune iv"],
        ["1", "3", "unknown"],
        ["1", "4"],
        ["1", "x", "R1", "C12", "K121"],
    ]
    shared = replace(known, areas=AreaMap(AREAS))
    for script in scripts:
        plain_results = _walk(demo, known, script)
        assert plain_results[1].state.node == "place"
        assert _walk(demo, shared, script) == plain_results
