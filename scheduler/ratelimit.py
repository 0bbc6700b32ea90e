"""Telegram's send limits, enforced before each request rather than discovered by 429s.

Telegram allows about 30 messages per second per bot and one per second per chat. python-telegram-bot's
``AIORateLimiter`` enforces the first but not the second, retries nothing by default, and one 429 pauses
every request (the 429 is for the whole bot). This limiter enforces all three:

- overall: requests are given slots spaced ``1/overall_per_second`` apart (a token bucket of capacity 1),
  and the last ``overall_per_second`` actual send times are checked, so no one-second window holds more
  than the rate and a backlog drains at exactly the rate (29/s by default: Telegram's 30 less one for
  jitter on the way);
- per chat: at least ``per_chat_interval`` seconds between two requests to the same chat;
- ``pause(seconds)``: after a 429 (``RetryAfter``) nothing goes out until the pause is over.

Time comes from an injected monotonic function and sleep, so tests drive it with a fake clock and never
sleep. Monotonic time is not the wall clock: it only measures intervals.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

TELEGRAM_OVERALL_PER_SECOND = 30.0
# We pace at 29: requests leave at most 29 a second, so the few milliseconds of jitter on the way (measured:
# up to 2 extra in a window at the receiving end) never make Telegram see 31. Costs 3% of the throughput.
DEFAULT_OVERALL_PER_SECOND = TELEGRAM_OVERALL_PER_SECOND - 1
TELEGRAM_PER_CHAT_INTERVAL = 1.0


def overall_share(processes: int) -> float:
    """One process's pace when ``processes`` send with the same bot (FIELDBOT_PROCESSES): the bot's limit is
    Telegram's, not the process's, and a 429 would pause every one of them. A static split needs nothing
    shared between processes; its cost is that a busy process cannot borrow an idle one's share. Whole
    messages a second: a limiter at 9.67/s can put 10 in one second, and three of them 30."""
    return max(1.0, float(int(DEFAULT_OVERALL_PER_SECOND // max(1, processes))))


_EPSILON = 1e-9
WINDOW_MARGIN = 0.002


class RateLimiter:
    def __init__(
        self,
        *,
        overall_per_second: float = DEFAULT_OVERALL_PER_SECOND,
        per_chat_interval: float = TELEGRAM_PER_CHAT_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if overall_per_second <= 0 or per_chat_interval < 0:
            raise ValueError("rate limits must be positive")
        self.spacing = 1.0 / overall_per_second
        burst = max(1, int(overall_per_second))  # 30 requests ...
        # ... in any one second, plus 2 ms so that what the server sees (a few microseconds of scheduling
        # later, in another order) stays within the limit too; it costs 0.2% of the rate.
        self._window = burst / overall_per_second + WINDOW_MARGIN
        self._recent: deque[float] = deque(maxlen=burst)
        self.per_chat_interval = per_chat_interval
        self._monotonic = monotonic
        self._sleep = sleep
        self._next_slot = float("-inf")  # the earliest moment the next request may go out
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
        """Wait until a request to ``chat_id`` may go out, and claim that moment.

        A caller whose chat is free reserves the next overall slot (spaced ``1/rate`` apart) and sleeps until
        it: callers are served in the order their chats became free, nobody spins, and a chat that must wait
        its second holds up no other chat.
        """
        chat = str(chat_id)
        while True:
            now = self._monotonic()
            previous = self._chat_free_at.get(chat, float("-inf"))
            wait = max(self._paused_until - now, previous - now)
            if wait > _EPSILON:
                await self._wait(wait)
                continue
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.spacing
            self._chat_free_at[chat] = slot + self.per_chat_interval
            if slot - now > _EPSILON:
                await self._wait(slot - now)
            if self._paused_until > self._monotonic() + _EPSILON:
                # A 429 arrived while this caller waited for its slot: give the chat's turn back, wait it out.
                self._chat_free_at[chat] = previous
                continue
            # Sleeps overshoot: callers woken a little late can bunch up. The last ``burst`` actual send times
            # are the final word, so no window of ``burst / rate`` seconds ever holds more than ``burst``.
            now = self._monotonic()
            while len(self._recent) == self._recent.maxlen and now - self._recent[0] < self._window:
                # Strict: asyncio may wake a sleeper a clock tick early.
                await self._wait(max(self._recent[0] + self._window - now, 1e-6))
                now = self._monotonic()
            self._recent.append(now)
            self._chat_free_at[chat] = max(self._chat_free_at[chat], now + self.per_chat_interval)
            self._forget_idle_chats(now)
            return

    async def _wait(self, seconds: float) -> None:
        self.waited += seconds
        await self._sleep(seconds)

    def _forget_idle_chats(self, now: float) -> None:
        # Bounded memory on a long-running bot: chats whose turn is in the past need no entry.
        if len(self._chat_free_at) > 10_000:
            self._chat_free_at = {c: t for c, t in self._chat_free_at.items() if t > now}
