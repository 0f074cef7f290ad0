"""The flows and texts a process serves, and the versions conversations are pinned to.

Flows are loaded and validated once per process (a broken flow directory stops the service at
start with the validator's messages, never mid-conversation). Each flow version a conversation
starts on is stored in ``flow_versions`` so the conversation can finish on it after the file
changed and the service restarted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from citoyen.engine import Flow, load_bundle
from citoyen.models import FlowVersion

_bundles: dict[tuple[str, str], Any] = {}


def get_bundle(flows_dir: Path, locales_dir: Path, *, reload: bool = False) -> Any:
    """The validated flows, settings and catalogue for these folders (cached per process)."""
    key = (str(Path(flows_dir).resolve()), str(Path(locales_dir).resolve()))
    if reload or key not in _bundles:
        _bundles[key] = load_bundle(Path(flows_dir), Path(locales_dir))
    return _bundles[key]


def clear_cache() -> None:
    _bundles.clear()


@dataclass
class PinnedFlows:
    """Looks up a flow by id and version: the current file first, then stored versions."""

    bundle: Any

    def current(self, flow_id: str) -> Flow:
        return self.bundle.flows[flow_id]

    def pin(self, session: Session, flow: Flow) -> None:
        """Store this version's definition if it is not stored yet."""
        exists = session.exec(
            select(FlowVersion.id).where(
                FlowVersion.flow_id == flow.id, FlowVersion.version == flow.version
            )
        ).first()
        if exists is None:
            session.add(
                FlowVersion(flow_id=flow.id, version=flow.version, definition=flow.to_definition())
            )
            session.flush()

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
