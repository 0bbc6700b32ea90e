"""Zalo channel: the same conversations for teachers who use Zalo (Zalo Bot Platform over httpx).

``ZaloService`` is what ``fieldbot run`` starts: long polling by default; webhook mode when
``FIELDBOT_ZALO_WEBHOOK_URL`` and ``FIELDBOT_ZALO_WEBHOOK_SECRET`` are set. The web server (webhook and/or
the chart files behind ``FIELDBOT_PUBLIC_MEDIA_URL``) listens on ``FIELDBOT_ZALO_WEBHOOK_LISTEN``.

Start-up order in webhook mode: the listener first, then ``setWebhook`` (the platform POSTs a test request
to the URL while ``setWebhook`` runs and reports the outcome in ``result.verification``), then the outcome is
read: anything but ``webhook.ok`` stops the bot with one line (``ZaloConfigError``). In polling mode a webhook
still set for the bot is reported the same way, with the ``deleteWebhook`` call to make: it is never deleted
behind the operator's back (it may be another running deployment's).
"""

from __future__ import annotations

import asyncio
import logging

from bot.settings import Settings
from bot.zalo.adapter import OptionMemory, ZaloChannel
from bot.zalo.api import ZaloApi, ZaloApiError, ZaloUnauthorized, ZaloWebhookActive
from bot.zalo.polling import poll_updates
from bot.zalo.render import PublicMedia, ZaloRenderer
from bot.zalo.webhook import (
    WebhookGate,
    ZaloConfigError,
    ZaloWebServer,
    build_web_app,
    validate_webhook,
    webhook_path,
)
from core.clock import Clock, SystemClock

log = logging.getLogger(__name__)

__all__ = ["ZaloConfigError", "ZaloService", "run_zalo"]

VERIFIED = "webhook.ok"
TOKEN_REJECTED = "FIELDBOT_ZALO_TOKEN bị Zalo từ chối: kiểm tra lại mã bot (the Zalo token was rejected)"


def webhook_is_set(url: str, api_url: str) -> str:
    return (
        f"Bot Zalo đang có webhook {url} nên Zalo từ chối getUpdates (chế độ polling): đặt "
        "FIELDBOT_ZALO_WEBHOOK_URL và FIELDBOT_ZALO_WEBHOOK_SECRET để chạy webhook, hoặc gỡ webhook bằng "
        f"curl -X POST {api_url.rstrip('/')}/bot<TOKEN>/deleteWebhook rồi chạy lại "
        "(a webhook is set, so getUpdates is refused: configure webhook mode or call deleteWebhook)"
    )


def verification_of(result: object) -> str | None:
    """``result.verification`` of a ``setWebhook`` answer (e.g. ``webhook.ok``, ``webhook.err.unreachable``);
    None when the platform did not report one."""
    if not isinstance(result, dict) or result.get("verification") is None:
        return None
    value = result["verification"]
    if isinstance(value, dict):  # tolerate {"status": "webhook.ok", ...}
        value = next((value[k] for k in ("status", "code", "result") if isinstance(value.get(k), str)), value)
    return str(value).strip()


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

    async def start(self, *, register: bool = True) -> None:
        """``register``: this process calls ``setWebhook`` (the primary); a worker behind the same proxy only
        serves the webhook the primary registered (docs/deploy.md)."""
        try:
            me = await self.api.get_me()
            log.info(
                "zalo bot %s ready (%s mode)",
                (me or {}).get("account_name") or (me or {}).get("id") or "?",
                "webhook" if self.webhook else "polling",
            )
        except ZaloUnauthorized:
            raise ZaloConfigError(TOKEN_REJECTED) from None
        except ZaloApiError as exc:  # the platform may be back by the first poll
            log.warning("zalo getMe failed at start-up: %s", exc)
        if self.webhook is None:
            url = await self.api.webhook_url()
            if url:
                raise ZaloConfigError(webhook_is_set(url, self.api.api_url))
        gate = WebhookGate()
        if self.webhook is not None or self.media is not None:
            # Listening before setWebhook: the platform tests the URL while setWebhook runs.
            secret = self.webhook[1] if self.webhook else None
            path = webhook_path(self.webhook[0]) if self.webhook else "/zalo"
            on_update = self.channel.dispatch if self.webhook is not None else None
            app = build_web_app(on_update=on_update, secret=secret, path=path, media=self.media, gate=gate)
            self.web = ZaloWebServer(app, listen=self.settings.zalo_webhook_listen)
            await self.web.start()
            if self.media is not None:
                self.media.prune()
        if self.webhook is not None and register:
            await self._set_webhook(gate)
        elif self.webhook is not None:
            log.info("zalo webhook served on %s; the primary registers it", self.settings.zalo_webhook_listen)

    async def _set_webhook(self, gate: WebhookGate) -> None:
        url, secret = self.webhook  # type: ignore[misc]
        gate.verifying = True
        try:
            result = await self.api.set_webhook(url=url, secret_token=secret)
        except ZaloUnauthorized:
            raise ZaloConfigError(TOKEN_REJECTED) from None
        except ZaloApiError as exc:
            raise ZaloConfigError(f"Zalo không nhận webhook {url}: {exc.description}") from None
        finally:
            gate.verifying = False
        outcome = verification_of(result)
        if outcome is None:
            log.info("zalo webhook set to %s (the platform reported no verification)", url)
        elif outcome != VERIFIED:
            listen = self.settings.zalo_webhook_listen
            raise ZaloConfigError(
                f"Zalo không kiểm tra được webhook {url} ({outcome}): kiểm tra địa chỉ https công khai, chứng chỉ "
                f"và proxy chuyển tiếp tới FIELDBOT_ZALO_WEBHOOK_LISTEN={listen} "
                f"(Zalo could not verify the webhook: {outcome})"
            )
        else:
            log.info("zalo webhook set to %s and verified", url)

    async def run(self, stop: asyncio.Event) -> None:
        if self.webhook is not None:
            await stop.wait()
            return
        try:
            await poll_updates(api=self.api, on_update=self.channel.dispatch, stop=stop, timeout=self.poll_timeout)
        except ZaloWebhookActive as exc:
            raise ZaloConfigError(webhook_is_set(exc.url, self.api.api_url)) from None
        except ZaloUnauthorized:
            raise ZaloConfigError(TOKEN_REJECTED) from None

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
