"""Fixtures for routing tests (helpers are in support.py).

Database tests use the ``settings`` fixture of tests/conftest.py, so they run on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from citoyen.runtime import Runtime
from citoyen.services import queues
from tests.dialog import ready_runtime


@pytest.fixture(autouse=True)
def _fresh_routers() -> Iterator[None]:
    """Each test loads the configuration it uses (tests may point runtimes at other folders)."""
    queues.clear_routers()
    yield
    queues.clear_routers()


@pytest.fixture
def runtime(settings: Any) -> Runtime:
    """A migrated runtime with the shipped areas, the shipped stakeholders synced and installed."""
    rt = ready_runtime(settings)
    queues.sync_from_settings(rt)
    return rt
