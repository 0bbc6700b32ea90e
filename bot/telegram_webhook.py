"""Telegram's webhook endpoint (aiohttp), answered only after the update has been processed.

``POST /telegram`` with the secret in ``X-Telegram-Bot-Api-Secret-Token`` (403 and a log line without the
secret otherwise). The update goes through the Application's handlers — the conversation step commits and
the replies are sent — *before* the 200, so a 200 means the answer is stored: a worker killed mid-request
leaves the request unanswered, and Telegram (or the proxy in front, see docs/deploy.md) delivers it again,
which the dedupe record makes harmless.

The server never calls ``setWebhook``: in a multi-worker deployment only the primary registers the webhook
(``register``), each worker just listens (docs/scaling.md).
"""

from __future__ import annotations

import hmac
import json
import logging

from aiohttp import web
from telegram import Update
from telegram.ext import Application

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
PATH = "/telegram"
MAX_BODY = 1024 * 1024  # an update is a few KB; a long message with entities stays far below this


class TelegramWebhook:
    def __init__(self, application: Application, *, secret: str) -> None:
        self.application = application
        self._secret = secret.encode()
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> None:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(PATH, self._post)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=10.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        log.info("telegram webhook listening on %s:%d%s", host, port, PATH)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _post(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            log.warning("telegram webhook: request without the right secret from %s refused", request.remote)
            return web.Response(status=403)
        try:
            data = json.loads(await request.read())
            if not isinstance(data, dict):
                raise TypeError("not an object")
            update = Update.de_json(data, self.application.bot)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("telegram webhook: unreadable update refused: %s", type(exc).__name__)
            return web.Response(status=400)
        if update is None:
            return web.Response(status=400)
        await self.application.process_update(update)  # handler errors go to the error handler, not here
        return web.Response(status=200)


async def register(application: Application, *, url: str, secret: str) -> None:
    """The primary's one ``setWebhook`` (pending updates are kept)."""
    await application.bot.set_webhook(url=url, secret_token=secret, drop_pending_updates=False)
