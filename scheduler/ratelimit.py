"""Telegram's send limits, enforced before each request rather than discovered by 429s.

Telegram allows about 30 messages per second per bot and one per second per chat. python-telegram-bot's
``AIORateLimiter`` enforces the first but not the second, retries nothing by default, and one 429 pauses
every request (the 429 is for the whole bot). This limiter does the same three things on purpose:

- overall: a token bucket of capacity 1 refilled at ``overall_per_second`` -> requests are spaced evenly,
  so no one-second window ever holds more than 30;
- per chat: at least ``per_chat_interval`` seconds between two requests to the same chat;
- ``pause(seconds)``: after a 429 (``RetryAfter``) nothing goes out until the pause is over.

Time comes from an injected monotonic function and sleep, so tests drive it with a fake clock and never
sleep. Monotonic time is not the wall clock: it only measures intervals.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

TELEGRAM_OVERALL_PER_SECOND = 30.0
TELEGRAM_PER_CHAT_INTERVAL = 1.0


class RateLimiter:
    def __init__(
        self,
        *,
        overall_per_second: float = TELEGRAM_OVERALL_PER_SECOND,
        per_chat_interval: float = TELEGRAM_PER_CHAT_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if overall_per_second <= 0 or per_chat_interval < 0:
            raise ValueError("rate limits must be positive")
        self.rate = overall_per_second
        self.per_chat_interval = per_chat_interval
        self._monotonic = monotonic
        self._sleep = sleep
        self._tokens = 1.0
        self._refilled_at = monotonic()
        self._paused_until = float("-inf")
        self._chat_free_at: dict[str, float] = {}
        self.waited = 0.0  # total seconds callers were held back (for logs and benchmarks)

    @property
    def paused_until(self) -> float:
        return self._paused_until

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` (Telegram's 429 applies to the whole bot)."""
        self._paused_until = max(self._paused_until, self._monotonic() + max(0.0, seconds))

    async def acquire(self, chat_id: str | int) -> None:
        """Wait until a request to ``chat_id`` may go out, and claim that slot."""
        chat = str(chat_id)
        while True:
            now = self._monotonic()
            wait = max(self._paused_until - now, self._chat_free_at.get(chat, float("-inf")) - now)
            if wait <= 0:
                self._refill(now)
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    self._chat_free_at[chat] = now + self.per_chat_interval
                    self._forget_idle_chats(now)
                    return
                wait = (1.0 - self._tokens) / self.rate
            self.waited += wait
            await self._sleep(wait)

    def _refill(self, now: float) -> None:
        elapsed = now - self._refilled_at
        if elapsed > 0:
            self._tokens = min(1.0, self._tokens + elapsed * self.rate)
            self._refilled_at = now

    def _forget_idle_chats(self, now: float) -> None:
        # Bounded memory on a long-running bot: chats whose slot is in the past need no entry.
        if len(self._chat_free_at) > 10_000:
            self._chat_free_at = {c: t for c, t in self._chat_free_at.items() if t > now}
