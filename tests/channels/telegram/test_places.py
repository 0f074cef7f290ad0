"""Nearest area from coordinates, and the shipped area points (data/area-points.csv)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from sqlmodel import Session, select

from citoyen.models import Area
from citoyen.runtime import Runtime
from citoyen.services.areas.names import iso_regions
from citoyen.services.places import (
    MAX_DISTANCE_KM,
    haversine_km,
    load_area_points,
    nearest_area,
    points_csv_path,
    read_area_points,
    valid_coordinates,
)

BAMAKO_COMMUNES = [f"ML-BKO.commune-{n}" for n in ("i", "ii", "iii", "iv", "v", "vi")]


def test_haversine_known_distances() -> None:
    assert haversine_km(12.65, -8.0, 12.65, -8.0) == 0.0
    # One degree of latitude is about 111.2 km anywhere.
    assert haversine_km(12.0, -8.0, 13.0, -8.0) == pytest.approx(111.2, abs=0.2)
    # Bamako - Tombouctou, about 710 km as the crow flies.
    assert haversine_km(12.65, -8.0, 16.773, -3.007) == pytest.approx(710, rel=0.03)
    assert haversine_km(1, 2, 3, 4) == pytest.approx(haversine_km(3, 4, 1, 2))


@pytest.mark.parametrize(
    ("lat", "lon", "ok"),
    [
        (12.6, -8.0, True),
        (90, 180, True),
        (91, 0, False),
        (0, -181, False),
        (math.nan, 0, False),
        (math.inf, 0, False),
        (True, 0, False),
        ("12.6", -8.0, False),
        (None, None, False),
    ],
)
def test_valid_coordinates(lat: object, lon: object, ok: bool) -> None:
    assert valid_coordinates(lat, lon) is ok


def test_shipped_points_cover_every_region_and_bamako_commune() -> None:
    points = {p.code: p for p in read_area_points()}
    regions = {r.code for r in iso_regions() if r.level == "region"}
    assert regions | set(BAMAKO_COMMUNES) == set(points)
    for point in points.values():  # all inside Mali's bounding box
        assert 10.1 <= point.latitude <= 25.0 and -12.3 <= point.longitude <= 4.3, point
    with points_csv_path().open(encoding="utf-8") as fh:
        assert csv.DictReader(fh).fieldnames[:4] == ["code", "name", "latitude", "longitude"]


def test_bad_points_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "points.csv"
    path.write_text("code,latitude,longitude\nML-1,14.4,-11.4\nML-2,north,-7.5\n")
    with pytest.raises(ValueError, match=r"points\.csv:3"):
        read_area_points(path)
    path.write_text("code,latitude,longitude\nML-1,140.4,-11.4\n")
    with pytest.raises(ValueError, match=r"points\.csv:2"):
        read_area_points(path)


def _points(runtime: Runtime) -> dict[str, tuple[float | None, float | None]]:
    with Session(runtime.engine) as session:
        return {a.code: (a.latitude, a.longitude) for a in session.exec(select(Area)).all()}


def test_load_points_fills_missing_never_overwrites(runtime: Runtime) -> None:
    with Session(runtime.engine) as session:
        for area in session.exec(select(Area)).all():
            area.latitude = area.longitude = None
        gao = session.exec(select(Area).where(Area.code == "ML-7")).one()
        gao.latitude, gao.longitude = 16.3, -0.05  # corrected by an administrator
        session.commit()
    with Session(runtime.engine) as session:
        assert load_area_points(session) == 15
        session.commit()
    points = _points(runtime)
    assert points["ML-7"] == (16.3, -0.05)
    assert points["ML-BKO.commune-iv"] == (12.635, -8.05)
    assert points["ML-2.kati"] == (None, None)  # no point shipped for cercles
    with Session(runtime.engine) as session:
        assert load_area_points(session) == 0  # idempotent


def test_load_points_skips_codes_the_database_lacks(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "points.csv"
    path.write_text("code,latitude,longitude\nML-NOWHERE,14.0,-5.0\n")
    with Session(runtime.engine) as session:
        assert load_area_points(session, path) == 0


@pytest.mark.parametrize(
    ("lat", "lon", "code"),
    [
        (12.6374, -8.0402, "ML-BKO.commune-iv"),  # Lafiabougou
        (12.6612, -7.9662, "ML-BKO.commune-i"),  # Banconi
        (12.5967, -7.9445, "ML-BKO.commune-vi"),  # Faladié
        (12.6247, -7.9931, "ML-BKO.commune-v"),  # Badalabougou
        (13.45, -6.27, "ML-4"),  # Ségou
        (16.27, -0.04, "ML-7"),  # Gao
        (18.44, 1.41, "ML-8"),  # Kidal
        (11.32, -5.67, "ML-3"),  # Sikasso
    ],
)
def test_nearest_area(runtime: Runtime, lat: float, lon: float, code: str) -> None:
    with Session(runtime.engine) as session:
        load_area_points(session)
        found = nearest_area(session, lat, lon)
    assert found is not None
    assert found.code == code
    assert found.distance_km < 10


def test_nothing_near_or_nothing_known(runtime: Runtime) -> None:
    with Session(runtime.engine) as session:
        for area in session.exec(select(Area)).all():
            area.latitude = area.longitude = None
        session.flush()
        assert nearest_area(session, 12.6374, -8.0402) is None  # no points loaded
        load_area_points(session)
        assert nearest_area(session, 48.8566, 2.3522) is None  # Paris
        assert nearest_area(session, math.nan, 0.0) is None
        far = nearest_area(session, 14.69, -17.44, max_distance_km=10_000)  # Dakar, no limit
        assert far is not None and far.code == "ML-1"
        assert far.distance_km > MAX_DISTANCE_KM
