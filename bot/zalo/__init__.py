"""Zalo channel: the same conversations for teachers who use Zalo (Zalo Bot Platform over httpx).

``run_zalo`` is what ``fieldbot run`` starts: long polling by default; webhook mode when
``FIELDBOT_ZALO_WEBHOOK_URL`` and ``FIELDBOT_ZALO_WEBHOOK_SECRET`` are set. The web server (webhook and/or
the chart files behind ``FIELDBOT_PUBLIC_MEDIA_URL``) listens on ``FIELDBOT_ZALO_WEBHOOK_LISTEN``.
"""

from __future__ import annotations

import asyncio
import logging

from bot.settings import Settings
from bot.zalo.adapter import OptionMemory, ZaloChannel
from bot.zalo.api import ZaloApi, ZaloApiError, ZaloUnauthorized
from bot.zalo.polling import poll_updates
from bot.zalo.render import PublicMedia, ZaloRenderer
from bot.zalo.webhook import ZaloConfigError, ZaloWebServer, build_web_app, validate_webhook, webhook_path
from core.clock import Clock, SystemClock

log = logging.getLogger(__name__)

__all__ = ["ZaloConfigError", "ZaloService", "run_zalo"]


class ZaloService:
    """The Zalo side of one process: API client, channel, and polling or the webhook server."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine,
        clock: Clock | None = None,
        memory: OptionMemory | None = None,
        poll_timeout: int = 30,
    ) -> None:
        if settings.zalo_token is None:
            raise ZaloConfigError("Thiếu FIELDBOT_ZALO_TOKEN (Zalo bot token is not set)")
        secret = settings.zalo_webhook_secret.get_secret_value() if settings.zalo_webhook_secret else None
        self.webhook = validate_webhook(settings.zalo_webhook_url, secret)  # fail before any network call
        self.settings = settings
        self.clock = clock or getattr(engine, "clock", None) or SystemClock()
        self.api = ZaloApi(token=settings.zalo_token.get_secret_value(), api_url=settings.zalo_api_url)
        self.media = PublicMedia.from_settings(settings, clock=self.clock)
        self.channel = ZaloChannel(
            api=self.api,
            handle=engine.handle,
            renderer=ZaloRenderer(media=self.media, language=settings.language),
            clock=self.clock,
            memory=memory,
            language=settings.language,
        )
        self.poll_timeout = poll_timeout
        self.web: ZaloWebServer | None = None

    async def start(self) -> None:
        try:
            me = await self.api.get_me()
            log.info(
                "zalo bot %s ready (%s mode)",
                (me or {}).get("account_name") or (me or {}).get("id") or "?",
                "webhook" if self.webhook else "polling",
            )
        except ZaloUnauthorized:
            raise ZaloConfigError(
                "FIELDBOT_ZALO_TOKEN bị Zalo từ chối: kiểm tra lại mã bot (the Zalo token was rejected)"
            ) from None
        except ZaloApiError as exc:  # the platform may be back by the first poll
            log.warning("zalo getMe failed at start-up: %s", exc)
        on_update = None
        if self.webhook is not None:
            url, secret = self.webhook
            try:
                await self.api.set_webhook(url=url, secret_token=secret)
            except ZaloApiError as exc:
                raise ZaloConfigError(f"Zalo không nhận webhook {url}: {exc.description}") from None
            on_update = self.channel.dispatch
        else:
            try:
                await self.api.delete_webhook()  # getUpdates is refused while a webhook is set
            except ZaloApiError as exc:
                log.warning("zalo deleteWebhook failed: %s", exc)
        if on_update is not None or self.media is not None:
            secret = self.webhook[1] if self.webhook else None
            path = webhook_path(self.webhook[0]) if self.webhook else "/zalo"
            app = build_web_app(on_update=on_update, secret=secret, path=path, media=self.media)
            self.web = ZaloWebServer(app, listen=self.settings.zalo_webhook_listen)
            await self.web.start()
            if self.media is not None:
                self.media.prune()

    async def run(self, stop: asyncio.Event) -> None:
        if self.webhook is None:
            await poll_updates(api=self.api, on_update=self.channel.dispatch, stop=stop, timeout=self.poll_timeout)
        else:
            await stop.wait()

    async def close(self) -> None:
        if self.web is not None:
            await self.web.stop()  # no new updates from here on
            self.web = None
        await self.channel.drain()
        await self.api.aclose()


async def run_zalo(
    *,
    settings: Settings,
    engine,
    stop: asyncio.Event,
    clock: Clock | None = None,
    memory: OptionMemory | None = None,
) -> None:
    """Serve Zalo until ``stop`` is set; updates already received finish before it returns.

    ``memory`` can be shared with the ``ZaloSender`` so a number typed in
    answer to a reminder's options is understood.
    """
    service = ZaloService(settings=settings, engine=engine, clock=clock, memory=memory)
    try:
        await service.start()
        await service.run(stop)
    finally:
        await service.close()
