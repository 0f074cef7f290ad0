"""First start: an empty database becomes a working service in one step.

Migrates, loads the shipped areas, and creates an administrator account with a random password
shown once, so a newcomer can log in to the admin without reading any more docs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from citoyen.db import write_session
from citoyen.services.areas.seeding import seed_shipped_areas
from citoyen.services.places import load_area_points
from citoyen.services.queues import sync_from_settings
from citoyen.services.users import count_users, create_user, generate_password

FIRST_ADMIN = "admin@citoyen.local"


@dataclass
class SetupResult:
    migrated: bool
    areas_created: int
    admin_email: str | None = None
    admin_password: str | None = None


def ensure_ready(runtime: Any) -> SetupResult:
    """Bring the database to the current schema and seed what an empty one lacks."""
    migrated = runtime.needs_migration()
    if migrated:
        runtime.migrate()
    with write_session(runtime.engine) as session:
        areas = seed_shipped_areas(session)
        load_area_points(session)  # chief towns, for "nearest area" from a shared location
    # Stakeholders from config/stakeholders.yaml, on-call addresses encrypted (no-op when unchanged).
    sync_from_settings(runtime)
    with write_session(runtime.engine) as session:
        if count_users(session) == 0:
            password = generate_password()
            create_user(session, FIRST_ADMIN, "admin", password)
            return SetupResult(migrated, areas, FIRST_ADMIN, password)
    return SetupResult(migrated, areas)
