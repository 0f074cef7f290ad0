"""Settings from the environment (and a `.env` file when present).

Every setting of the public contract (DESIGN.md section 3) is here with its default, so the README's
configuration table and this class can be checked against each other by a test.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _default_dir(name: str) -> Path:
    """Folders shipped with the project: the checkout's, else the current directory's."""
    here = PROJECT_ROOT / name
    return here if here.is_dir() else Path.cwd() / name


class GatewayPhone(BaseModel):
    """One Android phone running SMS Gateway for Android, with the SIM of one operator.

    Given as a JSON list in ``CITOYEN_SMS_GATEWAY_PHONES`` (docs/sms.md); checked at start, so a
    typing mistake stops the service instead of losing messages later.
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,29}$")
    operator: Literal["orange", "moov", "telecel", "any"] = "any"
    url: str = Field(pattern=r"^https?://")
    login: str | None = None
    password: str
    per_minute: float = Field(default=10.0, gt=0)
    signing_key: str | None = None


class Settings(BaseSettings):
    """The service's configuration. Names are the environment variables."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    instance_dir: Path = Field(
        default_factory=lambda: Path.cwd() / "instance",
        validation_alias=AliasChoices("CITOYEN_INSTANCE_DIR"),
        description="Folder for the SQLite database, generated keys and stored recordings.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CITOYEN_DATABASE_URL"),
        description="SQLAlchemy URL; default: a SQLite file `citoyen.db` in the instance folder.",
    )
    secret_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CITOYEN_SECRET_KEY"),
        description="Flask session key; default: generated once into the instance folder.",
    )
    public_url: str = Field(
        default="http://localhost:8000",
        validation_alias=AliasChoices("CITOYEN_PUBLIC_URL"),
        description="https base URL providers call; used to rebuild URLs for signature checks.",
    )
    flows_dir: Path = Field(
        default_factory=lambda: _default_dir("flows"),
        validation_alias=AliasChoices("CITOYEN_FLOWS_DIR"),
        description="Folder of the conversation flows (`*.yaml`) and survey definitions "
        "(`surveys/`).",
    )
    config_dir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("CITOYEN_CONFIG_DIR"),
        description="Folder of `settings.yaml`, `stakeholders.yaml`, `routing.yaml` and "
        "`whatsapp/templates.yaml`; default: `config/` beside the flows folder.",
    )
    locales_dir: Path = Field(
        default_factory=lambda: _default_dir("locales"),
        validation_alias=AliasChoices("CITOYEN_LOCALES_DIR"),
        description="Folder of texts per language and recorded audio prompts.",
    )
    prompts_dir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("CITOYEN_PROMPTS_DIR"),
        description="Folder of the recorded voice prompt library; default: `prompts/` in the "
        "instance folder.",
    )
    prompts_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CITOYEN_PROMPTS_URL"),
        description="Base URL that serves a copy of the prompts folder (a CDN or bucket); "
        "default: the service serves them itself under /audio/.",
    )
    data_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CITOYEN_DATA_KEY"),
        description="Key that encrypts contact identifiers (32 bytes, urlsafe base64); "
        "default: generated once into the instance folder.",
    )
    host: str = Field(
        default="127.0.0.1",
        validation_alias=AliasChoices("CITOYEN_HOST"),
        description="Address `citoyen run` listens on.",
    )
    port: int = Field(
        default=8000,
        validation_alias=AliasChoices("CITOYEN_PORT"),
        description="Port `citoyen run` listens on.",
    )
    outbox_rate_sms: float = Field(
        default=1.0,
        gt=0,
        validation_alias=AliasChoices("CITOYEN_OUTBOX_RATE_SMS"),
        description="SMS sent per second by one dispatcher (Twilio long code: 1/s).",
    )
    outbox_rate_telegram: float = Field(
        default=25.0,
        gt=0,
        validation_alias=AliasChoices("CITOYEN_OUTBOX_RATE_TELEGRAM"),
        description="Telegram messages per second overall, per dispatcher.",
    )
    outbox_rate_telegram_chat: float = Field(
        default=1.0,
        gt=0,
        validation_alias=AliasChoices("CITOYEN_OUTBOX_RATE_TELEGRAM_CHAT"),
        description="Telegram messages per second to one chat.",
    )
    reveal_roles: str = Field(
        default="admin,coordinator",
        validation_alias=AliasChoices("CITOYEN_REVEAL_ROLES"),
        description="Admin roles that may reveal a non-anonymous reporter's number (audited).",
    )
    session_hours: float = Field(
        default=8,
        gt=0,
        validation_alias=AliasChoices("CITOYEN_SESSION_HOURS"),
        description="Longest life of a staff session from sign-in, however active (absolute).",
    )
    session_idle_minutes: float = Field(
        default=60,
        gt=0,
        validation_alias=AliasChoices("CITOYEN_SESSION_IDLE_MINUTES"),
        description="A staff session unused this long ends (idle timeout).",
    )
    trusted_proxies: int = Field(
        default=0,
        ge=0,
        le=5,
        validation_alias=AliasChoices("CITOYEN_TRUSTED_PROXIES"),
        description="Reverse proxies in front of the web app whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed (0: none, the app faces the network).",
    )
    retention_days: int = Field(
        default=365,
        ge=0,
        validation_alias=AliasChoices("CITOYEN_RETENTION_DAYS"),
        description="Days after a report is resolved or closed before `citoyen purge` (and the "
        "worker's daily job) removes its free text, recordings and reporter link; 0: never.",
    )
    inbound_limit: int = Field(
        default=40,
        ge=1,
        validation_alias=AliasChoices("CITOYEN_INBOUND_LIMIT"),
        description="Inbound messages (SMS, Telegram updates, voice steps) one sender may send "
        "per window; beyond it they are dropped and logged, never turned into reports.",
    )
    inbound_window_seconds: int = Field(
        default=600,
        ge=1,
        validation_alias=AliasChoices("CITOYEN_INBOUND_WINDOW_SECONDS"),
        description="The window of CITOYEN_INBOUND_LIMIT, in seconds.",
    )
    discreet: bool = Field(
        default=False,
        validation_alias=AliasChoices("CITOYEN_DISCREET"),
        description="Neutral wording in every message to citizens (status notices, replies), "
        "so a shared phone does not expose a reporter; contacts can also choose it one by one.",
    )
    spool_max_bytes: int = Field(
        default=50_000_000,
        ge=10_000,
        validation_alias=AliasChoices("CITOYEN_SPOOL_MAX_BYTES"),
        description="Most bytes of inbound messages kept in the instance folder's spool while "
        "the database cannot take them; beyond it webhooks get a 503 (docs/outbox.md).",
    )
    metrics_token: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CITOYEN_METRICS_TOKEN"),
        description="Bearer token /metrics asks for (Authorization: Bearer ...); unset, "
        "/metrics answers 404.",
    )
    publication_min_count: int = Field(
        default=10,
        ge=1,
        validation_alias=AliasChoices("CITOYEN_PUBLICATION_MIN_COUNT"),
        description="Published cells (public pages, open data, bulletin, survey results) with "
        "fewer answers or reports are suppressed, with their complements.",
    )
    public_cache_seconds: int = Field(
        default=300,
        ge=0,
        validation_alias=AliasChoices("CITOYEN_PUBLIC_CACHE_SECONDS"),
        description="How long the public pages' figures are kept before being recomputed.",
    )
    smtp_host: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CITOYEN_SMTP_HOST"),
        description="SMTP server the monthly bulletins are e-mailed through; unset: no e-mail.",
    )
    smtp_port: int = Field(
        default=587,
        validation_alias=AliasChoices("CITOYEN_SMTP_PORT"),
        description="SMTP port.",
    )
    smtp_user: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CITOYEN_SMTP_USER"),
        description="SMTP login, if the server asks for one.",
    )
    smtp_password: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CITOYEN_SMTP_PASSWORD"),
        description="SMTP password.",
    )
    smtp_from: str = Field(
        default="citoyen@localhost",
        validation_alias=AliasChoices("CITOYEN_SMTP_FROM"),
        description="Sender address of the bulletins.",
    )
    smtp_starttls: bool = Field(
        default=True,
        validation_alias=AliasChoices("CITOYEN_SMTP_STARTTLS"),
        description="Upgrade the SMTP connection with STARTTLS (false for a local relay).",
    )
    twilio_account_sid: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TWILIO_ACCOUNT_SID"),
        description="Twilio account; without it outbound SMS/voice go to the simulator log.",
    )
    twilio_auth_token: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TWILIO_AUTH_TOKEN"),
        description="Twilio auth token: signs webhooks, authenticates API calls.",
    )
    twilio_from_number: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TWILIO_FROM_NUMBER"),
        description="The number citizens text and call.",
    )
    twilio_whatsapp_from: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TWILIO_WHATSAPP_FROM"),
        description="The deployment's WhatsApp sender on Twilio (+...); unset: WhatsApp "
        "notices go to the log channel.",
    )
    twilio_api_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CITOYEN_TWILIO_API_URL"),
        description="Base URL of Twilio's REST API instead of https://api.twilio.com, for tests "
        "and regional edges.",
    )
    telegram_api_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CITOYEN_TELEGRAM_API_URL"),
        description="Base URL of the Telegram Bot API instead of https://api.telegram.org (a "
        "local Bot API server, tests).",
    )
    telegram_bot_token: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TELEGRAM_BOT_TOKEN"),
        description="Telegram bot token; without it Telegram is off.",
    )
    telegram_webhook_secret: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TELEGRAM_WEBHOOK_SECRET"),
        description="Secret Telegram sends in X-Telegram-Bot-Api-Secret-Token.",
    )

    sms_provider: Literal["twilio", "android-gateway"] = Field(
        default="twilio",
        validation_alias=AliasChoices("CITOYEN_SMS_PROVIDER"),
        description="Who sends outbound SMS: Twilio, or Android phones with local SIMs.",
    )
    sms_gateway_phones: list[GatewayPhone] = Field(
        default_factory=list,
        validation_alias=AliasChoices("CITOYEN_SMS_GATEWAY_PHONES"),
        description="JSON list of the gateway phones: name, operator, url, login, password, "
        "per_minute, signing_key.",
    )
    sms_gateway_order: str = Field(
        default="orange,moov,telecel,any",
        validation_alias=AliasChoices("CITOYEN_SMS_GATEWAY_ORDER"),
        description="Operators whose phones are tried, in order, after the recipient's own.",
    )
    sms_gateway_signing_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CITOYEN_SMS_GATEWAY_SIGNING_KEY"),
        description="The webhook signing key set on every gateway phone (or per phone).",
    )
    sms_gateway_tolerance_seconds: int = Field(
        default=300,
        ge=1,
        validation_alias=AliasChoices("CITOYEN_SMS_GATEWAY_TOLERANCE_SECONDS"),
        description="How old (or how far ahead) a gateway webhook's X-Timestamp may be.",
    )

    callback_hours: str = Field(
        default="08:00-20:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$",
        validation_alias=AliasChoices("CITOYEN_CALLBACK_HOURS"),
        description="Local hours (Africa/Bamako) call-backs are placed in, as a survey's "
        "quiet_hours; a request outside them is called at the next opening.",
    )
    callback_daily_limit: int = Field(
        default=3,
        ge=1,
        validation_alias=AliasChoices("CITOYEN_CALLBACK_DAILY_LIMIT"),
        description="Call-back requests one number may make per local day; more are refused "
        "with a message.",
    )
    callback_daily_budget: int = Field(
        default=300,
        ge=0,
        validation_alias=AliasChoices("CITOYEN_CALLBACK_DAILY_BUDGET"),
        description="Call-back calls placed per local day (retries count); beyond it requests "
        "wait for the next day. 0: call-back off.",
    )
    callback_max_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        validation_alias=AliasChoices("CITOYEN_CALLBACK_MAX_ATTEMPTS"),
        description="Calls placed for one request when the line is busy or nobody answers.",
    )
    callback_retry_minutes: int = Field(
        default=15,
        ge=1,
        validation_alias=AliasChoices("CITOYEN_CALLBACK_RETRY_MINUTES"),
        description="Minutes between a busy or unanswered call-back and the next attempt.",
    )
    callback_max_concurrent: int = Field(
        default=5,
        ge=1,
        validation_alias=AliasChoices("CITOYEN_CALLBACK_MAX_CONCURRENT"),
        description="Call-back calls ringing or in progress at once.",
    )

    callback_machine_detection: bool = Field(
        default=True,
        validation_alias=AliasChoices("CITOYEN_CALLBACK_MACHINE_DETECTION"),
        description="Ask Twilio who answers a call-back (answering machine detection): a "
        "voicemail or fax is hung up on and called again later. Costs a few seconds of silence "
        "at the start of each call and Twilio's per-call AMD charge.",
    )

    @field_validator("callback_hours")
    @classmethod
    def _callback_window(cls, value: str) -> str:
        start, end = value.split("-")
        if start >= end:
            raise ValueError("the call-back window's start must be before its end (HH:MM-HH:MM)")
        return value

    @property
    def callback_window(self) -> tuple[str, str]:
        """``CITOYEN_CALLBACK_HOURS`` as (start, end), "HH:MM" local time."""
        start, end = self.callback_hours.split("-")
        return start, end

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.instance_dir / 'citoyen.db').resolve()}"

    @property
    def resolved_config_dir(self) -> Path:
        """The configuration folder: ``config/`` beside the flows folder unless set, so a
        deployment with its own flows folder never reads the project's sample configuration
        (the same rule as ``citoyen.engine.layout.default_config_dir``)."""
        return Path(self.config_dir) if self.config_dir else Path(self.flows_dir).parent / "config"

    @property
    def resolved_prompts_dir(self) -> Path:
        """Where recorded prompts are stored (outside the database, like call recordings)."""
        return Path(self.prompts_dir) if self.prompts_dir else self.instance_dir / "prompts"

    def ensure_instance_dir(self) -> Path:
        self.instance_dir.mkdir(parents=True, exist_ok=True)
        return self.instance_dir

    def _instance_secret(self, name: str, make: Callable[[], str]) -> str:
        """A secret generated on first use and kept in the instance folder (mode 0600).

        Several processes may start at once (gunicorn workers): the file is created exclusively,
        so exactly one value is ever written and every process reads that one.
        """
        path = self.ensure_instance_dir() / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            for _ in range(50):  # the creator may not have written it yet
                value = path.read_text().strip()
                if value:
                    return value
                time.sleep(0.02)
            raise RuntimeError(f"{path} is empty: delete it to generate a new one") from None
        value = make()
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
        return value

    def effective_secret_key(self) -> str:
        import secrets

        return self.secret_key or self._instance_secret("secret_key", lambda: secrets.token_hex(32))

    def effective_data_key(self) -> str:
        from cryptography.fernet import Fernet

        return self.data_key or self._instance_secret(
            "data_key", lambda: Fernet.generate_key().decode()
        )

    @property
    def reveal_role_list(self) -> tuple[str, ...]:
        return tuple(r.strip() for r in self.reveal_roles.split(",") if r.strip())

    @property
    def twilio_enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.telegram_bot_token)


def get_settings(**overrides: object) -> Settings:
    """Fresh settings from the environment; tests pass overrides."""
    return Settings(**overrides)  # type: ignore[arg-type]
