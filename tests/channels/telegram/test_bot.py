"""The bot process: long polling handlers, its Telegram-only dispatch, and the commands
``citoyen telegram`` and ``citoyen telegram set-webhook`` (the real ``Bot`` against the fake)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select
from telegram import Update

from citoyen import telegram_bot
from citoyen.cli import main
from citoyen.db import write_session
from citoyen.models import Message, Outbox
from citoyen.runtime import Runtime
from citoyen.services.outbox import enqueue
from citoyen.telegram_bot import (
    ALLOWED_UPDATES,
    TelegramDispatchThread,
    TelegramSetupError,
    build_application,
    handle_polled_update,
    set_webhook,
)
from tests.channels.telegram.conftest import (
    FR_USER,
    PUBLIC_URL,
    SECRET,
    Updates,
    contact,
    outbox,
    post,
)
from tests.channels.telegram.fake_bot_api import FakeBotApi


def polled(fake_api: FakeBotApi, data: dict[str, Any]) -> tuple[Any, Update]:
    bot = fake_api.bot()
    return bot, Update.de_json(data, bot)


def test_polled_button_is_handled_and_answered(runtime: Runtime, fake_api: FakeBotApi) -> None:
    u = Updates()
    bot, start = polled(fake_api, u.command("/start"))
    outcome = asyncio.run(handle_polled_update(runtime, bot, start))
    assert outcome.status == "handled" and outcome.queued == 1
    assert fake_api.calls_to("answerCallbackQuery") == []

    data = u.button("fr")
    bot, press = polled(fake_api, data)
    outcome = asyncio.run(handle_polled_update(runtime, bot, press))
    assert outcome.status == "handled"
    [answer] = fake_api.calls_to("answerCallbackQuery")
    assert answer.params["callback_query_id"] == data["callback_query"]["id"]
    assert contact(runtime).language == "fr"
    assert len(outbox(runtime)) == 2  # replies wait in the outbox, none sent directly
    assert fake_api.calls_to("sendMessage") == []

    again = asyncio.run(handle_polled_update(runtime, bot, press))  # same update_id
    assert again.status == "duplicate"
    assert len(outbox(runtime)) == 2


def test_failed_answer_is_not_fatal(runtime: Runtime, fake_api: FakeBotApi) -> None:
    fake_api.fail_next("answerCallbackQuery", 400, "Bad Request: query is too old")
    bot, press = polled(fake_api, Updates().button("fr"))
    outcome = asyncio.run(handle_polled_update(runtime, bot, press))
    assert outcome.status == "handled"
    assert len(fake_api.calls_to("answerCallbackQuery")) == 1


def test_application_routes_every_update_through_the_service(
    runtime: Runtime, fake_api: FakeBotApi
) -> None:
    bot = fake_api.bot()
    app = build_application(runtime, bot)
    data = Updates().command("/start")

    async def run() -> None:
        async with app:
            await app.process_update(Update.de_json(data, app.bot))

    asyncio.run(run())
    with Session(runtime.engine) as session:
        [message] = session.exec(select(Message).where(Message.direction == "in")).all()
    assert message.provider_id == str(data["update_id"])
    assert len(outbox(runtime)) == 1


def test_bot_dispatch_sends_telegram_only(
    runtime: Runtime, sender: Any, fake_api: FakeBotApi, client: Any
) -> None:
    """The bot process delivers Telegram replies, never another channel's messages."""
    with write_session(runtime.engine) as session:
        enqueue(session, channel="sms", idempotency_key="sms-1", body="x", address_enc="e")
    post(client, Updates().command("/start"))
    thread = TelegramDispatchThread(runtime, sender=sender)
    stats = thread.run_cycle()
    assert stats is not None and stats.sent == 1
    assert [c.params["chat_id"] for c in fake_api.calls_to("sendMessage")] == [FR_USER]
    with Session(runtime.engine) as session:
        sms = session.exec(select(Outbox).where(Outbox.channel == "sms")).one()
        telegram = session.exec(select(Outbox).where(Outbox.channel == "telegram")).one()
    assert (sms.status, sms.attempts) == ("pending", 0)
    assert telegram.status == "sent"


def test_bot_dispatch_needs_a_token(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"telegram_bot_token": None})
    thread = TelegramDispatchThread(runtime)
    assert thread.dispatcher is None
    assert thread.run_cycle() is None


def test_bot_dispatch_thread_starts_and_stops(runtime: Runtime, sender: Any) -> None:
    thread = TelegramDispatchThread(runtime, sender=sender, interval=0.05)
    thread.start()
    thread.stop()
    assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        sender.run(asyncio.sleep(0))


# --- set-webhook --------------------------------------------------------------------------------------


def test_set_webhook_registers_url_secret_and_updates(
    runtime: Runtime, fake_api: FakeBotApi
) -> None:
    url = set_webhook(runtime, fake_api.bot())
    assert url == PUBLIC_URL + "/telegram/webhook"
    [call] = fake_api.calls_to("setWebhook")
    assert call.params["url"] == url
    assert call.params["secret_token"] == SECRET
    assert call.params["allowed_updates"] == ALLOWED_UPDATES


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"public_url": "http://citoyen.example.ml"}, "https"),
        ({"public_url": "http://localhost:8000"}, "https"),
        ({"telegram_webhook_secret": None}, "TELEGRAM_WEBHOOK_SECRET is not set"),
        ({"telegram_webhook_secret": "has spaces!"}, "letters, digits"),
        ({"telegram_bot_token": None}, "TELEGRAM_BOT_TOKEN"),
    ],
)
def test_set_webhook_refuses_bad_configuration(
    runtime: Runtime, fake_api: FakeBotApi, changes: dict, message: str
) -> None:
    runtime.settings = runtime.settings.model_copy(update=changes)
    with pytest.raises(TelegramSetupError, match=message):
        set_webhook(runtime, fake_api.bot())
    assert fake_api.calls == []


def test_set_webhook_reports_telegram_refusal(runtime: Runtime, fake_api: FakeBotApi) -> None:
    fake_api.fail_next("setWebhook", 400, "Bad Request: bad webhook: HTTPS url must be provided")
    with pytest.raises(TelegramSetupError, match=r"(?i)bad webhook"):
        set_webhook(runtime, fake_api.bot())


def invoke(settings: Any, *args: str) -> Any:
    return CliRunner().invoke(main, list(args), obj={"settings": settings})


def test_cli_set_webhook(
    tg_settings: Any, fake_api: FakeBotApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telegram_bot, "make_bot", lambda token, **_: fake_api.bot(token))
    result = invoke(tg_settings, "telegram", "set-webhook")
    assert result.exit_code == 0, result.output
    assert f"webhook set: {PUBLIC_URL}/telegram/webhook" in result.output
    assert len(fake_api.calls_to("setWebhook")) == 1


def test_cli_set_webhook_refuses_plain_http(tg_settings: Any, fake_api: FakeBotApi) -> None:
    settings = tg_settings.model_copy(update={"public_url": "http://citoyen.example.ml"})
    result = invoke(settings, "telegram", "set-webhook")
    assert result.exit_code != 0
    assert "https" in result.output
    assert fake_api.calls == []


def test_cli_telegram_without_token_explains(settings: Any) -> None:
    result = invoke(settings, "telegram")
    assert result.exit_code != 0
    assert "TELEGRAM_BOT_TOKEN is not set" in result.output


def test_cli_telegram_without_subcommand_runs_polling(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[Any] = []
    monkeypatch.setattr(telegram_bot, "run_polling", lambda rt: ran.append(rt))
    result = invoke(runtime.settings, "telegram")
    assert result.exit_code == 0, result.output
    assert len(ran) == 1
    assert ran[0].settings.telegram_bot_token == runtime.settings.telegram_bot_token
