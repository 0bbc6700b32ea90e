"""A fake Zalo Bot API server on 127.0.0.1 (port 0) for adapter tests: real HTTP, the platform's shapes.

What it copies from the platform (issues 7 and 14): ``/bot<TOKEN>/<method>`` with JSON or query parameters;
``{"ok": true, "result": ...}`` / ``{"ok": false, "error_code", "description"}`` envelopes with the documented
codes (400 bad request or unknown method, 401 token, 403 *internal server error*, 404 invalid access, 408 poll
timeout, 429 quota exceeded: no ``parameters.retry_after``); ``getUpdates`` hands out ONE update per call (no
update id, no offset) and long-polls up to ``timeout`` seconds, ending an empty poll with error 408;
``getUpdates`` refused while a webhook is set; ``sendMessage`` refuses texts over 2,000 characters;
``sendPhoto`` takes a URL only and fetches it, like the platform does; ``sendChatAction`` answers
``{"ok": true}`` without a result; "user uploaded" images are served under ``/files/<name>``; ``setWebhook``
wants public HTTPS and an 8–256 character secret, POSTs a test request to the URL while it runs and reports
``result.verification`` (``webhook.ok``, ``webhook.err.unreachable``, ...); webhook deliveries are flat
update bodies with the secret in ``X-Bot-Api-Secret-Token``.

Not documented, chosen here (unverified against the live platform): the code refusing ``getUpdates`` while
a webhook is set (400 here), the test request's body (``verification_body``) and whether it carries the secret
header (``verification_secret``), and ``webhook.err.status`` for a test request answered with non-2xx.

The public HTTPS webhook URL is reached through ``webhook_target`` (like a reverse proxy): scheme and host are
replaced by it, the path kept.

Fault injection: ``fail_next(method, status=429|500|..., count=1)`` (``retry_after`` becomes an HTTP
``Retry-After`` header) and ``delay(method, seconds)``. Tests await what the bot sent with ``wait_sent``: no
sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import ClientSession, ClientTimeout, web

TOKEN = "2718281828:fake-zalo-Tok3n_abcdefXYZ"
SECRET_HEADER = "X-Bot-Api-Secret-Token"
TEXT_LIMIT = 2000
BOT_INFO = {
    "id": "8213377402459061357",
    "account_name": "bot.fieldbot",
    "account_type": "BASIC",
    "can_join_groups": False,
    "display_name": "Fieldbot Sóng và máy tính",
}

_DESCRIPTIONS = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Internal server error",
    404: "Invalid access",
    408: "Request timeout",
    429: "Quota exceeded",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    photo_bytes: bytes | None = None  # what sendPhoto fetched from the URL it was given


@dataclass
class _Fault:
    status: int
    retry_after: float | None = None
    chat_id: str | None = None  # only calls to this chat fail


@dataclass
class FakeZaloApi:
    token: str = TOKEN
    max_poll_wait: float = 5.0  # caps the client's long-poll timeout so a test never hangs
    calls: list[Call] = field(default_factory=list)
    sent: list[Call] = field(default_factory=list)  # successful sendMessage / sendPhoto, in order
    webhook: dict[str, Any] = field(default_factory=lambda: {"url": "", "secret_token": None})
    webhook_target: str | None = None  # "http://127.0.0.1:PORT": where the public webhook URL really goes
    verify_webhooks: bool = True  # setWebhook POSTs a test request and reports result.verification
    verification_body: Any = field(default_factory=dict)  # what the test request carries (undocumented)
    verification_secret: bool = True  # whether it carries X-Bot-Api-Secret-Token (undocumented)
    verifications: list[tuple[int | None, str]] = field(default_factory=list)  # (HTTP status, outcome)

    def __post_init__(self) -> None:
        self._updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._faults: dict[str, deque[_Fault]] = {}
        self._delays: dict[str, tuple[float, int | None]] = {}
        self._files: dict[str, tuple[bytes, str]] = {}
        self._changed = asyncio.Condition()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.file_downloads = 0

    # --- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> FakeZaloApi:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/files/{name}", self._file)
        # Cancel the handler when the client goes away, so an abandoned long poll puts nothing in limbo.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeZaloApi:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def api_url(self) -> str:
        """What the bot is configured with (``FIELDBOT_ZALO_API_URL``)."""
        return self.base_url

    # --- what users do -------------------------------------------------------------------------------------

    def message(
        self,
        *,
        user_id: str = "u-lan",
        chat_id: str | None = None,
        message_id: str | None = None,
        date_ms: int = 1637110800000,
        chat_type: str = "PRIVATE",
        display_name: str = "Cô Lan",
        **content: Any,
    ) -> dict[str, Any]:
        return {
            "from": {"id": user_id, "display_name": display_name, "is_bot": False},
            "chat": {"id": chat_id or user_id, "chat_type": chat_type},
            "message_id": message_id or secrets.token_hex(10),
            "date": date_ms,
            **content,
        }

    def text_update(self, text: str, **kw: Any) -> dict[str, Any]:
        return {"event_name": "message.text.received", "message": self.message(text=text, **kw)}

    def image_update(
        self, photo_url: str, *, caption: str | None = None, key: str = "photo_url", **kw: Any
    ) -> dict[str, Any]:
        content: dict[str, Any] = {key: photo_url}
        if caption is not None:
            content["caption"] = caption
        return {"event_name": "message.image.received", "message": self.message(**content, **kw)}

    def voice_update(self, voice_url: str = "https://zalo.example/v/1.aac", **kw: Any) -> dict[str, Any]:
        return {"event_name": "message.voice.received", "message": self.message(voice_url=voice_url, **kw)}

    @staticmethod
    def bare(update: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """The same update without ``event_name`` (as some answers come), with ``extra`` message fields (e.g.
        ``message_type="CHAT_PHOTO"``, ``from_={...}`` to replace the sender)."""
        message = dict(update["message"])
        if "from_" in extra:
            message["from"] = extra.pop("from_")
        message.update(extra)
        return {"message": message}

    def sticker_update(self, **kw: Any) -> dict[str, Any]:
        return {
            "event_name": "message.sticker.received",
            "message": self.message(sticker="c3ae8d2b6a4b4a0f", url="https://zalo.example/st.png", **kw),
        }

    def unsupported_update(self, **kw: Any) -> dict[str, Any]:
        return {"event_name": "message.unsupported.received", "message": self.message(**kw)}

    def push(self, update: dict[str, Any]) -> dict[str, Any]:
        self._updates.put_nowait(update)
        return update

    def add_image(self, data: bytes, *, content_type: str = "image/jpeg") -> str:
        """A "user uploaded" image; returns the URL the platform would put in the update."""
        name = secrets.token_hex(8) + (".jpg" if content_type == "image/jpeg" else ".png")
        self._files[name] = (data, content_type)
        return f"{self.base_url}/files/{name}"

    def pending_updates(self) -> int:
        return self._updates.qsize()

    # --- faults -------------------------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        status: int = 500,
        count: int = 1,
        retry_after: float | None = None,
        chat_id: str | None = None,
    ) -> None:
        """The next ``count`` calls of ``method`` (to ``chat_id`` only, when given) fail with ``status``."""
        queue = self._faults.setdefault(method, deque())
        queue.extend(_Fault(status, retry_after, chat_id) for _ in range(count))

    def delay(self, method: str, seconds: float, *, count: int | None = None) -> None:
        """Answer ``method`` after ``seconds``: the next ``count`` calls, or all of them when None."""
        self._delays[method] = (seconds, count)

    # --- what the bot did ----------------------------------------------------------------------------------

    def texts(self, chat_id: str | None = None) -> list[str]:
        """Texts and captions sent, in order, optionally to one chat."""
        out = []
        for call in self.sent:
            if chat_id is not None and call.params.get("chat_id") != chat_id:
                continue
            text = call.params.get("text") if call.method == "sendMessage" else call.params.get("caption")
            if text:
                out.append(text)
        return out

    def method_calls(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_sent(self, count: int, *, timeout: float = 5.0) -> list[Call]:
        """Until at least ``count`` messages were sent in total; raises TimeoutError otherwise."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.sent) >= count), timeout)
        return list(self.sent)

    async def wait_calls(self, method: str, count: int, *, timeout: float = 5.0) -> list[Call]:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.method_calls(method)) >= count), timeout)
        return self.method_calls(method)

    async def wait_until(self, predicate, *, timeout: float = 5.0) -> None:
        """Until ``predicate()`` holds (checked after every API call); raises TimeoutError otherwise."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- the HTTP side ---------------------------------------------------------------------------------------

    async def _file(self, request: web.Request) -> web.Response:
        item = self._files.get(request.match_info["name"])
        if item is None:
            return web.Response(status=404)
        self.file_downloads += 1
        return web.Response(body=item[0], content_type=item[1])

    async def _api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401)
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return _error(400, "body is not JSON")
            if isinstance(body, dict):
                params.update(body)
        call = Call(method, params)
        self.calls.append(call)
        try:
            if method in self._delays:
                seconds, left = self._delays[method]
                if left is not None:
                    if left <= 1:
                        del self._delays[method]
                    else:
                        self._delays[method] = (seconds, left - 1)
                await asyncio.sleep(seconds)  # the server being slow; the client's timeout is what is tested
            faults = self._faults.get(method) or ()
            fault = next((f for f in faults if f.chat_id in (None, params.get("chat_id"))), None)
            if fault is not None:
                self._faults[method].remove(fault)
                return _error(fault.status, retry_after=fault.retry_after)
            handler = getattr(self, "_m_" + method, None)
            if handler is None:
                return _error(400, "Unknown method")
            return await handler(call)
        finally:
            await self._notify()

    async def _m_getMe(self, call: Call) -> web.Response:
        return _ok(BOT_INFO)

    async def _m_getUpdates(self, call: Call) -> web.Response:
        if self.webhook["url"]:
            return _error(400, "getUpdates is not available while a webhook is set")
        wait = min(float(call.params.get("timeout", 30)), self.max_poll_wait)
        try:
            update = await asyncio.wait_for(self._updates.get(), wait)
        except TimeoutError:
            return _error(408)
        return _ok(update)

    async def _m_setWebhook(self, call: Call) -> web.Response:
        url = str(call.params.get("url") or "")
        secret = str(call.params.get("secret_token") or "")
        if not url.startswith("https://"):
            return _error(400, "url must be a public HTTPS URL")
        if not 8 <= len(secret) <= 256:
            return _error(400, "secret_token must be 8-256 characters")
        self.webhook = {"url": url, "secret_token": secret}
        result: dict[str, Any] = {"url": url, "updated_at": 1637110800000}
        if self.verify_webhooks:
            result["verification"] = await self._verify(url, secret)
        return _ok(result)

    def target_of(self, url: str) -> str:
        if self.webhook_target is None:
            return url
        parts = urlsplit(url)
        return self.webhook_target.rstrip("/") + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    async def _verify(self, url: str, secret: str) -> str:
        """The test request the platform sends while ``setWebhook`` runs."""
        headers = {"Content-Type": "application/json"}
        if self.verification_secret:
            headers[SECRET_HEADER] = secret
        body = json.dumps(self.verification_body).encode() if self.verification_body is not None else b""
        try:
            async with ClientSession(timeout=ClientTimeout(total=5)) as session:
                async with session.post(self.target_of(url), data=body, headers=headers) as resp:
                    status = resp.status
        except Exception:
            self.verifications.append((None, "webhook.err.unreachable"))
            return "webhook.err.unreachable"
        outcome = "webhook.ok" if 200 <= status < 300 else "webhook.err.status"
        self.verifications.append((status, outcome))
        return outcome

    async def deliver_webhook(self, update: dict[str, Any], *, secret: str | None = None) -> int:
        """Deliver an update as the platform does in webhook mode (a flat body); the HTTP status answered."""
        headers = {SECRET_HEADER: secret if secret is not None else str(self.webhook["secret_token"])}
        async with ClientSession(timeout=ClientTimeout(total=5)) as session:
            async with session.post(self.target_of(self.webhook["url"]), json=update, headers=headers) as resp:
                return resp.status

    async def _m_deleteWebhook(self, call: Call) -> web.Response:
        self.webhook = {"url": "", "secret_token": None}
        return _ok({"url": "", "updated_at": 1637110800000})

    async def _m_getWebhookInfo(self, call: Call) -> web.Response:
        return _ok({"url": self.webhook["url"], "updated_at": 1637110800000})

    async def _m_sendMessage(self, call: Call) -> web.Response:
        chat_id, text = call.params.get("chat_id"), call.params.get("text")
        if not isinstance(chat_id, str) or not chat_id:
            return _error(400, "chat_id is required")
        if not isinstance(text, str) or not text:
            return _error(400, "text is required")
        if len(text) > TEXT_LIMIT:
            return _error(400, "text is too long (max 2000 characters)")
        return await self._sent(call)

    async def _m_sendPhoto(self, call: Call) -> web.Response:
        chat_id, photo = call.params.get("chat_id"), call.params.get("photo")
        caption = call.params.get("caption")
        if not isinstance(chat_id, str) or not chat_id:
            return _error(400, "chat_id is required")
        if not isinstance(photo, str) or not photo.startswith(("http://", "https://")):
            return _error(400, "photo must be a URL")
        if caption is not None and len(str(caption)) > TEXT_LIMIT:
            return _error(400, "caption is too long (max 2000 characters)")
        # The platform downloads the picture from the URL: so does the fake, to prove it is served.
        try:
            async with ClientSession(timeout=ClientTimeout(total=5)) as session, session.get(photo) as resp:
                if resp.status != 200 or not resp.content_type.startswith("image/"):
                    return _error(400, "photo url is not accessible")
                call.photo_bytes = await resp.read()
        except Exception:
            return _error(400, "photo url is not accessible")
        return await self._sent(call)

    async def _m_sendChatAction(self, call: Call) -> web.Response:
        if call.params.get("action") not in ("typing", "upload_photo"):
            return _error(400, "unknown action")
        return web.json_response({"ok": True})  # documented: no result

    async def _m_sendSticker(self, call: Call) -> web.Response:
        return await self._sent(call)

    async def _sent(self, call: Call) -> web.Response:
        self.sent.append(call)
        return _ok({"message_id": secrets.token_hex(10), "date": 1637110800000 + next(self._ids)})


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, description: str | None = None, *, retry_after: float | None = None) -> web.Response:
    body: dict[str, Any] = {
        "ok": False,
        "error_code": status,
        "description": description or _DESCRIPTIONS.get(status, "Error"),
    }
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    return web.json_response(body, status=status, headers=headers)


@pytest.fixture
async def zalo_fake() -> AsyncIterator[FakeZaloApi]:
    """A running fake platform for one test (import this fixture into the test module)."""
    async with FakeZaloApi() as fake:
        yield fake
