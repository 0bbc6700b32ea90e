"""Delivering reminders from the outbox through TelegramSender to the local fake Bot API, with the rate limiter.

Goal (issue 5): at least 28 messages per second (Telegram allows 30) and never more than one message per
second to one chat. The outbox holds ``--count`` reminders for ``--chats`` people, written person by person
(the worst order for the per-chat limit: the deliverer must interleave people to keep the overall rate).

    .venv/bin/python bench/bench_delivery.py [--count 10000] [--chats 1000] [--quick]

10,000 messages at 30/s take about 6 minutes; --quick sends 1,000.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from telegram import Bot
from telegram.request import HTTPXRequest

from bot.settings import DEFAULT_PROGRAMME
from bot.telegram_sender import TelegramSender
from core.clock import FixedClock
from core.programme import load_programme
from scheduler.delivery import Deliverer
from storage.db import create_all, make_engine
from storage.models import ChatIdentity, District, Notification, Staff
from tests.factories import local
from tests.fakes.telegram_api import FakeTelegram

NOW = local(2021, 11, 18, 8)
FIRST_CHAT = 500_000


class TimedBot(Bot):
    """Records, per chat, when each request left (right after the limiter let it go) and when it was answered."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._sent: dict[str, list[float]] = defaultdict(list)
        self._answered: dict[str, list[float]] = defaultdict(list)

    @property
    def sent_at(self) -> dict[str, list[float]]:
        return self._sent

    @property
    def answered_at(self) -> dict[str, list[float]]:
        return self._answered

    async def send_message(self, chat_id, *args, **kwargs):
        self._sent[str(chat_id)].append(time.monotonic())
        result = await super().send_message(chat_id, *args, **kwargs)
        self._answered[str(chat_id)].append(time.monotonic())
        return result


class ServerThread:
    """The fake Bot API in its own thread and event loop, like a server elsewhere: what it sees (and when) is
    not skewed by the client's loop. Arrival times are taken as each request reaches its handler."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.loop = asyncio.new_event_loop()
        self.fake: FakeTelegram | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        fake = FakeTelegram()
        handler = fake._api

        async def timed_api(request):
            if request.match_info.get("method", "").lower() == "sendmessage":
                self.arrivals.append(time.monotonic())
            return await handler(request)

        fake._api = timed_api  # wrapped before start() registers it
        await fake.start()
        self.fake = fake

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def seed(engine, count: int, chats: int) -> None:
    with engine.begin() as conn:
        conn.execute(District.__table__.insert(), [{"id": 1, "code": "TDM", "name": "Thủ Dầu Một"}])
        conn.execute(
            Staff.__table__.insert(),
            [
                {
                    "id": i + 1,
                    "full_name": f"Hiệu trưởng {i}",
                    "phone": f"+8490{i:07d}",
                    "email": None,
                    "role": "principal",
                    "district_id": 1,
                    "school_id": None,
                    "active": True,
                    "language": "vi",
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for i in range(chats)
            ],
        )
        conn.execute(
            ChatIdentity.__table__.insert(),
            [
                {
                    "staff_id": i + 1,
                    "channel": "telegram",
                    "external_id": str(FIRST_CHAT + i),
                    "chat_id": str(FIRST_CHAT + i),
                    "linked_at": NOW,
                }
                for i in range(chats)
            ],
        )
        per = count // chats
        rows = []
        for person in range(chats):  # person by person: the per-chat limit's worst case
            for k in range(per + (1 if person < count % chats else 0)):
                rows.append(
                    {
                        "key": f"bench:{person}:{k}",
                        "rule": "bench",
                        "subject": f"item:{k}",
                        "stage": f"s{k}",
                        "recipient_id": person + 1,
                        "email": None,
                        "status": "pending",
                        "text": f"⏰ <b>Nhắc việc</b> số {k}: bàn giao cần cập nhật CSDL ngành trước hết ngày 18/11/2021.",
                        "attempts": 0,
                        "next_attempt_at": NOW,
                        "created_at": NOW,
                    }
                )
        for i in range(0, len(rows), 5000):
            conn.execute(Notification.__table__.insert(), rows[i : i + 5000])


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:  # the same comparison as the limiter makes
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def run(count: int, chats: int) -> None:
    programme = load_programme(DEFAULT_PROGRAMME)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'delivery.db'}")
        create_all(engine)
        seed(engine, count, chats)
        with ServerThread() as server:
            fake = server.fake
            for i in range(chats):
                fake.user(FIRST_CHAT + i)
            bot = TimedBot(
                fake.token,
                base_url=fake.base_url,
                base_file_url=fake.base_file_url,
                request=HTTPXRequest(connection_pool_size=32),
            )
            async with bot:
                sender = TelegramSender(bot)
                deliverer = Deliverer(
                    db=engine, programme=programme, clock=FixedClock(NOW), senders={"telegram": sender}
                )
                started = time.monotonic()
                report = await deliverer.deliver_due()
                elapsed = time.monotonic() - started
        engine.dispose()
    print(
        f"delivered {report.rows_sent:,} reminders to {chats:,} chats in {elapsed:.1f} s: "
        f"{report.rows_sent / elapsed:.1f} msg/s (goal >= 28); failed {report.rows_failed}, "
        f"retrying {report.rows_retrying}"
    )
    print(f"  server saw at most {max_in_window(server.arrivals, 1.0)} requests in any 1 s window (limit 30)")
    for what, times in (("sent", bot.sent_at), ("answered", bot.answered_at)):
        every = [t for ts in times.values() for t in ts]
        gaps = [b - a for ts in times.values() for a, b in zip(sorted(ts), sorted(ts)[1:])]
        per_chat = max(max_in_window(ts, 1.0) for ts in times.values())
        print(
            f"  {what:>8}: most in any 1 s window {max_in_window(every, 1.0)} overall, {per_chat} to "
            f"one chat (limit 1); shortest gap within a chat {min(gaps) if gaps else float('nan'):.3f} s"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--chats", type=int, default=1_000)
    ap.add_argument("--quick", action="store_true", help="1,000 messages")
    args = ap.parse_args()
    count = 1_000 if args.quick else args.count
    asyncio.run(run(count, min(args.chats, count)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
