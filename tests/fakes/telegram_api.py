"""A fake Telegram Bot API server on 127.0.0.1 (port 0) that python-telegram-bot 22 talks to as shipped.

telegram-test-api does not work with PTB 22 (DESIGN.md), so this copies what the real server does and PTB
relies on:

* ``POST /bot<TOKEN>/<method>`` with a JSON, url-encoded or multipart body (PTB sends url-encoded, or
  multipart when it uploads; every non-string value JSON-encoded, strings raw); ``GET`` with a query string.
  A wrong token answers 401, a malformed one 404, like Telegram.
* ``{"ok": true, "result": ...}``; errors ``{"ok": false, "error_code", "description", "parameters"}`` with
  the same HTTP status, which is what PTB maps to exceptions (429 + ``retry_after`` -> RetryAfter, 403 ->
  Forbidden, 400 -> BadRequest, 409 -> Conflict, other codes -> NetworkError).
* ``getUpdates`` long-polls: it confirms updates below ``offset``, answers at once when something is queued,
  otherwise waits up to ``timeout`` seconds; a second poller ends the first with 409, as does a webhook.
  Dates are in seconds.
* ``parse_mode=HTML`` is parsed like Telegram: unknown tags, a stray ``<`` and unbalanced tags are 400
  "can't parse entities"; the returned Message holds the plain text and entities, with whitespace trimmed;
  length limits (4,096 text, 1,024 caption, 64-byte callback_data) are checked after parsing.
* Edits: editing without ``reply_markup`` drops the inline keyboard; the same content again is 400
  "message is not modified".
* Files: user photos come in several PhotoSize entries (90/320/800/1280 thumbnails made with Pillow,
  smallest first); ``getFile`` gives ``file_path`` and ``/file/bot<TOKEN>/<file_path>`` serves the bytes.

Deliberate differences: the largest PhotoSize is the user's original bytes (Telegram recompresses and
caps it at 1280/2560 px, dropping EXIF), so tests can check exactly what the bot stored; updates are not
pushed to a webhook (``setWebhook`` is only recorded); chats exist only for users made with ``user()``
(anything else is 400 "chat not found").

Tests drive it in-process: ``user(...).send_text(...)`` queues updates, ``wait_for_messages`` awaits
replies (event-based), ``fail_next`` and ``block`` inject faults. It works the same when the bot runs in
another process pointed at ``root``.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from html import unescape
from typing import Any, NamedTuple

import pytest
from aiohttp import ClientSession, ClientTimeout, web

DEFAULT_TOKEN = "123456:TEST-TOKEN"
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64  # bytes
UPLOAD_LIMIT = 50 * 1024 * 1024  # what a bot may upload
DOWNLOAD_LIMIT = 20 * 1024 * 1024  # what getFile lets a bot download
PHOTO_BOXES = (90, 320, 800, 1280)  # Telegram's s/m/x/y thumbnail sizes

BLOCKED = "Forbidden: bot was blocked by the user"
_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: BLOCKED,
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_TOKEN_FORMAT = re.compile(r"\d+:[\w-]+")

# PTB's form encoding JSON-dumps every non-string value and sends strings raw, so the type of a form field
# is only known from its name. Unknown fields stay strings.
_INT_FIELDS = {
    "chat_id",
    "message_id",
    "offset",
    "limit",
    "reply_to_message_id",
    "from_chat_id",
    "cache_time",
    "user_id",
    "max_connections",
    "message_thread_id",
}
_FLOAT_FIELDS = {"timeout"}
_BOOL_FIELDS = {
    "disable_notification",
    "protect_content",
    "show_alert",
    "drop_pending_updates",
    "disable_web_page_preview",
    "allow_sending_without_reply",
    "has_spoiler",
    "disable_content_type_detection",
    "show_caption_above_media",
}
_JSON_FIELDS = {
    "reply_markup",
    "allowed_updates",
    "commands",
    "scope",
    "entities",
    "caption_entities",
    "reply_parameters",
    "link_preview_options",
    "message_ids",
    "media",
}
# Calls that reach a person: refused with 403 once that person blocked the bot.
_TO_CHAT = {
    "sendmessage",
    "sendphoto",
    "senddocument",
    "sendchataction",
    "editmessagetext",
    "editmessagereplymarkup",
    "editmessagecaption",
    "deletemessage",
    "forwardmessage",
    "copymessage",
    "sendmediagroup",
    "sendsticker",
    "sendvideo",
    "sendaudio",
    "sendvoice",
}
_CHAT_ACTIONS = {
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
}
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")


class ApiError(Exception):
    """Answered to the bot as ``{"ok": false, ...}`` with this HTTP status."""

    def __init__(self, status: int, description: str | None = None, *, retry_after: int | None = None):
        super().__init__(description)
        self.status = status
        self.description = description or _DESCRIPTIONS.get(status, "Error")
        self.retry_after = retry_after


@dataclass
class UploadedFile:
    """A multipart file part as the bot sent it."""

    filename: str
    content_type: str
    data: bytes


class Call(NamedTuple):
    method: str
    params: dict[str, Any]


@dataclass
class SentMessage:
    """Something the bot showed a person: a send, or an edit of the text (``method`` says which)."""

    method: str
    chat_id: int | str
    message_id: int
    text: str | None  # plain text after HTML parsing; the caption for photos and documents
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    file: bytes | None = None
    file_name: str | None = None
    mime_type: str | None = None
    raw_text: str | None = None  # text or caption exactly as the bot sent it (with the HTML tags)
    message: dict[str, Any] = field(default_factory=dict)  # the Message returned to the bot
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def buttons(self) -> list[tuple[str, str | None]]:
        """Inline buttons, row by row flattened: (label, callback_data)."""
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [(b.get("text", ""), b.get("callback_data")) for row in rows for b in row]


@dataclass
class _Fault:
    status: int
    retry_after: int | None
    description: str | None
    delay: float | None
    chat_id: int | str | None


@dataclass
class _File:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    width: int = 0
    height: int = 0

    def photo_size(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "width": self.width,
            "height": self.height,
            "file_size": len(self.data),
        }


class FakeUser:
    """A person in a private chat with the bot (chat id == user id). Each action queues one update and
    returns it (a dict valid for ``Update.de_json``)."""

    def __init__(
        self,
        tg: FakeTelegram,
        user_id: int,
        first_name: str,
        *,
        last_name: str | None,
        username: str | None,
        language_code: str | None,
    ) -> None:
        self.tg = tg
        self.id = user_id
        self.first_name = first_name
        self.last_name = last_name
        self.username = username
        self.language_code = language_code

    @property
    def chat_id(self) -> int:
        return self.id

    def as_user(self) -> dict[str, Any]:
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            if getattr(self, key) is not None:
                user[key] = getattr(self, key)
        return user

    def as_chat(self) -> dict[str, Any]:
        chat: dict[str, Any] = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name is not None:
            chat["last_name"] = self.last_name
        if self.username is not None:
            chat["username"] = self.username
        return chat

    def send_text(self, text: str) -> dict[str, Any]:
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]  # "/start" or "/start@fieldbot_test_bot"
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": _u16(command)}]
        return self._message(content)

    def tap(self, callback_data: str, message: SentMessage | dict[str, Any] | None = None) -> dict[str, Any]:
        """Tap an inline button. Without ``message``, the newest message in this chat whose current
        keyboard has that button (LookupError if none, so a test cannot tap a button that is not there);
        pass ``message`` to forge a tap on any message."""
        if message is None:
            current = self.tg._find_button(self.id, callback_data)
        else:
            message_id = message.message_id if isinstance(message, SentMessage) else message["message_id"]
            snapshot = message.message if isinstance(message, SentMessage) else message
            # Telegram attaches the message as it is now, after any edits.
            current = self.tg._messages.get((self.id, message_id), snapshot)
        query_id = str(next(self.tg._query_ids))
        self.tg._open_queries.add(query_id)
        return self.tg._enqueue(
            {
                "callback_query": {
                    "id": query_id,
                    "from": self.as_user(),
                    "message": current,
                    "chat_instance": f"-{self.id}{self.tg.bot_id}",
                    "data": callback_data,
                }
            }
        )

    def share_contact(
        self, phone: str, user_id: int | None = None, *, first_name: str | None = None, anonymous: bool = False
    ) -> dict[str, Any]:
        """The contact button shares one's own number (user_id == own id). Another ``user_id`` is a
        forwarded contact; ``anonymous`` a phone-book card for someone not on Telegram (no user_id)."""
        contact: dict[str, Any] = {"phone_number": phone, "first_name": first_name or self.first_name}
        if not anonymous:
            contact["user_id"] = self.id if user_id is None else user_id
        return self._message({"contact": contact})

    def send_photo(self, data: bytes, caption: str | None = None) -> dict[str, Any]:
        content: dict[str, Any] = {"photo": [f.photo_size() for f in self.tg._register_photo(data)]}
        if caption is not None:
            content["caption"] = caption
        return self._message(content)

    def send_document(self, data: bytes, file_name: str, mime_type: str, caption: str | None = None) -> dict[str, Any]:
        f = self.tg.register_file(data, kind="documents", file_name=file_name)
        content: dict[str, Any] = {
            "document": {
                "file_id": f.file_id,
                "file_unique_id": f.file_unique_id,
                "file_name": file_name,
                "mime_type": mime_type,
                "file_size": len(data),
            }
        }
        if caption is not None:
            content["caption"] = caption
        return self._message(content)

    @property
    def messages(self) -> list[SentMessage]:
        return self.tg.messages_to(self.id)

    async def wait_for_messages(self, count: int = 1, timeout: float = 10.0) -> list[SentMessage]:
        return await self.tg.wait_for_messages(self.id, count, timeout)

    def _message(self, content: dict[str, Any]) -> dict[str, Any]:
        message = {
            "message_id": self.tg._next_message_id(self.id),
            "from": self.as_user(),
            "chat": self.as_chat(),
            "date": int(time.time()),
            **content,
        }
        self.tg._messages[(self.id, message["message_id"])] = message
        return self.tg._enqueue({"message": message})


class FakeTelegram:
    def __init__(
        self, token: str = DEFAULT_TOKEN, *, bot_username: str = "fieldbot_test_bot", bot_name: str = "Fieldbot Test"
    ) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_username = bot_username
        self.bot_name = bot_name
        self.root = ""
        self.sent: list[SentMessage] = []
        self.calls: list[Call] = []
        self.errors: list[tuple[Call, int, str]] = []  # calls answered ok=false to a client still there
        self.webhook: dict[str, Any] = {}
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (scope type, language) -> list
        self.users: dict[int, FakeUser] = {}
        self._updates: list[dict[str, Any]] = []
        self._allowed_updates: list[str] | None = None
        self._update_ids = itertools.count(1)
        self._query_ids = itertools.count(4_000_000_000_000_001)
        self._open_queries: set[str] = set()
        self._message_ids: dict[int | str, itertools.count[int]] = {}
        self._messages: dict[tuple[int | str, int], dict[str, Any]] = {}
        self._files: dict[str, _File] = {}
        self._files_by_path: dict[str, _File] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._blocked: set[int | str] = set()
        self._read: dict[int | str, int] = {}  # wait_for_messages cursor per chat
        self._poll_generation = 0
        self._stopping = False
        self._wakeup = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # --- lifecycle -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=UPLOAD_LIMIT + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        # Short shutdown: stop() first wakes every waiting handler, so nothing should still be running.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.root = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self._stopping = True
        self._wake()  # pending long polls and injected delays return now
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"{self.root}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.root}/file/bot"

    # --- people --------------------------------------------------------------------------------------------

    def user(
        self,
        user_id: int,
        first_name: str = "Người dùng",
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "vi",
    ) -> FakeUser:
        """The person with this id (created once; they have started the bot, so it may message them)."""
        if user_id not in self.users:
            self.users[user_id] = FakeUser(
                self, user_id, first_name, last_name=last_name, username=username, language_code=language_code
            )
        return self.users[user_id]

    def register_file(
        self, data: bytes, *, kind: str = "documents", file_name: str | None = None, width: int = 0, height: int = 0
    ) -> _File:
        """A file on "Telegram's servers" (a user upload): getFile and the download URL will serve it."""
        n = len(self._files) + 1
        ext = file_name.rsplit(".", 1)[-1] if file_name and "." in file_name else "jpg" if kind == "photos" else "bin"
        f = _File(
            file_id=f"BQACAgIAAxkBAAI{n:05d}{secrets.token_urlsafe(24)}",
            file_unique_id=f"AgAD{n:05d}{secrets.token_hex(3)}",
            # Unique and unlikely to exist in the bot's working directory: PTB treats a file_path
            # that exists locally as a local file instead of downloading it.
            file_path=f"{kind}/file_{n}_{secrets.token_hex(4)}.{ext}",
            data=data,
            width=width,
            height=height,
        )
        self._files[f.file_id] = f
        self._files_by_path[f.file_path] = f
        return f

    def file_bytes(self, file_id: str) -> bytes:
        return self._files[file_id].data

    # --- what the bot did ----------------------------------------------------------------------------------

    def messages_to(self, chat_id: int | str) -> list[SentMessage]:
        return [m for m in self.sent if m.chat_id == _chat(chat_id)]

    def texts(self, chat_id: int | str) -> list[str]:
        return [m.text or "" for m in self.messages_to(chat_id)]

    def current(self, chat_id: int | str, message_id: int) -> dict[str, Any] | None:
        """A message as it is now (after edits), or None once deleted."""
        return self._messages.get((_chat(chat_id), message_id))

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method.lower() == method.lower()]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0, *, what: str = "") -> None:
        """Until ``predicate()`` holds, re-checked whenever the bot calls the API or an update is queued."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(
                    f"waited {timeout}s for {what or 'a condition'}; last calls: "
                    f"{[(c.method, c.params.get('chat_id')) for c in self.calls[-8:]]}"
                )
            await self._wait_change(left)

    async def wait_for_messages(self, chat_id: int | str, count: int = 1, timeout: float = 10.0) -> list[SentMessage]:
        """The next ``count`` messages to this chat not returned by an earlier call (a read cursor per
        chat, like a person reading along): after each action a test waits for just its replies."""
        chat = _chat(chat_id)
        start = self._read.get(chat, 0)

        def unread() -> list[SentMessage]:
            return self.messages_to(chat)[start:]

        try:
            await self.wait_for(lambda: len(unread()) >= count, timeout, what=f"{count} message(s) to {chat}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; unread: {[m.text for m in unread()]}") from None
        self._read[chat] = start + count
        return unread()[:count]

    async def wait_for_calls(self, method: str, count: int = 1, timeout: float = 10.0) -> list[Call]:
        await self.wait_for(lambda: len(self.calls_of(method)) >= count, timeout, what=f"{count} {method}")
        return self.calls_of(method)

    # --- faults --------------------------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        status: int = 500,
        count: int = 1,
        retry_after: int | None = None,
        description: str | None = None,
        delay: float | None = None,
        chat_id: int | str | None = None,
    ) -> None:
        """The next ``count`` calls of ``method`` (to ``chat_id`` only, when given) fail with ``status``.
        429 needs ``retry_after``. ``delay`` holds the answer that long first (past the client's read
        timeout it is a timeout); with ``status=200`` the call is then carried out anyway, like a slow
        Telegram that did deliver the message the client gave up on."""
        if status == 429 and retry_after is None:
            retry_after = 1
        if status == 429 and description is None:
            description = f"Too Many Requests: retry after {retry_after}"
        chat = None if chat_id is None else _chat(chat_id)
        self._faults.setdefault(method.lower(), []).extend(
            _Fault(status, retry_after, description, delay, chat) for _ in range(count)
        )

    def block(self, chat_id: int | str) -> None:
        self._blocked.add(_chat(chat_id))

    def unblock(self, chat_id: int | str) -> None:
        self._blocked.discard(_chat(chat_id))

    # --- internals -----------------------------------------------------------------------------------------

    def _wake(self) -> None:
        """Tell every waiter (long polls, delays, wait_for) that something changed."""
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    async def _wait_change(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
        except TimeoutError:
            pass

    async def _sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self._stopping and (left := deadline - loop.time()) > 0:
            await self._wait_change(left)

    def _enqueue(self, update: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), **update}
        self._updates.append(update)
        self._wake()
        return update

    def _next_message_id(self, chat_id: int | str) -> int:
        # One sequence per private chat, shared by the person's and the bot's messages, like Telegram.
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def _find_button(self, chat_id: int, data: str) -> dict[str, Any]:
        for (chat, _), message in reversed(self._messages.items()):
            rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
            if chat == chat_id and any(b.get("callback_data") == data for row in rows for b in row):
                return message
        raise LookupError(f"no message to {chat_id} has a button with callback_data {data!r}")

    def _register_photo(self, data: bytes) -> list[_File]:
        try:
            sizes = _photo_sizes(data)
        except ValueError:  # junk bytes (property tests): still "a photo", one 1x1 size
            sizes = [(data, 1, 1)]
        return [self.register_file(blob, kind="photos", width=w, height=h) for blob, w, h in sizes]

    def _bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": self.bot_name, "username": self.bot_username}

    # --- HTTP ----------------------------------------------------------------------------------------------

    async def _download(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return _error_response(ApiError(401))
        f = self._files_by_path.get(request.match_info["path"])
        if f is None:
            return _error_response(ApiError(404))
        return web.Response(body=f.data, content_type="application/octet-stream")

    async def _api(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        if token != self.token:
            return _error_response(ApiError(401 if _TOKEN_FORMAT.fullmatch(token) else 404))
        call = Call(request.match_info["method"], await _read_params(request))
        self.calls.append(call)
        self._wake()
        try:
            result = await self._answer(call)
        except ApiError as err:
            # Only answers someone reads: an abandoned long poll ended by the next one (PTB's Updater.stop
            # does exactly that) is not an error anybody saw.
            if request.transport is not None and not request.transport.is_closing():
                self.errors.append((call, err.status, err.description))
            self._wake()
            return _error_response(err)
        self._wake()
        return web.json_response({"ok": True, "result": result})

    async def _answer(self, call: Call) -> Any:
        name = call.method.lower()  # Telegram's method names are case-insensitive
        chat = call.params.get("chat_id")
        faults = self._faults.get(name) or []
        fault = next((f for f in faults if f.chat_id in (None, chat)), None)
        if fault is not None:
            faults.remove(fault)
            if fault.delay:
                await self._sleep(fault.delay)
            if fault.status != 200:
                raise ApiError(fault.status, fault.description, retry_after=fault.retry_after)
        if name in _TO_CHAT and not call.params.get("inline_message_id"):
            if chat is None:
                raise ApiError(400, "Bad Request: chat_id is empty")
            if chat in self._blocked:
                raise ApiError(403, BLOCKED)
            if chat not in self.users:
                raise ApiError(400, "Bad Request: chat not found")
        handler = getattr(self, f"_m_{name}", None)
        return True if handler is None else await handler(call.params)  # unknown methods: recorded, ok

    # --- methods -------------------------------------------------------------------------------------------

    async def _m_getme(self, p: dict[str, Any]) -> Any:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _m_getupdates(self, p: dict[str, Any]) -> Any:
        if self.webhook.get("url"):
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = p.get("offset")
        limit = min(max(int(p.get("limit") or 100), 1), 100)
        timeout = min(max(float(p.get("timeout") or 0), 0.0), 50.0)
        if "allowed_updates" in p:  # remembered for later calls, as Telegram does; [] means the default
            self._allowed_updates = list(p["allowed_updates"] or []) or None
        if offset:  # confirms everything before it; a negative offset keeps only the last -offset
            self._updates = (
                [u for u in self._updates if u["update_id"] >= offset] if offset > 0 else self._updates[offset:]
            )
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake()  # an older poll still waiting is ended with 409 below
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._allowed_updates is not None:  # Telegram does not keep updates nobody asked for
                self._updates = [u for u in self._updates if _update_type(u) in self._allowed_updates]
            if self._updates or self._stopping:
                return self._updates[:limit]
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                )
            left = deadline - loop.time()
            if left <= 0:
                return []
            await self._wait_change(left)

    async def _m_setwebhook(self, p: dict[str, Any]) -> Any:
        if not str(p.get("url") or "").startswith("https://") and p.get("url"):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook = dict(p)
        return True

    async def _m_deletewebhook(self, p: dict[str, Any]) -> Any:
        self.webhook = {}
        if p.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _m_getwebhookinfo(self, p: dict[str, Any]) -> Any:
        info: dict[str, Any] = {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook.get("allowed_updates"):
            info["allowed_updates"] = self.webhook["allowed_updates"]
        return info

    def _commands_key(self, p: dict[str, Any]) -> tuple[str, str]:
        return ((p.get("scope") or {}).get("type", "default"), p.get("language_code") or "")

    async def _m_setmycommands(self, p: dict[str, Any]) -> Any:
        commands = p.get("commands") or []
        for c in commands:
            if not _COMMAND.fullmatch(str(c.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(c.get("description", ""))) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[self._commands_key(p)] = commands
        return True

    async def _m_getmycommands(self, p: dict[str, Any]) -> Any:
        return self.commands.get(self._commands_key(p), [])

    async def _m_deletemycommands(self, p: dict[str, Any]) -> Any:
        self.commands.pop(self._commands_key(p), None)
        return True

    async def _m_sendchataction(self, p: dict[str, Any]) -> Any:
        if p.get("action") not in _CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    async def _m_sendmessage(self, p: dict[str, Any]) -> Any:
        text, entities = _parse_text(p.get("text"), p.get("parse_mode"), TEXT_LIMIT, "message text")
        return self._deliver(
            "sendMessage", p, {"text": text, **_opt("entities", entities)}, text=text, raw=p.get("text")
        )

    async def _m_sendphoto(self, p: dict[str, Any]) -> Any:
        caption, entities = _parse_caption(p)
        data, name, mime = await self._input_file(p.get("photo"))
        try:
            [(_, w, h)] = _photo_sizes(data, thumbnails=False)
        except ValueError:
            raise ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED") from None
        f = self.register_file(data, kind="photos", width=w, height=h)
        content = {"photo": [f.photo_size()], **_opt("caption", caption), **_opt("caption_entities", entities)}
        return self._deliver(
            "sendPhoto",
            p,
            content,
            text=caption,
            raw=p.get("caption"),
            file=data,
            file_name=name,
            mime_type=mime or "image/jpeg",
        )

    async def _m_senddocument(self, p: dict[str, Any]) -> Any:
        caption, entities = _parse_caption(p)
        data, name, mime = await self._input_file(p.get("document"))
        f = self.register_file(data, kind="documents", file_name=name)
        document = {
            "file_id": f.file_id,
            "file_unique_id": f.file_unique_id,
            "file_size": len(data),
            **_opt("file_name", name),
            **_opt("mime_type", mime),
        }
        content = {"document": document, **_opt("caption", caption), **_opt("caption_entities", entities)}
        return self._deliver(
            "sendDocument", p, content, text=caption, raw=p.get("caption"), file=data, file_name=name, mime_type=mime
        )

    async def _m_editmessagetext(self, p: dict[str, Any]) -> Any:
        if p.get("inline_message_id"):
            return True
        message = self._editable(p)
        if "text" not in message:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        text, entities = _parse_text(p.get("text"), p.get("parse_mode"), TEXT_LIMIT, "message text")
        markup = _check_markup(p.get("reply_markup"))  # omitted = the inline keyboard goes away
        same = (text, entities or None, markup) == (
            message["text"],
            message.get("entities"),
            message.get("reply_markup"),
        )
        if same:
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a current content and reply markup "
                "of the message",
            )
        edited = {k: v for k, v in message.items() if k not in ("text", "entities", "reply_markup")}
        edited.update(
            text=text, edit_date=int(time.time()), **_opt("entities", entities), **_opt("reply_markup", markup)
        )
        self._messages[(edited["chat"]["id"], edited["message_id"])] = edited
        self.sent.append(
            SentMessage(
                "editMessageText",
                edited["chat"]["id"],
                edited["message_id"],
                text,
                p.get("parse_mode"),
                markup,
                raw_text=p.get("text"),
                message=edited,
                params=p,
            )
        )
        return edited

    async def _m_editmessagereplymarkup(self, p: dict[str, Any]) -> Any:
        if p.get("inline_message_id"):
            return True
        message = self._editable(p)
        markup = _check_markup(p.get("reply_markup"))
        if markup == message.get("reply_markup"):
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a current content and reply markup "
                "of the message",
            )
        edited = {k: v for k, v in message.items() if k != "reply_markup"}
        edited.update(edit_date=int(time.time()), **_opt("reply_markup", markup))
        self._messages[(edited["chat"]["id"], edited["message_id"])] = edited
        return edited

    async def _m_deletemessage(self, p: dict[str, Any]) -> Any:
        if self._messages.pop((p.get("chat_id"), p.get("message_id")), None) is None:  # type: ignore[arg-type]
            raise ApiError(400, "Bad Request: message to delete not found")
        return True

    async def _m_answercallbackquery(self, p: dict[str, Any]) -> Any:
        query_id = str(p.get("callback_query_id"))
        if query_id not in self._open_queries:  # unknown, or answered already
            raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        self._open_queries.discard(query_id)
        if len(str(p.get("text") or "")) > 200:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        return True

    async def _m_getfile(self, p: dict[str, Any]) -> Any:
        f = self._files.get(str(p.get("file_id")))
        if f is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if len(f.data) > DOWNLOAD_LIMIT:
            raise ApiError(400, "Bad Request: file is too big")
        return {
            "file_id": f.file_id,
            "file_unique_id": f.file_unique_id,
            "file_size": len(f.data),
            "file_path": f.file_path,
        }

    # --- helpers for the methods ---------------------------------------------------------------------------

    def _deliver(
        self,
        method: str,
        p: dict[str, Any],
        content: dict[str, Any],
        *,
        text: str | None,
        raw: Any,
        file: bytes | None = None,
        file_name: str | None = None,
        mime_type: str | None = None,
    ) -> dict[str, Any]:
        chat_id = p["chat_id"]
        markup = _check_markup(p.get("reply_markup"))
        message = {
            "message_id": self._next_message_id(chat_id),
            "from": self._bot_user(),
            "chat": self.users[chat_id].as_chat(),
            "date": int(time.time()),
            **content,
        }
        if markup is not None and "inline_keyboard" in markup:  # reply keyboards are not part of a Message
            message["reply_markup"] = markup
        self._messages[(chat_id, message["message_id"])] = message
        self.sent.append(
            SentMessage(
                method,
                chat_id,
                message["message_id"],
                text,
                p.get("parse_mode"),
                markup,
                file=file,
                file_name=file_name,
                mime_type=mime_type,
                raw_text=raw if isinstance(raw, str) else None,
                message=message,
                params=p,
            )
        )
        return message

    def _editable(self, p: dict[str, Any]) -> dict[str, Any]:
        message = self._messages.get((p.get("chat_id"), p.get("message_id")))  # type: ignore[arg-type]
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if message["from"]["id"] != self.bot_id:
            raise ApiError(400, "Bad Request: message can't be edited")
        return message

    async def _input_file(self, value: Any) -> tuple[bytes, str | None, str | None]:
        """(bytes, file name, mime type) of an upload, a file_id or a URL Telegram would fetch."""
        if isinstance(value, UploadedFile):
            return value.data, value.filename, value.content_type
        if not isinstance(value, str) or not value:
            raise ApiError(400, "Bad Request: there is no file in the request")
        if value.startswith(("http://", "https://")):
            try:
                async with ClientSession(timeout=ClientTimeout(total=5)) as session:
                    async with session.get(value) as resp:
                        resp.raise_for_status()
                        return await resp.read(), value.rsplit("/", 1)[-1] or None, resp.content_type
            except Exception:
                raise ApiError(400, "Bad Request: failed to get HTTP URL content") from None
        f = self._files.get(value)
        if f is None:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        return f.data, f.file_path.rsplit("/", 1)[-1], None


# --- request parsing ---------------------------------------------------------------------------------------


async def _read_params(request: web.Request) -> dict[str, Any]:
    raw: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body = await request.json() if request.can_read_body else {}
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="body is not a JSON object")
        return {k: _normalise(k, v) for k, v in {**raw, **body}.items()}
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for key, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                raw[key] = UploadedFile(value.filename, value.content_type, value.file.read())
            else:
                raw[key] = value if isinstance(value, str) else bytes(value).decode()
    return {k: _coerce(k, v) for k, v in raw.items()}


def _coerce(key: str, value: Any) -> Any:
    """A form value (a string) to the type the parameter has in the Bot API."""
    if not isinstance(value, str):
        return value
    try:
        if key in _JSON_FIELDS:
            return json.loads(value)
        if key in _FLOAT_FIELDS:
            return float(value)
        if key in _BOOL_FIELDS:
            return value.lower() in ("true", "1")
        if key in _INT_FIELDS and re.fullmatch(r"-?\d+", value):
            return int(value)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{key} is malformed") from None
    return value


def _normalise(key: str, value: Any) -> Any:
    """A JSON body is typed already, except that ids may come as strings."""
    return _coerce(key, value) if isinstance(value, str) and key in _INT_FIELDS else value


def _chat(chat_id: int | str) -> int | str:
    return int(chat_id) if isinstance(chat_id, str) and re.fullmatch(r"-?\d+", chat_id) else chat_id


def _update_type(update: dict[str, Any]) -> str:
    return next(k for k in update if k != "update_id")


def _opt(key: str, value: Any) -> dict[str, Any]:
    return {} if value is None or value == [] else {key: value}


def _error_response(err: ApiError) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": err.status, "description": err.description}
    if err.retry_after is not None:
        body["parameters"] = {"retry_after": err.retry_after}
    return web.json_response(body, status=err.status)


def _check_markup(markup: Any) -> dict[str, Any] | None:
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    for row in markup.get("inline_keyboard") or []:
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= CALLBACK_DATA_LIMIT:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
            if len(button) < 2:  # a label alone: Telegram wants an action on every inline button
                raise ApiError(400, "Bad Request: text buttons are unallowed in the inline keyboard")
    return markup


# --- text: Telegram's HTML parse mode ------------------------------------------------------------------------

_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_ENTITY = re.compile(r"&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")
_ATTR = re.compile(r"""([\w-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")


class HtmlError(ValueError):
    pass


def _u16(s: str) -> int:
    """Telegram counts offsets and lengths in UTF-16 code units."""
    return len(s.encode("utf-16-le")) // 2


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Plain text and entities, or HtmlError worded like Telegram's (after "can't parse entities: ")."""
    parts: list[str] = []
    length = 0
    stack: list[tuple[str, int, dict[str, Any] | None]] = []
    entities: list[dict[str, Any]] = []
    i = 0
    while i < len(source):
        ch = source[i]
        if ch not in "<&":
            j = min((k for k in (source.find("<", i), source.find("&", i)) if k >= 0), default=len(source))
            parts.append(source[i:j])
            length += _u16(source[i:j])
            i = j
            continue
        if ch == "&":  # a known entity is decoded; any other "&" is just text, as Telegram does
            m = _HTML_ENTITY.match(source, i)
            piece = unescape(m.group(0)) if m else "&"
            parts.append(piece)
            length += _u16(piece)
            i = m.end() if m else i + 1
            continue
        at = len(source[:i].encode())
        end = source.find(">", i)
        if end < 0:
            raise HtmlError(f"Unclosed start tag at byte offset {at}")
        inner = source[i + 1 : end]
        if inner.startswith("/"):
            name = inner[1:].strip().lower()
            if not stack:
                raise HtmlError(f"Unexpected end tag at byte offset {at}")
            tag, start, extra = stack.pop()
            if name != tag:
                raise HtmlError(f'Unmatched end tag at byte offset {at}, expected "</{tag}>", found "</{name}>"')
            if length > start and extra is not None:
                entities.append({"type": _ENTITY_TYPES[tag], "offset": start, "length": length - start, **extra})
        else:
            name = re.match(r"\S*", inner).group(0).lower()  # type: ignore[union-attr]
            if name not in _ENTITY_TYPES:
                raise HtmlError(f'Unsupported start tag "{name}" at byte offset {at}')
            attrs = {
                m.group(1).lower(): unescape(next(g for g in m.groups()[1:] if g is not None))
                for m in _ATTR.finditer(inner)
            }
            stack.append((name, length, _tag_extra(name, attrs)))
        i = end + 1
    if stack:
        raise HtmlError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return "".join(parts), sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def _tag_extra(name: str, attrs: dict[str, str]) -> dict[str, Any] | None:
    """Extra entity fields for a tag; None when the tag makes no entity."""
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise HtmlError('Tag "span" must have class "tg-spoiler"')
    if name == "a":
        return {"url": attrs["href"]} if attrs.get("href") else None
    if name == "pre" and attrs.get("class", "").startswith("language-"):
        return {"language": attrs["class"][len("language-") :]}
    if name == "tg-emoji":
        return {"custom_emoji_id": attrs.get("emoji-id", "")}
    return {}


def _parse_text(raw: Any, parse_mode: Any, limit: int, what: str) -> tuple[str, list[dict[str, Any]]]:
    """Text as Telegram stores it: parsed, trimmed, checked for emptiness and length."""
    text, entities = str(raw or ""), []
    if str(parse_mode or "").upper() == "HTML":
        try:
            text, entities = parse_html(text)
        except HtmlError as exc:
            raise ApiError(400, f"Bad Request: can't parse entities: {exc}") from None
    # Telegram trims surrounding whitespace; entities move with the text.
    lead = _u16(text[: len(text) - len(text.lstrip())])
    text = text.strip()
    total = _u16(text)
    trimmed = []
    for e in entities:
        start, end = max(e["offset"] - lead, 0), min(e["offset"] + e["length"] - lead, total)
        if end > start:
            trimmed.append({**e, "offset": start, "length": end - start})
    if what == "message text" and not text:
        raise ApiError(400, "Bad Request: message text is empty")
    if total > limit:
        raise ApiError(
            400,
            "Bad Request: message is too long"
            if what == "message text"
            else "Bad Request: message caption is too long",
        )
    return text, trimmed


def _parse_caption(p: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    if p.get("caption") is None:
        return None, []
    caption, entities = _parse_text(p["caption"], p.get("parse_mode"), CAPTION_LIMIT, "caption")
    return caption or None, entities


# --- photos ------------------------------------------------------------------------------------------------


def _photo_sizes(data: bytes, *, thumbnails: bool = True) -> list[tuple[bytes, int, int]]:
    """(bytes, width, height), smallest first: JPEG thumbnails for each box the photo exceeds, then the
    original. ValueError for bytes that are not an image."""
    from PIL import Image  # the project depends on Pillow; imported here so the fake loads fast

    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            if not thumbnails:
                return [(data, width, height)]
            scale = max(PHOTO_BOXES[-1] / max(width, height), 1 / 8)
            if scale < 1:  # decode at a reduced size: thumbnails don't need the full photo
                im.draft("RGB", (max(int(width * scale), 1), max(int(height * scale), 1)))
            base = im.convert("RGB")
    except Exception as exc:
        raise ValueError("not an image") from exc
    sizes = []
    for box in PHOTO_BOXES:
        if max(width, height) > box:
            thumb = base.copy()
            thumb.thumbnail((box, box))
            out = io.BytesIO()
            thumb.save(out, "JPEG", quality=80)
            sizes.append((out.getvalue(), thumb.width, thumb.height))
    sizes.append((data, width, height))
    return sizes


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    """A running fake Bot API for one test (import this fixture into the test module)."""
    async with FakeTelegram() as tg:
        yield tg
