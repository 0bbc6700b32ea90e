"""The Zalo web server (aiohttp): the webhook endpoint and the public chart files.

``POST <path of FIELDBOT_ZALO_WEBHOOK_URL>``: the platform delivers one update per request with the secret
in ``X-Bot-Api-Secret-Token``; a missing or wrong secret gets 403 and a log line (without the secret). The
update (flat ``{"event_name", "message"}``, or wrapped in ``{"ok": true, "result": ...}``) is queued for the
engine and the platform gets its 200 at once. A body that is no update (the test request the platform sends
while ``setWebhook`` runs) gets 200 too, and nothing happens. While our own ``setWebhook`` call is in flight
(``WebhookGate.verifying``) a request without the secret but also without a message is answered 200, in case
the platform's test request does not carry the header (undocumented); it is never processed.

``GET /media/<name>``: chart files written by ``PublicMedia``; names are random, checked against a strict
pattern (no path can be formed from one), and expire.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from bot.zalo.render import PublicMedia

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Bot-Api-Secret-Token"
MAX_BODY = 256 * 1024  # an update is a few hundred bytes


class ZaloConfigError(Exception):
    """A Zalo setting that cannot work; one line for the operator, naming the variable."""


class WebhookGate:
    """Shared with the service: ``verifying`` is True while its ``setWebhook`` call runs."""

    def __init__(self) -> None:
        self.verifying = False


def validate_webhook(url: str | None, secret: str | None) -> tuple[str, str] | None:
    """``(url, secret)`` for webhook mode, None for polling; ``ZaloConfigError`` when half configured."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc:
        raise ZaloConfigError(
            "Cấu hình sai FIELDBOT_ZALO_WEBHOOK_URL: Zalo chỉ gửi tới địa chỉ https:// công khai "
            "(must be a public https:// URL)"
        )
    if not secret:
        raise ZaloConfigError(
            "Thiếu FIELDBOT_ZALO_WEBHOOK_SECRET: chế độ webhook cần một chuỗi bí mật 8–256 ký tự "
            "(webhook mode needs a secret of 8-256 characters)"
        )
    if not 8 <= len(secret) <= 256 or not all(33 <= ord(ch) <= 126 for ch in secret):
        raise ZaloConfigError(
            "Cấu hình sai FIELDBOT_ZALO_WEBHOOK_SECRET: cần 8–256 ký tự ASCII, không dấu cách "
            "(8-256 printable ASCII characters, no spaces)"
        )
    return url, secret


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        return None


def _has_message(body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    if isinstance(body.get("message"), dict):
        return True
    inner = body.get("result")
    return isinstance(inner, dict) and isinstance(inner.get("message"), dict)


def webhook_path(url: str) -> str:
    return urlsplit(url).path or "/"


def build_web_app(
    *,
    on_update: Callable[[dict[str, Any]], object] | None = None,
    secret: str | None = None,
    path: str = "/zalo",
    media: PublicMedia | None = None,
    gate: WebhookGate | None = None,
) -> web.Application:
    """Routes for what is configured: the webhook (needs ``on_update`` and ``secret``) and/or media."""
    app = web.Application(client_max_size=MAX_BODY)
    if on_update is not None:
        if not secret:
            raise ZaloConfigError("the Zalo webhook needs a secret")
        expected = secret.encode()

        async def receive(request: web.Request) -> web.Response:
            given = request.headers.get(SECRET_HEADER, "")
            raw = await request.read()
            body = _json(raw)
            if not given or not hmac.compare_digest(given.encode(), expected):
                if gate is not None and gate.verifying and not _has_message(body):
                    log.info("zalo webhook: answered the platform's test request (it carried no secret header)")
                    return web.json_response({"ok": True})
                log.warning(
                    "zalo webhook refused: %s secret header from %s",
                    "missing" if not given else "wrong",
                    request.remote or "?",
                )
                return web.json_response({"ok": False, "description": "Forbidden"}, status=403)
            if isinstance(body, dict) and "event_name" not in body and isinstance(body.get("result"), dict):
                body = body["result"]  # the same envelope getUpdates uses
            if not _has_message(body):
                # The verification request, or an event this bot does not read: acknowledged, nothing to do.
                log.info("zalo webhook: request without a message acknowledged (%d bytes)", len(raw))
                return web.json_response({"ok": True})
            on_update(body)
            return web.json_response({"ok": True})

        app.router.add_post(path, receive)
    if media is not None:

        async def serve_media(request: web.Request) -> web.StreamResponse:
            found = media.path_for(request.match_info["name"])
            if found is None:
                raise web.HTTPNotFound()
            file, content_type = found
            return web.FileResponse(
                file,
                headers={
                    "Content-Type": content_type,
                    "Cache-Control": "private, max-age=86400",
                    "X-Content-Type-Options": "nosniff",
                },
            )

        app.router.add_get("/media/{name}", serve_media)
    return app


class ZaloWebServer:
    """Runs ``build_web_app`` on ``host:port`` (port 0 picks a free one; ``port`` tells which)."""

    def __init__(self, app: web.Application, *, listen: str = "127.0.0.1:8444") -> None:
        host, _, port = listen.rpartition(":")
        self.app = app
        self.host = host or "127.0.0.1"
        self.port = int(port)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server  # aiohttp exposes the bound sockets only here
        if server is not None and server.sockets:  # type: ignore[union-attr]
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("zalo web server listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
