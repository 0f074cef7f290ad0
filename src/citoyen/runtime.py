"""What every face of the service (web, CLI, worker, bot) needs, built once per process.

A :class:`Runtime` bundles the settings, the database engine, the validated flows and texts, and
the vault for contact identifiers; faces ask it for services instead of wiring them themselves.

It is also where providers are wired to services: the outbox senders per channel
(:attr:`Runtime.sender_factories`, registered here and nowhere else), the media fetchers and the
call placer, each built from the deployment's credentials and handed to services behind the
protocols of :mod:`citoyen.channels.base`. Services never import a provider's module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from citoyen import db
from citoyen.channels.base import CallPlacer, MediaFetcher, Sender, SenderFactory
from citoyen.config import Settings, get_settings
from citoyen.services.privacy import Vault


def default_sender_factories() -> dict[str, SenderFactory]:
    """The outbox sender of every channel that has one (each returns None without credentials).

    Channels not listed (``voice_call`` rows are placed by the survey calls job, ``log``) and
    channels without credentials go to the log channel: never silently nowhere.
    """
    from citoyen.channels.telegram_sender import make_sender

    return {"sms": sms_sender, "telegram": make_sender, "whatsapp": whatsapp_sender}


def sms_sender(runtime: Runtime) -> Sender | None:
    """The SMS sender ``CITOYEN_SMS_PROVIDER`` chooses: Twilio, or the Android gateway phones
    (their state kept in the database for the admin's outbox monitor)."""
    from citoyen.channels.sms import twilio_sms_sender

    if runtime.settings.sms_provider == "android-gateway":
        from citoyen.channels.android_gateway import android_gateway_sender
        from citoyen.services.gateway_phones import DatabasePhoneHealth

        return android_gateway_sender(runtime, DatabasePhoneHealth(runtime.engine))
    return twilio_sms_sender(runtime)


def whatsapp_sender(runtime: Runtime) -> Sender | None:
    """Twilio's WhatsApp sender, told the 24-hour window by the database."""
    from citoyen.channels.whatsapp import whatsapp_sender as make_whatsapp_sender
    from citoyen.services.whatsapp_window import DatabaseRecipients

    return make_whatsapp_sender(runtime, DatabaseRecipients(runtime.engine))


@dataclass
class Runtime:
    settings: Settings
    engine: Engine = field(init=False)
    sender_factories: dict[str, SenderFactory] = field(default_factory=default_sender_factories)

    def __post_init__(self) -> None:
        self.settings.ensure_instance_dir()
        self.engine = db.get_engine(self.settings.resolved_database_url)

    def register_sender(self, channel: str, factory: SenderFactory) -> None:
        """Plug a sender in for ``channel`` (a new provider, or a test's fake)."""
        self.sender_factories[channel] = factory

    # The providers below are built on each use, from the settings as they are then: cheap
    # (no connection is opened), and a settings change is seen at once.

    @property
    def recording_fetcher(self) -> MediaFetcher | None:
        """Twilio call recordings (citizens' and prompt takes); None without credentials."""
        from citoyen.channels.twilio_rest import TWILIO_API, TwilioRecordingFetcher

        settings = self.settings
        if not (settings.twilio_account_sid and settings.twilio_auth_token):
            return None
        # At CITOYEN_TWILIO_API_URL when it is set (a regional edge, a local fake in tests), like
        # every other Twilio client.
        return TwilioRecordingFetcher(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            api_base=settings.twilio_api_url or TWILIO_API,
        )

    @property
    def media_fetchers(self) -> dict[str, MediaFetcher]:
        """The fetchers this deployment can use, by attachment channel (none without credentials)."""
        from citoyen.channels.telegram_sender import make_fetcher
        from citoyen.channels.twilio_rest import TWILIO_API, TwilioMessageMediaFetcher

        settings = self.settings
        fetchers: dict[str, MediaFetcher] = {}
        if self.recording_fetcher is not None:
            fetchers["voice"] = self.recording_fetcher
            fetchers["whatsapp"] = TwilioMessageMediaFetcher(
                settings.twilio_account_sid,
                settings.twilio_auth_token,
                api_base=settings.twilio_api_url or TWILIO_API,
            )
        telegram = make_fetcher(self)
        if telegram is not None:
            fetchers["telegram"] = telegram
        return fetchers

    @property
    def call_placer(self) -> CallPlacer | None:
        """Twilio's Calls API for survey calls and call-backs; None without credentials and a
        caller number."""
        from citoyen.channels.twilio_rest import TwilioCallPlacer

        settings = self.settings
        if not (settings.twilio_enabled and settings.twilio_from_number):
            return None
        return TwilioCallPlacer(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_from_number,
            api_url=settings.twilio_api_url,
        )

    @cached_property
    def bundle(self) -> Any:
        """Validated flows and texts; raises FlowError (with every problem) when broken."""
        from citoyen.services.flows import get_bundle

        settings = self.settings
        return get_bundle(
            settings.flows_dir, settings.locales_dir, config_dir=settings.resolved_config_dir
        )

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

        from citoyen.services import callbacks
        from citoyen.services.conversations import ConversationService, InboundLimit

        # Call-backs requested in a conversation step follow this runtime's settings.
        callbacks.install(self)
        limit = InboundLimit(
            self.settings.inbound_limit, timedelta(seconds=self.settings.inbound_window_seconds)
        )
        return ConversationService(self.engine, self.bundle, self.vault, limit)

    def session(self) -> Session:
        """A session on this runtime's database, for a face to hand to the services it calls:
        the faces never import the ORM themselves (a contract in pyproject.toml), so every
        query stays in a service. Rows read through it stay readable after the session ends
        (the page renders them then), whether or not a service committed."""
        return Session(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        db.upgrade(self.settings.resolved_database_url)

    def needs_migration(self) -> bool:
        url = self.settings.resolved_database_url
        return db.current_revision(self.engine) != db.head_revision(url)


def build_runtime(settings: Settings | None = None) -> Runtime:
    return Runtime(settings or get_settings())
