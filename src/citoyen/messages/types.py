"""The neutral message types: what a channel hands the conversation service, and what it gets back.

A channel adapter builds an :class:`Inbound` from a provider's request; the conversation service
answers with a :class:`Reply` (the engine's prompts, the language and the values texts need),
which the channel renders for its provider (:mod:`citoyen.messages.render`). Neither knows a
database or a provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from citoyen.engine.types import Input, Option, Prompt, StepResult, deep_copy


@dataclass
class Inbound:
    """A neutral inbound event built by a channel adapter."""

    channel: str  # sms | voice | telegram
    address: str  # tel:+223... or telegram:ID (or a raw number)
    input: Input
    provider_id: str | None = None  # MessageSid, CallSid:step, update_id: the dedupe key
    # The flow a new conversation runs, when the server chose it (an outbound survey call);
    # None: the flows' triggers choose.
    flow_id: str | None = None


@dataclass
class Reply:
    """What to tell the citizen, in neutral form, plus the values texts may need."""

    prompts: list[Prompt]
    language: str
    params: dict[str, Any] = field(default_factory=dict)
    status: str = "completed"
    conversation_id: int | None = None
    contact_alias: str | None = None
    duplicate: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The reply as stored with the inbound message (all but ``duplicate``)."""
        return {
            "prompts": [p.to_dict() for p in self.prompts],
            "language": self.language,
            "params": deep_copy(self.params),
            "status": self.status,
            "conversation_id": self.conversation_id,
            "contact_alias": self.contact_alias,
        }

    @classmethod
    def of_step(
        cls,
        result: StepResult,
        language: str,
        params: dict[str, Any],
        conversation_id: int | None,
        contact_alias: str,
    ) -> Reply:
        """The reply to a step of conversation ``conversation_id`` of the contact staff call
        ``contact_alias`` (``Citoyen 4821``)."""
        return cls(
            prompts=result.prompts,
            language=language,
            params=params,
            status=result.state.status,
            conversation_id=conversation_id,
            contact_alias=contact_alias,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, duplicate: bool = False) -> Reply:
        prompts = [
            Prompt(**{**p, "options": tuple(Option(**o) for o in p.get("options", ()))})
            for p in data["prompts"]
        ]
        return cls(**{**data, "prompts": prompts, "duplicate": duplicate})
