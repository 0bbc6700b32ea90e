"""Long polling: ask ``getUpdates`` again and again; each answer carries at most one update.

There is no offset to acknowledge: the platform forgets an update once it has handed it out, so a poll
cancelled at shutdown may lose the one message it was carrying (the person sends it again; the engine's
dedupe makes a redelivery harmless). Errors back off exponentially, and the pause ends early on stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from bot.zalo.api import Sleep, ZaloApi, ZaloApiError, ZaloUnauthorized, ZaloWebhookActive

log = logging.getLogger(__name__)


async def poll_updates(
    *,
    api: ZaloApi,
    on_update: Callable[[dict[str, Any]], object],
    stop: asyncio.Event,
    timeout: int = 30,
    error_backoff: float = 1.0,
    max_error_backoff: float = 30.0,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Until ``stop`` is set. ``on_update`` must return quickly (``ZaloChannel.dispatch`` does).

    A rejected token ends the loop with ``ZaloUnauthorized``, a webhook set for this bot (someone called
    ``setWebhook`` since start-up) with ``ZaloWebhookActive``: no amount of retrying fixes configuration.
    Everything else (403 internal errors, 429 quota, 5xx, network) backs off exponentially and polls again.
    """
    failures = 0
    while not stop.is_set():
        poll = asyncio.ensure_future(api.get_updates(timeout=timeout))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({poll, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        await asyncio.gather(stopped, return_exceptions=True)
        if not poll.done():
            poll.cancel()
            with contextlib.suppress(asyncio.CancelledError, ZaloApiError):
                await poll
            break
        try:
            updates = poll.result()
        except (ZaloUnauthorized, ZaloWebhookActive):
            raise
        except ZaloApiError as exc:
            failures += 1
            wait = min(max_error_backoff, error_backoff * 2 ** (failures - 1))
            log.warning("zalo getUpdates failed (%s); polling again in %.1fs", exc, wait)
            await _pause(wait, stop, sleep)
            continue
        failures = 0
        for update in updates:
            on_update(update)
    log.info("zalo polling stopped")


async def _pause(seconds: float, stop: asyncio.Event, sleep: Sleep) -> None:
    pause = asyncio.ensure_future(sleep(seconds))
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({pause, stopped}, return_when=asyncio.FIRST_COMPLETED)
    for task in (pause, stopped):
        task.cancel()
    await asyncio.gather(pause, stopped, return_exceptions=True)
