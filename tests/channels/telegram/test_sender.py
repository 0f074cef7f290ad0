"""The Telegram sender and file fetcher: the real ``telegram.Bot`` against the local fake Bot API.

No database: these check the requests python-telegram-bot makes for our outbox payloads and how
Bot API errors become the dispatcher's errors. Delivery through the dispatcher with a database is
in test_webhook.py.
"""

from __future__ import annotations

import io
import socket
import threading
from typing import Any

import pytest

from citoyen.channels.base import (
    OutboundMessage,
    PermanentFetchError,
    PermanentSendError,
    TransientFetchError,
    TransientSendError,
)
from citoyen.channels.telegram_sender import (
    TelegramFileFetcher,
    TelegramSender,
    make_fetcher,
    make_sender,
)
from citoyen.models import Attachment
from tests.channels.telegram.fake_bot_api import TOKEN, FakeBotApi

TELEGRAM_IP = "149.154.167.220"  # one of api.telegram.org's addresses


def message(body: str | None = "Bonjour", buttons: Any = None, address: str = "telegram:42"):
    payload = {"buttons": buttons} if buttons is not None else {}
    return OutboundMessage(1, "tg:1:0", "telegram", address, body, payload)


class _Settings:
    def __init__(self, token: str | None, api_url: str | None = None) -> None:
        self.telegram_bot_token = token
        self.telegram_api_url = api_url


class _Runtime:
    def __init__(self, token: str | None, api_url: str | None = None) -> None:
        self.settings = _Settings(token, api_url)


def test_send_message_with_buttons(sender: TelegramSender, fake_api: FakeBotApi) -> None:
    buttons = [["Vol ou cambriolage", "theft"], ["Autre", "other"]]
    result = sender.send(message("Quel est le problème ?", buttons))
    [call] = fake_api.calls_to("sendMessage")
    assert call.params["chat_id"] == 42
    assert call.params["text"] == "Quel est le problème ?"
    assert call.params["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "Vol ou cambriolage", "callback_data": "theft"}],
            [{"text": "Autre", "callback_data": "other"}],
        ]
    }
    assert result.provider_id == "501"


def test_send_message_without_buttons_has_no_keyboard(
    sender: TelegramSender, fake_api: FakeBotApi
) -> None:
    sender.send(message("Merci", []))
    [call] = fake_api.calls_to("sendMessage")
    assert "reply_markup" not in call.params


def test_the_call_me_button_asks_for_the_contact_then_goes_away(
    sender: TelegramSender, fake_api: FakeBotApi
) -> None:
    ask = {"buttons": [], "share_phone": "Appelez-moi"}
    sender.send(OutboundMessage(1, "tg:1:0", "telegram", "telegram:42", "Appuyez", ask))
    done = {"buttons": [], "remove_keyboard": True}
    sender.send(OutboundMessage(2, "tg:2:0", "telegram", "telegram:42", "C'est noté", done))
    shown, removed = fake_api.calls_to("sendMessage")
    assert shown.params["reply_markup"] == {
        "keyboard": [[{"text": "Appelez-moi", "request_contact": True}]],
        "resize_keyboard": True,
        "one_time_keyboard": True,
    }
    assert removed.params["reply_markup"] == {"remove_keyboard": True}


def test_one_loop_and_one_bot_for_many_messages(
    sender: TelegramSender, fake_api: FakeBotApi
) -> None:
    loop = sender._loop
    for n in range(3):
        sender.send(message(f"message {n}"))
    assert sender._loop is loop and not loop.is_closed()
    assert len(fake_api.calls_to("sendMessage")) == 3
    assert len(fake_api.calls_to("getMe")) == 1  # the bot is initialised once
    sender.close()
    assert loop.is_closed()
    with pytest.raises(RuntimeError, match="closed"):
        sender.send(message())


def test_blocked_by_user_is_permanent_opt_out(sender: TelegramSender, fake_api: FakeBotApi) -> None:
    fake_api.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user")
    with pytest.raises(PermanentSendError) as caught:
        sender.send(message())
    assert caught.value.opt_out is True
    assert caught.value.code == 403
    assert "blocked" in str(caught.value)


def test_flood_control_is_transient_with_retry_after(
    sender: TelegramSender, fake_api: FakeBotApi
) -> None:
    fake_api.fail_next("sendMessage", 429, "Too Many Requests: retry after 7", {"retry_after": 7})
    with pytest.raises(TransientSendError) as caught:
        sender.send(message())
    assert caught.value.retry_after == 7.0
    assert caught.value.code == 429


def test_bad_request_is_permanent_without_opt_out(
    sender: TelegramSender, fake_api: FakeBotApi
) -> None:
    fake_api.fail_next("sendMessage", 400, "Bad Request: chat not found")
    with pytest.raises(PermanentSendError) as caught:
        sender.send(message())
    assert caught.value.opt_out is False
    assert caught.value.code == 400


@pytest.mark.parametrize("status", [500, 502])
def test_server_errors_are_transient(
    sender: TelegramSender, fake_api: FakeBotApi, status: int
) -> None:
    fake_api.fail_next("sendMessage", status, "Internal Server Error")
    with pytest.raises(TransientSendError) as caught:
        sender.send(message())
    assert caught.value.retry_after is None


def test_refused_token_is_transient_and_never_stored(fake_api: FakeBotApi) -> None:
    sender = TelegramSender(fake_api.bot("123:wrong-token"))
    try:
        with pytest.raises(TransientSendError) as caught:
            sender.send(message())
    finally:
        sender.close()
    assert "wrong-token" not in str(caught.value)


def test_connection_refused_is_transient() -> None:
    with socket.socket() as probe:  # a local port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    from citoyen.channels.telegram_sender import make_bot

    sender = TelegramSender(make_bot(TOKEN, base_url=f"http://127.0.0.1:{port}/bot"))
    try:
        with pytest.raises(TransientSendError):
            sender.send(message())
    finally:
        sender.close()


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"body": ""}, "empty"),
        ({"body": "  "}, "empty"),
        ({"body": None}, "empty"),
        ({"address": "tel:+22376000000"}, "address"),
        ({"address": "telegram:abc"}, "address"),
    ],
)
def test_unsendable_messages_are_permanent(
    sender: TelegramSender, fake_api: FakeBotApi, kwargs: dict, code: str
) -> None:
    with pytest.raises(PermanentSendError) as caught:
        sender.send(message(**kwargs))
    assert caught.value.code == code
    assert fake_api.calls_to("sendMessage") == []


def test_factories_need_a_token() -> None:
    assert make_sender(_Runtime(None)) is None
    assert make_fetcher(_Runtime(None)) is None
    sender = make_sender(_Runtime(TOKEN))
    try:
        assert sender is not None
        assert sender.current.bot.base_url == f"https://api.telegram.org/bot{TOKEN}"
    finally:
        sender.close()


def test_the_api_url_setting_sends_to_another_bot_api(fake_api: FakeBotApi) -> None:
    """CITOYEN_TELEGRAM_API_URL: the sender and the fetcher talk to that server instead."""
    root = fake_api.server.url_for("/").rstrip("/")
    sender = make_sender(_Runtime(TOKEN, api_url=root + "/"))
    fetcher = make_fetcher(_Runtime(TOKEN, api_url=root))
    try:
        assert sender is not None and fetcher is not None
        assert sender.send(message()).provider_id.isdigit()
        assert fetcher.bot.base_url == f"{root}/bot{TOKEN}"
        assert fetcher.bot.base_file_url == f"{root}/file/bot{TOKEN}"
    finally:
        sender.close() if sender else None
        fetcher.close() if fetcher else None
    [call] = fake_api.calls_to("sendMessage")
    assert call.params["chat_id"] == 42


# --- the real Bot API is never reached from tests ------------------------------------------------------


def test_no_internet_guard_blocks_telegram(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sender built from settings talks to api.telegram.org: in tests that is refused.

    Name resolution is pinned to a real Telegram address so the refusal comes from the
    ``_no_internet`` guard (tests/conftest.py), not from a sandbox without DNS.
    """
    real_getaddrinfo = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("api.telegram.org", b"api.telegram.org"):  # anyio passes IDNA bytes
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (TELEGRAM_IP, 443))]
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    sender = make_sender(_Runtime(TOKEN))
    assert sender is not None
    try:
        with pytest.raises(TransientSendError) as caught:
            sender.send(message())
    finally:
        sender.close()
    chain: list[BaseException] = []
    pending: list[BaseException] = [caught.value]
    while pending:  # causes, and the members of anyio's exception groups
        error = pending.pop()
        chain.append(error)
        pending += [e for e in (error.__cause__, error.__context__) if e is not None]
        pending += list(getattr(error, "exceptions", ()))
    assert any(
        isinstance(e, RuntimeError)
        and f"test tried to reach the network: {TELEGRAM_IP!r}" in str(e)
        for e in chain
    ), chain


def test_fake_server_is_the_only_one_reached(
    sender: TelegramSender, fake_api: FakeBotApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    reached: list[Any] = []
    guarded = socket.socket.connect

    def spy(self: socket.socket, address: Any) -> Any:
        reached.append(address)
        return guarded(self, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    sender.send(message())
    port = fake_api.server.port
    assert reached, "the sender made no connection"
    assert all(addr[1] == port and addr[0] in ("127.0.0.1", "::1") for addr in reached), reached
    assert sender.bot.base_url.startswith(fake_api.base_url)


# --- fetching files ------------------------------------------------------------------------------------


def attachment(file_id: str = "AwACAgQAAxkBAAIBX2", content_type: str = "audio/ogg") -> Attachment:
    return Attachment(
        id=7,
        channel="telegram",
        kind="voice",
        provider_ref=file_id,
        content_type=content_type,
        status="pending",
    )


def test_fetch_downloads_through_get_file(
    fetcher: TelegramFileFetcher, fake_api: FakeBotApi
) -> None:
    fake_api.add_file("AwACAgQAAxkBAAIBX2", "voice/file_3.oga", b"OggS-voice-note")
    out = io.BytesIO()
    assert fetcher.fetch(attachment(), out) == "audio/ogg"
    assert out.getvalue() == b"OggS-voice-note"
    [call] = fake_api.calls_to("getFile")
    assert call.params["file_id"] == "AwACAgQAAxkBAAIBX2"
    assert fake_api.downloads == ["voice/file_3.oga"]


def test_fetch_of_unknown_file_is_permanent(
    fetcher: TelegramFileFetcher, fake_api: FakeBotApi
) -> None:
    fake_api.fail_next(
        "getFile", 400, "Bad Request: wrong file_id or the file is temporarily unavailable"
    )
    with pytest.raises(PermanentFetchError):
        fetcher.fetch(attachment("nope"), io.BytesIO())


def test_fetch_of_file_without_path_is_permanent(
    fetcher: TelegramFileFetcher, fake_api: FakeBotApi
) -> None:
    with pytest.raises(PermanentFetchError):  # Telegram gives no path for files over 20 MB
        fetcher.fetch(attachment("not-downloadable"), io.BytesIO())


def test_fetch_network_trouble_is_transient(
    fetcher: TelegramFileFetcher, fake_api: FakeBotApi
) -> None:
    fake_api.fail_next("getFile", 502, "Bad Gateway")
    with pytest.raises(TransientFetchError):
        fetcher.fetch(attachment(), io.BytesIO())


def test_each_sending_thread_gets_its_own_bot(fake_api: FakeBotApi) -> None:
    """The outbox sends in parallel (docs/outbox.md): each thread its own Bot and event loop,
    where one shared TelegramSender would make them queue on its lock."""
    root = fake_api.server.url_for("/").rstrip("/")
    sender = make_sender(_Runtime(TOKEN, api_url=root))
    assert sender is not None
    seen: list[Any] = []

    def send() -> None:
        seen.append(sender.current)
        assert sender.send(message()).provider_id.isdigit()

    try:
        threads = [threading.Thread(target=send) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        send()
        send()  # this thread again: the same sender
    finally:
        sender.close()
    assert len({id(s) for s in seen}) == 4
    assert seen[3] is seen[4]
    assert len(fake_api.calls_to("sendMessage")) == 5
