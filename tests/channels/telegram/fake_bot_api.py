"""A local fake of the Telegram Bot API, for the real ``telegram.Bot`` to talk HTTP to.

python-telegram-bot is not mocked: its ``Bot`` builds the real requests (form-encoded parameters,
JSON-encoded keyboards) and parses the real responses, so a test here fails when our use of the
library or of the API is wrong. The fake records every call (method and decoded parameters) and
answers like Telegram does, including its error shapes (``{"ok": false, "error_code": 403,
"description": ...}``, ``parameters.retry_after`` on 429), which python-telegram-bot turns into
its exceptions. Files for getFile are served under ``/file/bot<token>/<file_path>``.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from pytest_httpserver import HTTPServer
from telegram import Bot
from werkzeug import Request, Response

TOKEN = "7000000001:AAFakeTokenForTests_0123456789abcdef"
BOT_USER = {
    "id": 7000000001,
    "is_bot": True,
    "first_name": "Citoyen",
    "username": "citoyen_test_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
# Parameters python-telegram-bot sends JSON-encoded (everything else is a plain string).
JSON_PARAMS = {"chat_id", "reply_markup", "allowed_updates", "message_id", "show_alert"}


@dataclass
class ApiCall:
    method: str
    params: dict[str, Any]
    path: str


@dataclass
class FakeBotApi:
    server: HTTPServer
    calls: list[ApiCall] = field(default_factory=list)
    downloads: list[str] = field(default_factory=list)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # file_id -> (path, bytes)
    _failures: dict[str, deque[tuple[int, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(deque)
    )
    _ids: Any = field(default_factory=lambda: itertools.count(501))

    def __post_init__(self) -> None:
        self.server.expect_request(re.compile(r"^/bot[^/]+/\w+$")).respond_with_handler(self._api)
        self.server.expect_request(re.compile(r"^/file/bot[^/]+/.+$")).respond_with_handler(
            self._file
        )

    # -- what tests use -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.server.url_for("/bot")

    @property
    def base_file_url(self) -> str:
        return self.server.url_for("/file/bot")

    def bot(self, token: str = TOKEN) -> Bot:
        """The real python-telegram-bot ``Bot``, pointed at this fake."""
        return Bot(token, base_url=self.base_url, base_file_url=self.base_file_url)

    def calls_to(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method == method]

    def fail_next(
        self,
        method: str,
        status: int,
        description: str,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        """The next call of ``method`` fails the way Telegram fails it."""
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        self._failures[method].append((status, body))

    def add_file(self, file_id: str, file_path: str, content: bytes) -> None:
        self.files[file_id] = (file_path, content)

    # -- the server side ----------------------------------------------------------------------

    def _api(self, request: Request) -> Response:
        token, method = re.fullmatch(r"/bot([^/]+)/(\w+)", request.path).groups()  # type: ignore[union-attr]
        params: dict[str, Any] = {}
        source = request.form if request.form else (request.get_json(silent=True) or {})
        for key, value in source.items():
            params[key] = (
                json.loads(value) if key in JSON_PARAMS and isinstance(value, str) else value
            )
        self.calls.append(ApiCall(method, params, request.path))
        if token != TOKEN:
            return _json(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        if self._failures[method]:
            status, body = self._failures[method].popleft()
            return _json(status, body)
        return _json(200, {"ok": True, "result": self._result(method, params)})

    def _result(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getMe":
            return BOT_USER
        if method == "sendMessage":
            message: dict[str, Any] = {
                "message_id": next(self._ids),
                "date": 1717236400,
                "chat": {"id": params["chat_id"], "type": "private"},
                "from": BOT_USER,
                "text": params.get("text", ""),
            }
            markup = params.get("reply_markup")
            if isinstance(markup, dict) and "inline_keyboard" in markup:
                # A sent message carries its inline keyboard only: a reply keyboard (or its
                # removal) belongs to the chat, and Telegram does not echo it.
                message["reply_markup"] = markup
            return message
        if method == "getFile":
            file_id = params["file_id"]
            path, content = self.files.get(file_id, (None, b""))
            if path is None:
                return {"file_id": file_id, "file_unique_id": "missing"}
            return {
                "file_id": file_id,
                "file_unique_id": f"u-{file_id[-8:]}",
                "file_size": len(content),
                "file_path": path,
            }
        # answerCallbackQuery, setWebhook, deleteWebhook...: Telegram answers True.
        return True

    def _file(self, request: Request) -> Response:
        path = re.fullmatch(r"/file/bot[^/]+/(.+)", request.path).group(1)  # type: ignore[union-attr]
        self.downloads.append(path)
        for file_path, content in self.files.values():
            if file_path == path:
                return Response(content, status=200, content_type="application/octet-stream")
        return Response(b"", status=404)


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")
