"""Gateway phones' events into conversations and the outbox.

The channel (:mod:`citoyen.channels.gateway_webhook`) verifies and reads the event without the
database; here a citizen's SMS becomes a conversation input and a delivery report reaches its
outbox row. The reply to an SMS cannot travel in the webhook's answer, so it is queued in the
outbox in the input's own transaction (:class:`citoyen.services.sms_replies.QueueSmsReply`),
keyed by the event: a redelivered event, also one arriving twice at once, gets the stored reply and stores nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from citoyen.channels.gateway_webhook import ID_PATTERN, STATUS_EVENTS, BadRequest
from citoyen.messages.types import Inbound, Reply
from citoyen.services.delivery import record_delivery
from citoyen.services.sms_replies import QueueSmsReply

log = logging.getLogger(__name__)


def handle_received(runtime: Any, inbound: Inbound) -> Reply:
    hook = QueueSmsReply(runtime.bundle.catalog, inbound.provider_id or "", datetime.now(UTC))
    return runtime.conversations.handle(inbound, on_reply=hook)


def handle_status(runtime: Any, event: str, payload: dict[str, Any]) -> None:
    message_id = payload.get("messageId")
    if not isinstance(message_id, str) or not ID_PATTERN.fullmatch(message_id):
        raise BadRequest("missing or malformed messageId")
    status = STATUS_EVENTS[event]
    row = record_delivery(runtime, message_id, status, None)
    if row is None:
        log.info("sms gateway %s for a message not in the outbox: ignored", event)
    else:
        log.info("outbox %s: delivery %s (sms gateway)", row.id, status)
