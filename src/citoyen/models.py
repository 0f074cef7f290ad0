"""Database tables.

Datetimes are timezone-aware UTC everywhere: :class:`UTCDateTime` stores them as such on
PostgreSQL and normalises what SQLite gives back, so code never compares naive and aware values.
Contact identifiers (phone numbers, Telegram ids) are never stored in clear: ``address_enc`` holds
the encrypted form and ``address_hash`` a keyed hash used to find the contact again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import JSON, Column, Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator):
    """Timezone-aware UTC datetimes on every backend."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def ts(*, index: bool = False, nullable: bool = False, default: bool = True) -> Any:
    """A UTC timestamp column."""
    kwargs: dict[str, Any] = {"sa_type": UTCDateTime, "nullable": nullable, "index": index}
    if default:
        kwargs["default_factory"] = utcnow
    else:
        kwargs["default"] = None
    return Field(**kwargs)


def json_col(default: Any = dict) -> Any:
    return Field(default_factory=default, sa_column=Column(JSON, nullable=False))


class Area(SQLModel, table=True):
    """Region (or the Bamako district) > cercle > commune > quartier."""

    __tablename__ = "areas"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=120, unique=True, index=True)
    name: str = Field(max_length=200)
    level: str = Field(max_length=20, index=True)  # region | district | cercle | commune | quartier
    parent_id: int | None = Field(default=None, foreign_key="areas.id", index=True)
    pcode: str | None = Field(default=None, max_length=40, unique=True)
    iso_code: str | None = Field(default=None, max_length=10)
    position: int = 0  # order in menus
    # A representative point (the chief town), for "nearest area" from a shared location.
    latitude: float | None = None
    longitude: float | None = None


class Contact(SQLModel, table=True):
    """A citizen, known by channel address, stored encrypted and found by keyed hash."""

    __tablename__ = "contacts"
    id: int | None = Field(default=None, primary_key=True)
    address_hash: str = Field(max_length=64, unique=True, index=True)
    address_enc: str = Field(max_length=500)
    channel: str = Field(max_length=20)  # tel | telegram
    alias: int = Field(index=True)  # "Citoyen 4821": how moderators name the reporter
    language: str | None = Field(default=None, max_length=10)
    area_id: int | None = Field(default=None, foreign_key="areas.id")
    survey_consent: bool | None = None
    opted_out: bool = False
    blocked: bool = False
    created_at: datetime = ts()
    last_seen_at: datetime = ts()
    # Messages to this contact use neutral wording that does not expose them on a shared phone
    # (None: the deployment's CITOYEN_DISCREET setting; see docs/security.md).
    discreet: bool | None = None


class FlowVersion(SQLModel, table=True):
    """A flow definition as a conversation started on it (conversations are pinned to these)."""

    __tablename__ = "flow_versions"
    __table_args__ = (sa.UniqueConstraint("flow_id", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    flow_id: str = Field(max_length=80)
    version: str = Field(max_length=64)
    definition: dict = json_col()
    created_at: datetime = ts()


# A conversation in one of these statuses is open: the contact's next input continues it.
OPEN_CONVERSATION_STATUSES = ("active", "waiting")


class Conversation(SQLModel, table=True):
    """One run of a flow for a contact."""

    __tablename__ = "conversations"
    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contacts.id", index=True)
    channel: str = Field(max_length=20)
    flow_id: str = Field(max_length=80)
    flow_version: str = Field(max_length=64)
    node: str = Field(max_length=120)
    # active waiting completed expired interrupted. Not indexed: every reader finds conversations
    # by contact or by expiry; an index on it led PostgreSQL's generic plans, made while the table
    # was young, to look a conversation up by its status (migration 0009).
    status: str = Field(max_length=20)
    state: dict = json_col()
    # The last menu shown, as [option key, label in the citizen's language] pairs: typed text
    # equal to a label selects that option ("Vol" as well as "2").
    menu: list = json_col(list)
    started_at: datetime = ts()
    updated_at: datetime = ts()
    expires_at: datetime | None = ts(nullable=True, default=False, index=True)
    # The report this conversation adds to (information added, an answer to staff): its
    # messages and attachments join that report (migration 0018).
    report_id: int | None = Field(default=None, foreign_key="reports.id", index=True)


class Message(SQLModel, table=True):
    """Every message in or out. ``provider_id`` is unique per channel: the dedupe key."""

    __tablename__ = "messages"
    __table_args__ = (sa.UniqueConstraint("channel", "provider_id", name="uq_messages_provider"),)
    id: int | None = Field(default=None, primary_key=True)
    contact_id: int | None = Field(default=None, foreign_key="contacts.id", index=True)
    conversation_id: int | None = Field(default=None, foreign_key="conversations.id", index=True)
    channel: str = Field(max_length=20)
    direction: str = Field(max_length=3)  # in | out
    provider_id: str | None = Field(default=None, max_length=120)
    kind: str = Field(default="text", max_length=20)  # text digits choice recording location...
    body: str | None = Field(default=None)
    reply: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = ts()


class Report(SQLModel, table=True):
    """A security concern raised by a citizen."""

    __tablename__ = "reports"
    __table_args__ = (
        # The dashboard's window: counted per category, place and week from the index alone.
        sa.Index("ix_reports_window", "created_at", "category", "area_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=20, unique=True, index=True)
    contact_id: int | None = Field(default=None, foreign_key="contacts.id", index=True)
    # Indexed: a voice call links its recordings to the report of its conversation, and the
    # admin finds the report of an attachment, by this column (migration 0009).
    conversation_id: int | None = Field(default=None, foreign_key="conversations.id", index=True)
    channel: str = Field(max_length=20)
    language: str | None = Field(default=None, max_length=10)
    category: str | None = Field(default=None, max_length=40, index=True)
    urgency: str = Field(default="normal", max_length=20, index=True)
    area_id: int | None = Field(default=None, foreign_key="areas.id", index=True)
    description: str | None = None
    recording_url: str | None = Field(default=None, max_length=500)
    anonymous: bool = True
    callback_ok: bool = False
    incomplete: bool = False
    status: str = Field(default="new", max_length=20, index=True)
    answers: dict = json_col()
    flow_version: str | None = Field(default=None, max_length=64)
    created_at: datetime = ts(index=True)
    updated_at: datetime = ts()
    # Set when a moderator merged this report into another one about the same event: its
    # reporter is then told of the other report's progress (citoyen.services.queues).
    merged_into_id: int | None = Field(default=None, foreign_key="reports.id", index=True)
    # Set when the retention purge removed its free text, recordings and link to the reporter
    # (citoyen.services.retention); its category, place, dates and statuses stay for statistics.
    purged_at: datetime | None = ts(nullable=True, default=False)


class ReportEvent(SQLModel, table=True):
    """One line of a report's timeline: who did what, when and why."""

    __tablename__ = "report_events"
    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="reports.id", index=True)
    kind: str = Field(max_length=40)  # created status_changed routed note reply ...
    from_status: str | None = Field(default=None, max_length=20)
    to_status: str | None = Field(default=None, max_length=20)
    user_id: int | None = Field(default=None, foreign_key="users.id")
    stakeholder_id: int | None = Field(default=None, foreign_key="stakeholders.id")
    note: str | None = None
    data: dict = json_col()
    created_at: datetime = ts()


class SurveyAnswer(SQLModel, table=True):
    """One answer to a survey question, with the flow version it was given under."""

    __tablename__ = "survey_answers"
    __table_args__ = (sa.UniqueConstraint("conversation_id", "question"),)
    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversations.id", index=True)
    contact_id: int = Field(foreign_key="contacts.id", index=True)
    flow_id: str = Field(max_length=80, index=True)
    flow_version: str = Field(max_length=64)
    question: str = Field(max_length=80)
    answer: str = Field(max_length=200)
    area_id: int | None = Field(default=None, foreign_key="areas.id")
    created_at: datetime = ts()


class Stakeholder(SQLModel, table=True):
    """Who acts on reports: a queue with a kind and an area scope."""

    __tablename__ = "stakeholders"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=80, unique=True)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=40)
    area_id: int | None = Field(default=None, foreign_key="areas.id")
    on_call: list = json_col(list)
    active: bool = True
    # Language of the alerts sent to its on-call addresses (None: the default language).
    language: str | None = Field(default=None, max_length=10)


# Columns of queue entries the queue pages filter on (see QueueEntry's indexes).
_ENTRY_FILTERS = (
    "stakeholder_id",
    "report_status",
    "category",
    "urgency",
    "area_id",
    "reported_at",
)


# What the dashboard's SLA figures read of a queue entry besides its date and queue.
_SLA_COLUMNS = ("status", "due_at", "acknowledged_at", "closed_at")


class QueueEntry(SQLModel, table=True):
    """One report in one stakeholder's queue: each stakeholder that must act gets its own.

    ``status``: open (waiting to be taken in hand) -> acknowledged -> closed (the report was
    resolved or closed), or declined (the stakeholder said it is not responsible; the report was
    rerouted). An open entry whose ``due_at`` (creation + the urgency's SLA) passes without an
    acknowledgement is escalated once (``escalated_at``): the next step of its escalation
    ``chain`` gets a new entry with ``escalation_level + 1``.
    """

    __tablename__ = "queue_entries"
    __table_args__ = (
        sa.UniqueConstraint("report_id", "stakeholder_id", name="uq_queue_entry"),
        # The admin's queue pages: keyset pagination on (due_at, id), per stakeholder or all,
        # with the filtered columns in the index so filtering and counting never read the table.
        sa.Index("ix_queue_entries_page", "status", "due_at", "id", *_ENTRY_FILTERS),
        sa.Index(
            "ix_queue_entries_stakeholder_page",
            "stakeholder_id",
            "status",
            "due_at",
            "id",
            *_ENTRY_FILTERS[1:],
        ),
        # The dashboard's window (SLA per week of creation; the reports a coordinator's or
        # agent's queues hold), read from the index alone: all queues, then per queue.
        sa.Index("ix_queue_entries_created", "created_at", *_SLA_COLUMNS),
        sa.Index(
            "ix_queue_entries_scope_created",
            "stakeholder_id",
            "created_at",
            "report_id",
            *_SLA_COLUMNS,
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="reports.id", index=True)
    stakeholder_id: int = Field(foreign_key="stakeholders.id", index=True)
    status: str = Field(default="open", max_length=20, index=True)
    via: str = Field(default="rule", max_length=20)  # rule fallback escalation reroute
    rule_line: int | None = None  # line of the routing rule in config/routing.yaml
    chain: str = Field(default="default", max_length=40)  # escalation chain followed
    escalation_level: int = 0
    escalated_from_id: int | None = Field(default=None, foreign_key="queue_entries.id")
    due_at: datetime = ts(index=True)
    escalated_at: datetime | None = ts(nullable=True, default=False)
    acknowledged_at: datetime | None = ts(nullable=True, default=False)
    acknowledged_by: int | None = Field(default=None, foreign_key="users.id")
    # The staff member of this stakeholder who handles the report (set from the admin).
    assigned_to: int | None = Field(default=None, foreign_key="users.id", index=True)
    closed_at: datetime | None = ts(nullable=True, default=False)
    created_at: datetime = ts()
    updated_at: datetime = ts()
    # The citizen's latest addition to the report ("answer" to a staff message, or "addition"),
    # shown in the queue until staff act on the report (migration 0018).
    citizen_update: str | None = Field(default=None, max_length=20)
    citizen_update_at: datetime | None = ts(nullable=True, default=False)
    # Copies of the report's fields the queue pages filter on, kept equal to the report's by
    # the flush hook below: the pages then filter and sort one table on its own indexes, which
    # stays fast with millions of reports (a join per filter does not).
    report_status: str = Field(default="new", max_length=20)
    category: str | None = Field(default=None, max_length=40)
    urgency: str = Field(default="normal", max_length=20)
    area_id: int | None = Field(default=None, foreign_key="areas.id")
    reported_at: datetime = ts()


class User(SQLModel, table=True):
    """An admin, coordinator, agent or analyst of the web admin."""

    __tablename__ = "users"
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    password_hash: str = Field(max_length=300)
    role: str = Field(max_length=20)  # admin coordinator agent analyst reviewer
    stakeholder_id: int | None = Field(default=None, foreign_key="stakeholders.id")
    # A coordinator sees every queue of this area and below (None: their stakeholder's area).
    area_id: int | None = Field(default=None, foreign_key="areas.id")
    # Language of the admin pages for this user (None: French, the default).
    language: str | None = Field(default=None, max_length=10)
    active: bool = True
    created_at: datetime = ts()
    last_login_at: datetime | None = ts(nullable=True, default=False)
    # Every session carries the version it was opened under; raising it (sign-out, password,
    # role, scope, deactivation, two-factor changes) ends every session of the user at once.
    session_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # Two-factor sign-in (TOTP, RFC 6238): the secret encrypted with the data key; set but not
    # yet enabled while enrolment waits for its first code.
    totp_secret_enc: str | None = Field(default=None, max_length=300)
    totp_enabled_at: datetime | None = ts(nullable=True, default=False)
    # The last 30-second step whose code was accepted: a code is never accepted twice.
    totp_last_step: int | None = None
    # SHA-256 of the unused recovery codes (random, 50 bits each: a slow hash adds nothing).
    recovery_codes: list = json_col(list)


class AuditEvent(SQLModel, table=True):
    """A sensitive action (identity reveal, user change, export...) with who and why."""

    __tablename__ = "audit_events"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int | None = Field(default=None, foreign_key="users.id", index=True)
    action: str = Field(max_length=60)
    target_type: str | None = Field(default=None, max_length=40)
    target_id: int | None = None
    reason: str | None = None
    data: dict = json_col()
    created_at: datetime = ts(index=True)


class Attachment(SQLModel, table=True):
    """A recording, voice note or photo a citizen sent, kept in the project's storage.

    Providers delete their copies (Twilio recordings, Telegram files expire), so the worker
    fetches each one (``status`` pending -> fetched or failed) into the instance folder.
    """

    __tablename__ = "attachments"
    __table_args__ = (sa.UniqueConstraint("channel", "provider_ref", name="uq_attachments_ref"),)
    id: int | None = Field(default=None, primary_key=True)
    report_id: int | None = Field(default=None, foreign_key="reports.id", index=True)
    conversation_id: int | None = Field(default=None, foreign_key="conversations.id", index=True)
    # Indexed, as every column that refers to a contact: SQLite's foreign key checks of a new
    # contact read this table by it (migration 0009).
    contact_id: int | None = Field(default=None, foreign_key="contacts.id", index=True)
    channel: str = Field(max_length=20)
    kind: str = Field(max_length=20)  # recording | voice | photo | document
    provider_ref: str = Field(max_length=500)  # Twilio RecordingSid/URL, Telegram file_id
    content_type: str | None = Field(default=None, max_length=100)
    duration_seconds: int | None = None
    size_bytes: int | None = None
    local_path: str | None = Field(default=None, max_length=500)
    status: str = Field(default="pending", max_length=20, index=True)
    attempts: int = 0
    error: str | None = None
    created_at: datetime = ts()
    fetched_at: datetime | None = ts(nullable=True, default=False)


class Outbox(SQLModel, table=True):
    """A message waiting to be sent by the worker: retried, rate-limited, idempotent.

    ``status``: pending -> sending -> sent (-> delivered / undelivered from provider callbacks),
    or failed (permanent error, or retries exhausted). ``kind`` says why it exists (reply,
    notification, alert, survey...).
    """

    __tablename__ = "outbox"
    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=120, unique=True)
    kind: str = Field(default="reply", max_length=30)
    channel: str = Field(max_length=20)
    contact_id: int | None = Field(default=None, foreign_key="contacts.id", index=True)
    address_enc: str | None = Field(default=None, max_length=500)  # for non-contact recipients
    body: str | None = None
    payload: dict = json_col()
    status: str = Field(default="pending", max_length=20, index=True)  # pending sent failed
    attempts: int = 0
    next_attempt_at: datetime = ts(index=True)
    provider_id: str | None = Field(default=None, max_length=120, index=True)
    delivery_status: str | None = Field(default=None, max_length=20)
    error: str | None = None
    locked_until: datetime | None = ts(nullable=True, default=False)
    # The registration (scheduler_leases) of the worker holding a ``sending`` row: when it is
    # gone the row is due again without waiting for ``locked_until`` (docs/outbox.md).
    claimed_by: str | None = Field(default=None, max_length=40)
    # A survey's window, "08:00-20:00 Africa/Bamako" (services.quiet_hours.spec): the row goes
    # out only inside it, held until the next opening otherwise; None for every other message.
    quiet_hours: str | None = Field(default=None, max_length=60)
    created_at: datetime = ts()
    sent_at: datetime | None = ts(nullable=True, default=False)


class LoginFailure(SQLModel, table=True):
    """A failed sign-in, by keyed hash of the email and of the client address: throttling
    counts these rows, so it holds across web workers and restarts."""

    __tablename__ = "login_failures"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=80, index=True)  # "email:<hmac>" or "ip:<hmac>"
    created_at: datetime = ts(index=True)


class TextChange(SQLModel, table=True):
    """A change to a text citizens read or hear, made by a reviewer in the admin or by a PO
    import: who, when, the text and review state before and after (the files in ``locales/``
    hold the text itself; this is its history)."""

    __tablename__ = "text_changes"
    id: int | None = Field(default=None, primary_key=True)
    language: str = Field(max_length=10, index=True)
    key: str = Field(max_length=120)
    old_text: str | None = None
    new_text: str
    old_review: str | None = Field(default=None, max_length=20)
    new_review: str = Field(max_length=20)
    note: str | None = None
    source: str = Field(max_length=10)  # admin | import
    user_id: int | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = ts()


class VoicePrompt(SQLModel, table=True):
    """A recorded voice prompt of the library: one per language and text key.

    The file lives outside the database, in the prompts folder (``CITOYEN_PROMPTS_DIR``), under a
    name that carries a hash of its content, so a new recording gets a new URL and no cache
    (Twilio's, a CDN's) ever plays the old one. ``text_hash`` is the hash of the text the
    recording says: when the text changes, the recording is stale (citoyen.services.prompts).
    """

    __tablename__ = "voice_prompts"
    __table_args__ = (sa.UniqueConstraint("language", "key", name="uq_voice_prompts_language_key"),)
    id: int | None = Field(default=None, primary_key=True)
    language: str = Field(max_length=10, index=True)
    key: str = Field(max_length=120)
    text_hash: str = Field(max_length=64)
    file_name: str = Field(max_length=200)
    content_type: str = Field(max_length=40)  # audio/wav | audio/mpeg
    duration_ms: int
    size_bytes: int
    source: str = Field(max_length=10)  # upload | phone | import
    user_id: int | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = ts()


class PromptRecorder(SQLModel, table=True):
    """A staff member allowed to record prompts by phone, with the hashed PIN they key in.

    Kept apart from ``users`` so that removing someone's phone access is deleting one row.
    """

    __tablename__ = "prompt_recorders"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", unique=True)
    pin_hash: str = Field(max_length=300)
    created_at: datetime = ts()
    updated_at: datetime = ts()


class PromptCall(SQLModel, table=True):
    """One call to the prompt recorder: who identified (None until the PIN is right), the
    language being recorded and the prompts skipped during this call."""

    __tablename__ = "prompt_calls"
    id: int | None = Field(default=None, primary_key=True)
    call_sid: str = Field(max_length=40, unique=True)
    user_id: int | None = Field(default=None, foreign_key="users.id")
    language: str | None = Field(default=None, max_length=10)
    pin_attempts: int = 0
    created_at: datetime = ts()
    updated_at: datetime = ts()


class PromptTake(SQLModel, table=True):
    """A recording made by phone for one prompt.

    ``status``: draft (recorded, being listened back) -> pending (kept: the worker fetches it from
    Twilio into the library) -> stored, or failed; discarded when re-recorded or skipped.
    ``text_hash`` is the hash of the text when it was recorded, so a text edited meanwhile makes
    the stored prompt stale, not silently current.
    """

    __tablename__ = "prompt_takes"
    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(foreign_key="prompt_calls.id", index=True)
    user_id: int = Field(foreign_key="users.id")
    language: str = Field(max_length=10)
    key: str = Field(max_length=120)
    text_hash: str = Field(max_length=64)
    recording_sid: str = Field(max_length=40, unique=True)
    duration_seconds: int | None = None
    status: str = Field(default="draft", max_length=20, index=True)
    attempts: int = 0
    error: str | None = None
    created_at: datetime = ts()
    kept_at: datetime | None = ts(nullable=True, default=False)
    stored_at: datetime | None = ts(nullable=True, default=False)


class InboundThrottle(SQLModel, table=True):
    """A burst of inbound messages from one contact beyond the per-sender limit.

    While a contact is over the limit its messages are neither stored nor stepped through a flow
    (so a flood never becomes reports); this row counts them, so the flood is logged once when
    it starts and visible afterwards. Rows, not process memory: every web worker sees them.
    """

    __tablename__ = "inbound_throttles"
    __table_args__ = (sa.Index("ix_inbound_throttles_contact_last", "contact_id", "last_at"),)
    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contacts.id")
    channel: str = Field(max_length=20)
    started_at: datetime = ts()
    last_at: datetime = ts()
    dropped: int = 0


# Fields of a report that its queue entries carry (QueueEntry.report_status, category, ...).
ENTRY_COPIES: dict[str, str] = {
    "status": "report_status",
    "category": "category",
    "urgency": "urgency",
    "area_id": "area_id",
}


@sa.event.listens_for(OrmSession, "before_flush")
def _copy_report_fields_to_entries(session: OrmSession, _context: Any, _instances: Any) -> None:
    """When a report's status, category, urgency or place changes, its queue entries' copies
    change in the same flush, whichever service made the change."""
    for obj in list(session.dirty):
        if not isinstance(obj, Report) or obj.id is None:
            continue
        state = sa.inspect(obj)
        changed = {
            column: getattr(obj, field)
            for field, column in ENTRY_COPIES.items()
            if state.attrs[field].history.has_changes()
        }
        if not changed:
            continue
        for entry in session.identity_map.values():
            if isinstance(entry, QueueEntry) and entry.report_id == obj.id:
                for column, value in changed.items():
                    setattr(entry, column, value)
        session.connection().execute(
            sa.update(QueueEntry.__table__)
            .where(QueueEntry.__table__.c.report_id == obj.id)
            .values(**changed)
        )


class SurveyRun(SQLModel, table=True):
    """One firing of a survey schedule (or one ``citoyen survey run``).

    ``key`` names the firing: the scheduled time for a cron firing, so the job firing twice (or
    two workers firing it) finds the same run; ``manual:<time>`` for a run started by hand.
    """

    __tablename__ = "survey_runs"
    __table_args__ = (sa.UniqueConstraint("survey", "key", name="uq_survey_runs_key"),)
    id: int | None = Field(default=None, primary_key=True)
    survey: str = Field(max_length=80, index=True)
    key: str = Field(max_length=80)
    trigger: str = Field(default="schedule", max_length=20)  # schedule | manual
    flow_id: str = Field(max_length=80)
    status: str = Field(default="running", max_length=20)  # running | done
    eligible: int = 0  # contacts the audience allowed
    sampled: int = 0  # drawn by the sample
    invited: int = 0  # invitations recorded (queued messages or calls)
    skipped: int = 0  # sampled but not invited (an open conversation, no reachable channel)
    started_at: datetime = ts()
    finished_at: datetime | None = ts(nullable=True, default=False)


class SurveyInvitation(SQLModel, table=True):
    """Whom a run invited: one row per contact and run (the unique constraint is the guarantee).

    ``status``: invited (messages queued) or calling (voice) -> completed, or expired, stopped
    (the contact sent STOP), failed (calls exhausted). ``send_at`` is when the first message
    may go out (quiet hours defer, never drop).
    """

    __tablename__ = "survey_invitations"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "contact_id", name="uq_survey_invitations_contact"),
    )
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="survey_runs.id", index=True)
    survey: str = Field(max_length=80, index=True)
    contact_id: int = Field(foreign_key="contacts.id", index=True)
    channel: str = Field(max_length=20)  # sms | telegram | voice
    status: str = Field(default="invited", max_length=20, index=True)
    conversation_id: int | None = Field(default=None, foreign_key="conversations.id", index=True)
    invited_at: datetime = ts(index=True)
    send_at: datetime = ts()
    expires_at: datetime = ts()
    reminded_at: datetime | None = ts(nullable=True, default=False)
    completed_at: datetime | None = ts(nullable=True, default=False)
    call_attempts: int = 0
    call_sid: str | None = Field(default=None, max_length=40, index=True)
    call_status: str | None = Field(default=None, max_length=20)


class SchedulerLease(SQLModel, table=True):
    """Who may run the scheduler: a row lease, renewed by its holder, taken over when it lapses.

    A database row works the same on SQLite and PostgreSQL, so two ``citoyen worker`` processes
    started by mistake never both schedule.
    """

    __tablename__ = "scheduler_leases"
    name: str = Field(max_length=40, primary_key=True)
    holder: str = Field(max_length=120)
    acquired_at: datetime = ts()
    expires_at: datetime = ts()


class SchedulerJob(SQLModel, table=True):
    """APScheduler's job store table (``SQLAlchemyJobStore``), declared here so migrations own
    it: the columns are exactly the ones APScheduler 3 creates."""

    __tablename__ = "apscheduler_jobs"
    id: str = Field(sa_column=Column(sa.Unicode(191), primary_key=True))
    next_run_time: float | None = Field(default=None, sa_column=Column(sa.Float(25), index=True))
    job_state: bytes = Field(sa_column=Column(sa.LargeBinary, nullable=False))


class Bulletin(SQLModel, table=True):
    """One monthly CCS bulletin of an area: made once per area and month, whichever worker
    claims the row first (the unique key), kept as a PDF in the instance folder."""

    __tablename__ = "bulletins"
    __table_args__ = (sa.UniqueConstraint("area_code", "month", name="uq_bulletins_area_month"),)
    id: int | None = Field(default=None, primary_key=True)
    area_code: str = Field(max_length=120)
    month: str = Field(max_length=7)  # YYYY-MM
    status: str = Field(default="making", max_length=20)  # making | done | failed
    file_name: str | None = Field(default=None, max_length=300)  # under instance/bulletins/
    size_bytes: int | None = None
    error: str | None = None
    created_at: datetime = ts()
    made_at: datetime | None = ts(nullable=True, default=False)
    emailed_at: datetime | None = ts(nullable=True, default=False)  # sent to the CCS (SMTP)


class GatewayPhoneRecord(SQLModel, table=True):
    """How one SMS gateway phone (an Android phone with a local SIM) has been answering.

    Written by the SMS sender when a phone fails, comes back, or sends (at most every half
    minute); read by the admin's outbox monitor, so staff see a phone that stopped answering.
    Phones are configured in ``CITOYEN_SMS_GATEWAY_PHONES``, not here: a row is only a record.
    """

    __tablename__ = "gateway_phones"
    name: str = Field(max_length=30, primary_key=True)
    operator: str = Field(max_length=20)
    state: str = Field(max_length=10)  # up | down
    failures: int = 0  # consecutive failed attempts
    last_ok_at: datetime | None = ts(nullable=True, default=False)
    last_failure_at: datetime | None = ts(nullable=True, default=False)
    last_error: str | None = Field(default=None, max_length=300)
    down_until: datetime | None = ts(nullable=True, default=False)
    updated_at: datetime = ts()


class CallbackRequest(SQLModel, table=True):
    """A citizen asked to be called back: voice, free for the caller (docs/voice.md, "Call-back").

    ``status``: requested (waiting for its call, ``due_at`` says from when) -> placed (a call is
    ringing or being placed) -> answered (the report IVR runs), or back to requested for a retry
    (busy, no answer), or failed (attempts exhausted, a permanent error), or cancelled (the
    contact stopped, was blocked, or the request went unserved for a day). ``request_key`` is
    unique: the request is made once, however often the message that made it is delivered.
    """

    __tablename__ = "callbacks"
    id: int | None = Field(default=None, primary_key=True)
    request_key: str = Field(max_length=120, unique=True)
    contact_id: int = Field(foreign_key="contacts.id", index=True)
    source: str = Field(max_length=20)  # the channel of the request: sms | whatsapp | ...
    status: str = Field(default="requested", max_length=20, index=True)
    reason: str | None = Field(default=None, max_length=40)  # why failed/cancelled/retried
    attempts: int = 0
    due_at: datetime = ts(index=True)
    requested_at: datetime = ts(index=True)
    placed_at: datetime | None = ts(nullable=True, default=False)
    answered_at: datetime | None = ts(nullable=True, default=False)
    ended_at: datetime | None = ts(nullable=True, default=False)
    call_sid: str | None = Field(default=None, max_length=40, index=True)
    call_status: str | None = Field(default=None, max_length=20)
    conversation_id: int | None = Field(default=None, foreign_key="conversations.id")
    # The citizen had sent STOP when they asked: STOP is about messages nobody asked for, so this
    # call is still made; a STOP sent after the request cancels it.
    asked_while_stopped: bool = False


class CallbackDay(SQLModel, table=True):
    """Call-back calls placed in one local day (Africa/Bamako): the daily budget's counter."""

    __tablename__ = "callback_days"
    day: str = Field(max_length=10, primary_key=True)  # YYYY-MM-DD, local
    calls: int = 0
