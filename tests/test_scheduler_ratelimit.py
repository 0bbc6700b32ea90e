"""The rate limiter on a virtual clock: the schedule of sends is asserted, nothing really sleeps."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import Counter

import pytest

from scheduler.ratelimit import WINDOW_MARGIN, RateLimiter, overall_share


class VirtualTime:
    """monotonic() and sleep() for many concurrent tasks: time jumps to the next wake-up once every task
    is waiting, so a schedule of minutes runs in milliseconds."""

    def __init__(self) -> None:
        self.now = 0.0
        self._waiters: list[tuple[float, int, asyncio.Future]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (self.now + max(0.0, seconds), next(self._seq), fut))
        await fut

    async def run(self, *coros) -> None:
        tasks = [asyncio.ensure_future(c) for c in coros]
        while not all(t.done() for t in tasks):
            for _ in range(5):  # let every runnable task reach its next sleep
                await asyncio.sleep(0)
            if self._waiters:
                at = self._waiters[0][0]
                self.now = max(self.now, at)
                while self._waiters and self._waiters[0][0] <= at:  # everyone due at that moment
                    heapq.heappop(self._waiters)[2].set_result(None)
        for t in tasks:
            t.result()


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """Most sends in any one-second window."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:  # the same comparison as the limiter makes
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@pytest.fixture
def vt() -> VirtualTime:
    return VirtualTime()


async def test_overall_limit_30_per_second(vt):
    limiter = RateLimiter(overall_per_second=30, monotonic=vt.monotonic, sleep=vt.sleep)
    sent: list[float] = []

    async def send(chat: int) -> None:
        await limiter.acquire(chat)
        sent.append(vt.now)

    await vt.run(*(send(c) for c in range(300)))  # 300 different chats
    assert max_in_window(sent) == 30
    # Evenly spaced; every 30th waits out the 2 ms safety margin of the one-second window.
    assert sent[-1] == pytest.approx(299 / 30 + 9 * WINDOW_MARGIN, abs=1e-3)
    assert len(sent) / sent[-1] > 29.9
    assert min(b - a for a, b in zip(sent, sent[1:])) == pytest.approx(1 / 30, abs=1e-5)


async def test_three_processes_of_one_bot_stay_under_its_limit_together(vt):
    """FIELDBOT_PROCESSES=3: each process paces at a third of the bot's rate, so three of them sending flat
    out (each its own limiter, nothing shared) never put more than 29 in one second on the bot."""
    limiters = [
        RateLimiter(overall_per_second=overall_share(3), monotonic=vt.monotonic, sleep=vt.sleep) for _ in range(3)
    ]
    sent: list[float] = []

    async def send(limiter: RateLimiter, chat: int) -> None:
        await limiter.acquire(chat)
        sent.append(vt.now)

    await vt.run(*(send(limiters[c % 3], c) for c in range(300)))
    assert max_in_window(sent) <= 29
    assert len(sent) / sent[-1] > 26  # 3 x 9 a second: most of the bot's budget is used
    assert [overall_share(n) for n in (1, 2, 3, 4, 40)] == [29.0, 14.0, 9.0, 7.0, 1.0]


async def test_the_run_wiring_gives_replies_the_same_share() -> None:
    """Replies go through python-telegram-bot's limiter: `fieldbot run` builds it with the same share."""
    from bot.telegram import build_application
    from tests.telegram_offline import TOKEN, OfflineRequest

    async def handle(_incoming):
        return []

    request = OfflineRequest()
    app = build_application(
        token=TOKEN, api_url="http://127.0.0.1:9", handle=handle, request=request, overall_per_second=overall_share(3)
    )
    limiter = app.bot.rate_limiter
    assert limiter._base_limiter.max_rate == 9.0  # PTB keeps it private; nothing public says it


async def test_per_chat_one_per_second_without_holding_up_others(vt):
    limiter = RateLimiter(overall_per_second=30, monotonic=vt.monotonic, sleep=vt.sleep)
    sent: list[tuple[str, float]] = []

    async def send(chat: str) -> None:
        await limiter.acquire(chat)
        sent.append((chat, vt.now))

    # Five messages to one busy chat, interleaved with 60 to other chats.
    await vt.run(*(send("busy") for _ in range(5)), *(send(f"c{i}") for i in range(60)))
    busy = [t for c, t in sent if c == "busy"]
    gaps = [b - a for a, b in zip(busy, busy[1:])]
    assert all(g >= 1.0 - 1e-9 for g in gaps), gaps
    # Served in the order chats became free: the 60 others (free at once) were not held behind the busy chat,
    # and its second message took the first slot after them.
    others = sorted(t for c, t in sent if c != "busy")
    assert others[-1] == pytest.approx(60 / 30, abs=3 * WINDOW_MARGIN)
    assert busy[1] == pytest.approx(61 / 30, abs=3 * WINDOW_MARGIN)
    assert gaps[1:] == [pytest.approx(1.0, abs=WINDOW_MARGIN)] * 3
    assert max_in_window([t for _, t in sent]) <= 30
    assert Counter(c for c, _ in sent)["busy"] == 5


async def test_retry_after_pauses_everything(vt):
    limiter = RateLimiter(overall_per_second=30, monotonic=vt.monotonic, sleep=vt.sleep)
    sent: list[float] = []

    async def send(chat: int) -> None:
        await limiter.acquire(chat)
        sent.append(vt.now)

    await vt.run(send(1))
    limiter.pause(7)  # Telegram said 429, retry_after=7: for the whole bot
    await vt.run(*(send(c) for c in range(2, 12)))
    assert sent[0] == 0.0 and min(sent[1:]) == pytest.approx(7.0)
    assert max_in_window(sent[1:]) <= 30


async def test_sequential_sender_gets_the_full_rate(vt):
    """One task sending to many chats in turn (how the deliverer's round-robin looks) loses nothing."""
    limiter = RateLimiter(overall_per_second=30, monotonic=vt.monotonic, sleep=vt.sleep)
    sent: list[tuple[int, float]] = []

    async def loop() -> None:
        for i in range(120):
            chat = i % 40
            await limiter.acquire(chat)
            sent.append((chat, vt.now))

    await vt.run(loop())
    times = [t for _, t in sent]
    assert len(times) / times[-1] == pytest.approx(30, rel=0.02)
    assert max_in_window(times) <= 30
    for chat in range(40):
        ts = [t for c, t in sent if c == chat]
        assert all(b - a >= 1.0 - 1e-9 for a, b in zip(ts, ts[1:]))


async def test_default_paces_one_below_telegrams_limit(vt):
    """29 a second leave, so the jitter on the way never makes Telegram count 31."""
    limiter = RateLimiter(monotonic=vt.monotonic, sleep=vt.sleep)
    sent: list[float] = []

    async def send(chat: int) -> None:
        await limiter.acquire(chat)
        sent.append(vt.now)

    await vt.run(*(send(c) for c in range(200)))
    assert max_in_window(sent) == 29 and len(sent) / sent[-1] > 28.5


def test_bad_limits_refused():
    with pytest.raises(ValueError):
        RateLimiter(overall_per_second=0)


async def test_a_429_in_the_middle_holds_callers_already_waiting_for_their_slot(vt):
    limiter = RateLimiter(overall_per_second=30, monotonic=vt.monotonic, sleep=vt.sleep)
    sent: list[float] = []

    async def send(chat: int) -> None:
        await limiter.acquire(chat)
        sent.append(vt.now)
        if len(sent) == 10:
            limiter.pause(3)  # this request came back 429, retry_after=3

    await vt.run(*(send(c) for c in range(40)))
    assert len(sent) == 40
    tenth = sent[9]
    assert not [t for t in sent if tenth < t < tenth + 3 - 1e-9]
    assert max_in_window(sent) <= 30
