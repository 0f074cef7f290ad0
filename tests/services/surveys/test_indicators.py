"""The indicator's maths against values computed by hand, and its roll-up over the area tree.

Hand computations (docs/surveys.md gives the formulas):

- Wilson 95% for 7/10: p = 0.7, z^2 = 3.8415; centre = (0.7 + 0.19207) / 1.38415 = 0.64450;
  half-width = 1.95996 * sqrt(0.021 + 0.0096037) / 1.38415 = 0.24773 -> [0.3968, 0.8922].
- 0/10 -> [0, 0.2775]; 10/10 -> [0.7225, 1]; 50/100 -> [0.4038, 0.5962] (published tables).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.models import Area, Contact, Conversation, SurveyAnswer, SurveyInvitation, SurveyRun
from citoyen.services.surveys.indicators import (
    COUNTRY,
    AreaRef,
    Observation,
    compute,
    period_of,
    previous_period,
    series,
    wilson,
)
from tests.services.surveys.conftest import definition

SAFE = ("very_safe", "fairly_safe")
EXCLUDED = ("dont_know",)


@pytest.mark.parametrize(
    ("x", "n", "low", "high"),
    [
        (7, 10, 0.3968, 0.8922),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (50, 100, 0.4038, 0.5962),
    ],
)
def test_wilson_interval_matches_hand_values(x: int, n: int, low: float, high: float) -> None:
    got = wilson(x, n)
    assert got[0] == pytest.approx(low, abs=5e-5)
    assert got[1] == pytest.approx(high, abs=5e-5)


def test_wilson_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        wilson(1, 0)
    with pytest.raises(ValueError):
        wilson(11, 10)


def test_periods_in_bamako_time() -> None:
    moment = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Africa/Bamako")
    assert period_of(moment, "month", zone) == "2026-11"
    assert period_of(moment, "week", zone) == "2026-W49"
    assert previous_period("2026-01", "month") == "2025-12"
    assert previous_period("2026-W01", "week") == "2025-W52"
    assert previous_period("2027-W01", "week") == "2026-W53"


COMMUNE_I = {
    "commune": AreaRef("C1", "Commune I", "commune"),
    "cercle": AreaRef("BKO", "Bamako", "cercle"),
    "region": AreaRef("BKO", "Bamako", "region"),
    "national": COUNTRY,
}
COMMUNE_II = {**COMMUNE_I, "commune": AreaRef("C2", "Commune II", "commune")}


def _obs(areas: dict, period: str, **answers: int) -> list[Observation]:
    return [Observation(areas, period, key) for key, k in answers.items() for _ in range(k)]


def test_share_interval_change_and_suppression_by_hand() -> None:
    observations = [
        # October, Commune I: 7 safe of 12 counted; 2 "never alone" count as not safe;
        # 3 "don't know" are left out of n.
        *_obs(
            COMMUNE_I,
            "2026-10",
            very_safe=4,
            fairly_safe=3,
            bit_unsafe=2,
            very_unsafe=1,
            never_alone=2,
            dont_know=3,
        ),
        # November, Commune I: 8 of 10.
        *_obs(COMMUNE_I, "2026-11", very_safe=3, fairly_safe=5, never_alone=2),
        # November, Commune II: 5 answers only -> suppressed.
        *_obs(COMMUNE_II, "2026-11", very_safe=5),
    ]
    cells = compute(observations, "commune", "month", safe=SAFE, excluded=EXCLUDED, min_n=10)
    by = {(c.area_code, c.period): c for c in cells}
    october, november = by[("C1", "2026-10")], by[("C1", "2026-11")]
    assert (october.n, october.safe, october.excluded) == (12, 7, 3)
    assert october.share == pytest.approx(7 / 12)
    assert october.change is None  # no September
    assert (november.n, november.safe) == (10, 8)
    assert november.share == pytest.approx(0.8)
    assert november.change == pytest.approx(0.8 - 7 / 12)
    # Wilson 8/10 by hand: centre (0.8 + 0.19207)/1.38415 = 0.71682, half 0.22330.
    assert november.low == pytest.approx(0.4902, abs=5e-4)
    assert november.high == pytest.approx(0.9433, abs=5e-4)
    small = by[("C2", "2026-11")]
    assert small.suppressed and small.n == 5
    assert small.share is None and small.low is None and small.high is None and small.change is None

    # Rolled up to the cercle (here the Bamako district), November has 15 answers, 13 safe.
    cercle = compute(observations, "cercle", "month", safe=SAFE, excluded=EXCLUDED, min_n=10)
    nov = next(c for c in cercle if c.period == "2026-11")
    assert (nov.area_code, nov.n, nov.safe) == ("BKO", 15, 13)
    assert nov.change == pytest.approx(13 / 15 - 7 / 12)
    national = compute(observations, "national", "month", safe=SAFE, excluded=EXCLUDED, min_n=10)
    assert [(c.period, c.n, c.safe) for c in national] == [("2026-10", 12, 7), ("2026-11", 15, 13)]


def test_change_is_withheld_when_the_previous_period_was_suppressed() -> None:
    observations = [
        *_obs(COMMUNE_I, "2026-10", very_safe=3),
        *_obs(COMMUNE_I, "2026-11", very_safe=6, very_unsafe=6),
    ]
    [october, november] = compute(
        observations, "commune", "month", safe=SAFE, excluded=EXCLUDED, min_n=10
    )
    assert october.suppressed and not november.suppressed
    assert november.share == pytest.approx(0.5) and november.change is None


def _answer(
    session: Session,
    run: SurveyRun | None,
    contact_id: int,
    answer: str,
    when: datetime,
) -> None:
    """A completed survey conversation and its answer; invited by ``run`` (None: by keyword)."""
    contact = session.get(Contact, contact_id)
    conv = Conversation(
        contact_id=contact_id,
        channel="sms",
        flow_id="perceived_safety",
        flow_version="v1",
        node="thanks",
        status="completed",
        started_at=when,
        updated_at=when,
    )
    session.add(conv)
    session.flush()
    if run is not None:
        session.add(
            SurveyInvitation(
                run_id=run.id,
                survey=run.survey,
                contact_id=contact_id,
                channel="sms",
                status="completed",
                conversation_id=conv.id,
                invited_at=when,
                send_at=when,
                expires_at=when,
            )
        )
    session.add(
        SurveyAnswer(
            conversation_id=conv.id,
            contact_id=contact_id,
            flow_id="perceived_safety",
            flow_version="v1",
            question="safe_after_dark",
            answer=answer,
            area_id=contact.area_id,
            created_at=when,
        )
    )


def test_series_rolls_answers_up_the_area_tree(runtime) -> None:
    """Answers stored by area: a Bamako commune, a commune of a cercle, a region only."""
    with Session(runtime.engine) as session:
        cercle_commune = _commune_under_cercle(session)
        region = session.get(Area, session.get(Area, cercle_commune.parent_id).parent_id)
    when = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    plan = (
        [("ML-BKO.commune-i", "very_safe")] * 6
        + [("ML-BKO.commune-i", "very_unsafe")] * 4
        + [(cercle_commune.code, "fairly_safe")] * 3
        + [(region.code, "bit_unsafe")] * 2
        + [(None, "dont_know")]
    )
    with write_session(runtime.engine) as session:
        run = SurveyRun(survey="test_survey", key="k", flow_id="perceived_safety")
        other = SurveyRun(survey="another", key="k", flow_id="perceived_safety")
        session.add_all([run, other])
        session.flush()
        for i, (area, answer) in enumerate(plan):
            cid = add_contact_in(session, runtime, f"+2237610{i:04d}", area)
            _answer(session, run, cid, answer, when)
        # Another survey's answer, and an answer given by keyword (no invitation): not counted.
        cid = add_contact_in(session, runtime, "+22376109999", "ML-BKO.commune-i")
        _answer(session, other, cid, "very_safe", when)
        cid = add_contact_in(session, runtime, "+22376109998", "ML-BKO.commune-i")
        _answer(session, None, cid, "very_safe", when)
    survey = definition()
    with Session(runtime.engine) as session:
        communes = series(session, survey, "commune", "month", min_n=1)
        regions = series(session, survey, "region", "month", min_n=1)
        national = series(session, survey, "national", "month", min_n=1)
    by = {c.area_code: c for c in communes}
    assert (by["ML-BKO.commune-i"].n, by["ML-BKO.commune-i"].safe) == (10, 6)
    assert (by[cercle_commune.code].n, by[cercle_commune.code].safe) == (3, 3)
    assert region.code not in by  # known at region level only: not a commune's answer
    regional = {c.area_code: c for c in regions}
    assert (regional[region.code].n, regional[region.code].safe) == (5, 3)
    assert regional["ML-BKO"].n == 10
    [country] = national
    assert (country.n, country.safe, country.excluded) == (15, 9, 1)
    with Session(runtime.engine) as session:
        default = series(session, survey, "commune", "month")  # min_n 10 from the definition
    flags = {c.area_code: c.suppressed for c in default}
    assert flags == {"ML-BKO.commune-i": False, cercle_commune.code: True}


def _commune_under_cercle(session: Session) -> Area:
    for area in session.exec(select(Area).where(Area.level == "commune").order_by(Area.code)):
        parent = session.get(Area, area.parent_id)
        if parent is not None and parent.level == "cercle":
            return area
    raise AssertionError("no commune under a cercle in the shipped areas")


def add_contact_in(session: Session, runtime, number: str, area_code: str | None) -> int:
    from citoyen.services.contacts import get_or_create_contact

    contact, _ = get_or_create_contact(session, runtime.vault, number, datetime.now(UTC))
    contact.survey_consent = True
    if area_code is not None:
        contact.area_id = session.exec(select(Area.id).where(Area.code == area_code)).one()
    session.flush()
    return contact.id
