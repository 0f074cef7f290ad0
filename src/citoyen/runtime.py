"""What every face of the service (web, CLI, worker, bot) needs, built once per process.

A :class:`Runtime` bundles the settings, the database engine, the validated flows and texts, and
the vault for contact identifiers; faces ask it for services instead of wiring them themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy.engine import Engine

from citoyen import db
from citoyen.config import Settings, get_settings
from citoyen.services.privacy import Vault


@dataclass
class Runtime:
    settings: Settings
    engine: Engine = field(init=False)

    def __post_init__(self) -> None:
        self.settings.ensure_instance_dir()
        self.engine = db.get_engine(self.settings.resolved_database_url)

    @cached_property
    def bundle(self) -> Any:
        """Validated flows and texts; raises FlowError (with every problem) when broken."""
        from citoyen.services.flows import get_bundle

        return get_bundle(self.settings.flows_dir, self.settings.locales_dir)

    @cached_property
    def router(self) -> Any:
        """Validated stakeholders and routing rules, registered for this runtime's database.

        Raises RoutingError (with every problem) when broken: like broken flows, broken routing
        stops the service at start rather than misrouting a concern later.
        """
        from citoyen.services import queues

        return queues.install(self)

    @cached_property
    def vault(self) -> Vault:
        return Vault(self.settings.effective_data_key())

    @cached_property
    def conversations(self) -> Any:
        from datetime import timedelta

        from citoyen.services.conversations import ConversationService, InboundLimit

        limit = InboundLimit(
            self.settings.inbound_limit, timedelta(seconds=self.settings.inbound_window_seconds)
        )
        return ConversationService(self.engine, self.bundle, self.vault, limit)

    def migrate(self) -> None:
        db.upgrade(self.settings.resolved_database_url)

    def needs_migration(self) -> bool:
        url = self.settings.resolved_database_url
        return db.current_revision(self.engine) != db.head_revision(url)


def build_runtime(settings: Settings | None = None) -> Runtime:
    return Runtime(settings or get_settings())
