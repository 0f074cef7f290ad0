"""The flows and texts a process serves, and the versions conversations are pinned to.

Flows are loaded and validated once per process (a broken flow directory stops the service at
start with the validator's messages, never mid-conversation). Each flow version a conversation
starts on is stored in ``flow_versions`` so the conversation can finish on it after the file
changed and the service restarted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from citoyen.db import insert_or_skip
from citoyen.engine import Flow, load_bundle
from citoyen.engine.layout import Layout
from citoyen.models import FlowVersion, utcnow

log = logging.getLogger(__name__)

_bundles: dict[tuple[str, str, str], Any] = {}


def get_bundle(
    flows_dir: Path, locales_dir: Path, *, config_dir: Path | None = None, reload: bool = False
) -> Any:
    """The validated flows, settings and catalogue for these folders (cached per process).

    ``config_dir``: the configuration folder (None: ``config/`` beside the flows folder). Each
    configuration file still read from the flows folder is logged as a warning when the bundle
    is loaded, so a deployment on the layout before sees it in its service's log at start.
    """
    layout = Layout.of(flows_dir, config_dir)
    key = tuple(str(Path(d).resolve()) for d in (flows_dir, locales_dir, layout.config_dir))
    if reload or key not in _bundles:
        for problem in layout.problems():
            if problem.level == "warning":
                log.warning("%s", problem)
        _bundles[key] = load_bundle(
            Path(flows_dir), Path(locales_dir), config_dir=layout.config_dir
        )
    return _bundles[key]


def layout_of(settings: Any) -> Layout:
    """A deployment's flows folder and configuration folder (``CITOYEN_FLOWS_DIR``,
    ``CITOYEN_CONFIG_DIR``): where each configuration file is read from, and the move of the
    ones still in the flows folder (``citoyen flows migrate-layout``)."""
    return Layout.of(settings.flows_dir, settings.resolved_config_dir)


def clear_cache() -> None:
    _bundles.clear()


@dataclass
class PinnedFlows:
    """Looks up a flow by id and version: the current file first, then stored versions."""

    bundle: Any

    def current(self, flow_id: str) -> Flow:
        return self.bundle.flows[flow_id]

    def pin(self, session: Session, flow: Flow) -> None:
        """Store this version's definition if it is not stored yet.

        ``ON CONFLICT DO NOTHING``: the first conversations on a new version may start in two
        transactions at once (two web workers, a survey wave and a webhook); the second waits
        for the first's row and keeps it, where a plain INSERT failed on the unique key."""
        if self._lookup(session, flow):
            return
        session.execute(
            insert_or_skip(session, FlowVersion.__table__, ["flow_id", "version"]).values(
                flow_id=flow.id,
                version=flow.version,
                definition=flow.to_definition(),
                created_at=utcnow(),
            )
        )

    @staticmethod
    def _lookup(conn: Session | sa.Connection, flow: Flow) -> bool:
        return (
            conn.execute(
                sa.select(FlowVersion.id).where(
                    FlowVersion.flow_id == flow.id, FlowVersion.version == flow.version
                )
            ).first()
            is not None
        )

    def get(self, session: Session, flow_id: str, version: str) -> Flow | None:
        flow = self.bundle.flows.get(flow_id)
        if flow is not None and flow.version == version:
            return flow
        row = session.exec(
            select(FlowVersion).where(
                FlowVersion.flow_id == flow_id, FlowVersion.version == version
            )
        ).first()
        if row is None:
            return None
        return Flow.from_definition(row.definition)
