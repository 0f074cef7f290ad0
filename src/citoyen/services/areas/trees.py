"""The area tree routing needs (:class:`~citoyen.routing.AreaTree`), from the shipped sample or
from the database.

Validation needs the tree without a deployment's database (``citoyen flows check`` runs
anywhere), so :func:`shipped_area_tree` builds it from the shipped sample exactly as a first start
would seed it; at run time :func:`database_area_tree` reads the deployment's areas.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from citoyen.models import Area
from citoyen.routing import AreaInfo, AreaTree
from citoyen.services.areas.menus import load_area_context
from citoyen.services.areas.seeding import seed_shipped_areas


@lru_cache(maxsize=1)
def shipped_area_tree() -> AreaTree:
    """The areas a first start creates from the shipped sample (``data/mali-areas.csv``).

    Built by running the real seeding (:func:`~citoyen.services.areas.seeding.seed_shipped_areas`)
    into a private in-memory SQLite database, so the codes are the ones a deployment gets, by
    construction rather than by a second implementation of the code rules.
    """
    engine = sa.create_engine("sqlite://")
    try:
        Area.__table__.create(engine)  # type: ignore[attr-defined]
        with Session(engine) as session:
            seed_shipped_areas(session)
            rows = session.execute(
                sa.select(Area.id, Area.code, Area.name, Area.level, Area.parent_id)
            ).all()
    finally:
        engine.dispose()
    codes = {row.id: row.code for row in rows}
    return AreaTree(
        {
            row.code: AreaInfo(row.code, row.name, row.level, codes.get(row.parent_id))
            for row in rows
        }
    )


# (snapshot dict, tree built from it); the dict is compared by identity, so it is kept alive here.
_trees: list[tuple[Mapping[str, Any], AreaTree]] = []
_trees_lock = threading.Lock()
_TREES_KEPT = 4


def database_area_tree(session: Any, *, max_age: float = 0.0) -> AreaTree:
    """The deployment's areas (cached per database by :func:`load_area_context`; ``max_age`` as
    there). The tree is built again only when the areas changed: building it from some
    thousand areas cost more than routing a report."""
    nodes, _roots = load_area_context(session, max_age=max_age)
    with _trees_lock:
        for cached_nodes, tree in _trees:
            if cached_nodes is nodes:
                return tree
    tree = AreaTree.from_nodes(nodes)
    with _trees_lock:
        # One per database in use (a process normally has one): the oldest goes first.
        _trees[:] = [*_trees[-(_TREES_KEPT - 1) :], (nodes, tree)]
    return tree
