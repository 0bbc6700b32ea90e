"""`fieldbot run`: serve every configured channel and run the scheduler until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from datetime import timedelta

from bot.app import App

log = logging.getLogger(__name__)


async def serve(app: App, *, scheduler: bool = True, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    settings = app.settings
    engine = app.conversation_engine()
    senders: dict = {}
    cleanups = []
    tasks: list[asyncio.Task] = []

    if settings.telegram_token is not None:
        application = await _start_telegram(app, engine)
        from bot.telegram_sender import TelegramSender

        senders["telegram"] = TelegramSender(application.bot)
        cleanups.append(lambda: _stop_telegram(application))
    if settings.zalo_token is not None:
        from bot.zalo import run_zalo
        from bot.zalo.adapter import OptionMemory
        from bot.zalo.sender import ZaloSender

        memory = OptionMemory()  # shared, so "2" typed in answer to a reminder's options is understood
        senders["zalo"] = ZaloSender.from_settings(settings, clock=app.clock, memory=memory)
        cleanups.append(senders["zalo"].aclose)
        tasks.append(
            asyncio.create_task(
                run_zalo(
                    settings=settings,
                    engine=engine,
                    stop=stop,
                    clock=app.clock,
                    memory=memory,
                ),
                name="zalo",
            )
        )
    if scheduler:
        from scheduler.service import build_scheduler

        sched = build_scheduler(
            db=app.db,
            programme=app.programme,
            clock=app.clock,
            senders=senders,
            mailer=app.mailer(),
            holder=f"{socket.gethostname()}:{os.getpid()}",
            photos=app.photo_store(),
            lease_ttl=timedelta(seconds=settings.sweep_lease_seconds),
        )
        await sched.start()
        engine.on_queued = sched.wake  # a step's message for a colleague goes out at once
        cleanups.append(sched.shutdown)
    log.info("fieldbot is running (channels: %s)", ", ".join(sorted(senders)) or "-")
    try:
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if t is not waiter and t.exception() is not None:
                log.error("channel task %s failed", t.get_name(), exc_info=t.exception())
    finally:
        stop.set()
        for cleanup in reversed(cleanups):
            try:
                await cleanup()
            except Exception:
                log.exception("error during shutdown")
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        log.info("fieldbot stopped")


async def _start_telegram(app: App, engine):
    from bot.telegram import build_application

    settings = app.settings
    application = build_application(
        token=settings.telegram_token.get_secret_value(),
        api_url=settings.telegram_api_url,
        handle=engine.handle,
        clock=app.clock,
    )
    await application.initialize()
    if application.post_init:
        await application.post_init(application)
    await application.start()
    if settings.telegram_webhook_url:
        host, _, port = settings.telegram_webhook_listen.rpartition(":")
        secret = settings.telegram_webhook_secret.get_secret_value() if settings.telegram_webhook_secret else None
        await application.updater.start_webhook(
            listen=host or "127.0.0.1",
            port=int(port),
            url_path="telegram",
            webhook_url=settings.telegram_webhook_url,
            secret_token=secret,
            drop_pending_updates=False,
        )
    else:
        await application.updater.start_polling(poll_interval=0.0, timeout=25, drop_pending_updates=False)
    return application


async def _stop_telegram(application) -> None:
    if application.updater.running:
        await application.updater.stop()
    await application.stop()
    await application.shutdown()
