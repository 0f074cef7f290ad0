"""Places from coordinates: the nearest known area to a point a citizen shared.

A Telegram user can share their location instead of walking down the region > cercle > commune
menus. We have no boundaries (polygons) of Mali's areas, only one representative point per area
(its chief town, ``Area.latitude``/``Area.longitude``), so "where is this?" is answered with the
area whose point is nearest by great-circle distance. That is approximate by design: near a
border the nearest chief town may be across it, and an area without a point can never be picked.
The shipped points (``data/area-points.csv``) are the chief towns of the regions and the centres
of Bamako's six communes; deployments may add finer points (cercles, communes) to the same file.

Points farther than :data:`MAX_DISTANCE_KM` from every known point are "nowhere we know": the
caller falls back to the menus instead of filing a concern under a place hundreds of kilometres
away.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session, select

from citoyen.config import PROJECT_ROOT
from citoyen.models import Area

log = logging.getLogger(__name__)

POINTS_CSV = "area-points.csv"
EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)
# Mali's largest regions reach a few hundred kilometres from their chief town (Taoudénit,
# Kidal): beyond this distance from every known point the location is not one of ours.
MAX_DISTANCE_KM = 400.0


@dataclass(frozen=True)
class AreaPoint:
    """The representative point of one area, as shipped in ``data/area-points.csv``."""

    code: str
    latitude: float
    longitude: float


@dataclass(frozen=True)
class NearestArea:
    code: str
    name: str
    distance_km: float


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two points given in degrees, in kilometres."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def valid_coordinates(latitude: object, longitude: object) -> bool:
    """True for finite numbers within the globe's ranges (provider data is checked, not trusted)."""
    if isinstance(latitude, bool) or isinstance(longitude, bool):
        return False
    if not isinstance(latitude, int | float) or not isinstance(longitude, int | float):
        return False
    if not (math.isfinite(latitude) and math.isfinite(longitude)):
        return False
    return -90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0


def nearest_area(
    session: Session,
    latitude: float,
    longitude: float,
    max_distance_km: float = MAX_DISTANCE_KM,
) -> NearestArea | None:
    """The area whose point is nearest to (latitude, longitude), or None.

    None when the coordinates are invalid, when no area has a point yet (nothing seeded), or when
    the nearest point is farther than ``max_distance_km``. Ties go to the lower code so the answer
    never depends on row order.
    """
    if not valid_coordinates(latitude, longitude):
        return None
    rows = session.exec(
        select(Area.code, Area.name, Area.latitude, Area.longitude).where(
            Area.latitude.is_not(None), Area.longitude.is_not(None)
        )
    ).all()
    best: NearestArea | None = None
    for code, name, lat, lon in rows:
        distance = haversine_km(latitude, longitude, lat, lon)
        if best is None or (distance, code) < (best.distance_km, best.code):
            best = NearestArea(code=code, name=name, distance_km=distance)
    if best is None or best.distance_km > max_distance_km:
        return None
    return best


def points_csv_path() -> Path:
    """The shipped points file in the project's ``data/`` folder."""
    for base in (PROJECT_ROOT, Path.cwd()):
        path = base / "data" / POINTS_CSV
        if path.is_file():
            return path
    raise FileNotFoundError(f"data/{POINTS_CSV} not found in {PROJECT_ROOT} or {Path.cwd()}")


def read_area_points(path: str | Path | None = None) -> list[AreaPoint]:
    """Rows of a points file (columns ``code``, ``latitude``, ``longitude``; others ignored).

    A bad row is an error naming the file and line: a silently skipped point would only show up
    as a citizen's concern filed under the wrong place.
    """
    path = Path(path) if path is not None else points_csv_path()
    points: list[AreaPoint] = []
    with path.open(encoding="utf-8", newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            code = (row.get("code") or "").strip()
            try:
                lat = float(row.get("latitude") or "")
                lon = float(row.get("longitude") or "")
            except ValueError:
                raise ValueError(
                    f"{path.name}:{line}: latitude/longitude are not numbers"
                ) from None
            if not code or not valid_coordinates(lat, lon):
                raise ValueError(f"{path.name}:{line}: needs a code and valid coordinates")
            points.append(AreaPoint(code=code, latitude=lat, longitude=lon))
    return points


def load_area_points(session: Session, path: str | Path | None = None) -> int:
    """Give areas that have no point yet the shipped one; return how many were set.

    Never overwrites a point already there (an administrator may have corrected it), so it is
    safe to call at every start. Codes the database does not have (an area a deployment removed
    or never imported) are skipped with a debug line. Flushes; the caller commits.
    """
    points = read_area_points(path)
    by_code = {p.code: p for p in points}
    areas = session.exec(select(Area).where(Area.code.in_(list(by_code)))).all()
    found = {area.code for area in areas}
    for code in sorted(set(by_code) - found):
        log.debug("area point %s: no such area, skipped", code)
    changed = 0
    for area in areas:
        if area.latitude is not None and area.longitude is not None:
            continue
        point = by_code[area.code]
        area.latitude, area.longitude = point.latitude, point.longitude
        changed += 1
    session.flush()
    return changed
