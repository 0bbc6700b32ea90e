"""`fieldbot run`: serve every configured channel and run the scheduler until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
from datetime import timedelta

from bot.app import App

log = logging.getLogger(__name__)


async def serve(
    app: App,
    *,
    scheduler: bool = True,
    stop: asyncio.Event | None = None,
    primary: bool = True,
    freeze: bool = False,
) -> None:
    """``primary``: this process registers the Telegram webhook and the bot's commands (a worker only answers
    what the proxy sends it; docs/deploy.md). ``freeze``: this process is the bot (``fieldbot run``), so what
    start-up made lives as long as it does (``gc.freeze``)."""
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
        application = await _start_telegram(app, engine, primary=primary, cleanups=cleanups)
        from bot.telegram_sender import TelegramSender

        senders["telegram"] = TelegramSender.sharing(application.bot, processes=settings.processes)
        cleanups.append(lambda: _stop_telegram(application))
    fatal: str | None = None  # a channel that cannot work as configured: one line, exit status 2
    config_errors: tuple[type[Exception], ...] = ()
    if settings.zalo_token is not None:
        from bot.zalo import ZaloConfigError, ZaloService
        from bot.zalo.adapter import OptionMemory
        from bot.zalo.sender import ZaloSender

        config_errors += (ZaloConfigError,)
        memory = OptionMemory()  # shared, so "2" typed in answer to a reminder's options is understood
        senders["zalo"] = ZaloSender.from_settings(settings, clock=app.clock, memory=memory)
        cleanups.append(senders["zalo"].aclose)
        zalo = ZaloService(settings=settings, engine=engine, clock=app.clock, memory=memory)
        cleanups.append(zalo.close)
        try:
            # Webhook mode: listening, then (the primary only) setWebhook and its verification; before "running".
            await zalo.start(register=primary)
        except ZaloConfigError as exc:
            fatal = str(exc)
        else:
            tasks.append(asyncio.create_task(zalo.run(stop), name="zalo"))
    if fatal is None:
        # Messages a step queues for colleagues go out at once from this process, scheduler or not; rows are
        # claimed before sending, so the scheduler (here or elsewhere) never sends one twice.
        from scheduler.delivery import Deliverer, Waker

        waker = Waker(
            Deliverer(
                db=app.db,
                programme=app.programme,
                clock=app.clock,
                senders=senders,
                mailer=app.mailer(),
                claim_ttl=timedelta(seconds=settings.sweep_lease_seconds),
            )
        )
        engine.on_queued = waker.poke
        waker.poke()  # anything a previous run queued and did not send
        cleanups.append(waker.idle)
    if settings.web_listen and fatal is None:
        host, _, port = settings.web_listen.rpartition(":")
        cleanups.append(await start_web(app, host=host or "127.0.0.1", port=int(port)))
    if scheduler and fatal is None:
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
        cleanups.append(sched.shutdown)
    if fatal is None and freeze:
        # Everything made so far (modules, the application, the ORM's metadata: ~150,000 objects) lives as long
        # as the process: moved out of the collector's view, so the full collections that the scheduler's ticks
        # and busy hours trigger scan only what the work allocated (a full pass over the start-up objects took
        # ~100 ms, inside one national sweep in two).
        gc.collect()
        gc.freeze()
    if fatal is None:
        log.info(
            "fieldbot is running (channels: %s; role: %s)",
            ", ".join(sorted(senders)) or "-",
            "primary" if primary else "worker",
        )
    try:
        if fatal is None:
            waiter = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            for t in done:
                exc = None if t is waiter else t.exception()
                if isinstance(exc, config_errors):
                    fatal = str(exc)
                elif exc is not None:
                    log.error("channel task %s failed", t.get_name(), exc_info=exc)
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
    if fatal is not None:
        from bot.commands import CliError

        raise CliError(fatal)


async def start_web(app: App, *, host: str, port: int):
    """Serve the web view; returns the coroutine function that stops it."""
    from aiohttp import web

    from bot.web import build_web_app

    runner = web.AppRunner(build_web_app(app.web_config()), access_log=None)  # no sign-in tokens in logs
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("web view on http://%s:%d (links: %s)", host, port, app.settings.web_public_url)
    return runner.cleanup


async def serve_web_only(app: App, *, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    cleanup = await start_web(app, host=host, port=port)
    try:
        await stop.wait()
    finally:
        await cleanup()


async def _start_telegram(app: App, engine, *, primary: bool = True, cleanups: list | None = None):
    from bot.telegram import build_application
    from scheduler.ratelimit import overall_share

    settings = app.settings
    application = build_application(
        token=settings.telegram_token.get_secret_value(),
        api_url=settings.telegram_api_url,
        handle=engine.handle,
        clock=app.clock,
        overall_per_second=overall_share(settings.processes),
        web_app_url=f"{settings.web_url}/tg" if settings.web_url and settings.web_listen else None,
        language=settings.language,
    )
    await application.initialize()
    if application.post_init and primary:
        await application.post_init(application)
    await application.start()
    if settings.telegram_webhook_url:
        from bot.telegram_webhook import TelegramWebhook, register

        host, _, port = settings.telegram_webhook_listen.rpartition(":")
        secret = settings.telegram_webhook_secret.get_secret_value()
        webhook = TelegramWebhook(application, secret=secret)
        await webhook.start(host or "127.0.0.1", int(port))
        if cleanups is not None:
            cleanups.append(webhook.stop)
        if primary:
            await register(application, url=settings.telegram_webhook_url, secret=secret)
    else:
        await application.updater.start_polling(poll_interval=0.0, timeout=25, drop_pending_updates=False)
    return application


async def _stop_telegram(application) -> None:
    if application.updater.running:
        await application.updater.stop()
    await application.stop()
    await application.shutdown()
